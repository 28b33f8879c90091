#!/usr/bin/env bash
# Compare mmt-bleu with scripts/bleu_reference.py (a Python model of sacreBLEU
# 2.3.1) on random corpora: every tokenizer, -lc, each smoothing, one and two
# references (with empty reference lines), chrF, and both paired tests.
#
# usage: scripts/check-bleu-reference.sh [BUILD_DIR] [SEED]
#   PYTHON: a python3 with numpy and regex (default python3); on Debian the
#   system numpy can be borrowed with PYTHONPATH=/usr/lib/python3/dist-packages
set -euo pipefail
build=${1:-build}
seed=${2:-1}
bin="$build/mmt-bleu"
py=${PYTHON:-python3}
ref_model="$(dirname "$0")/bleu_reference.py"
[ -x "$bin" ] || { echo "$bin: not built (make $bin)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# references, two hypotheses of different quality and a third in between
"$py" - "$tmp" "$seed" <<'EOF'
import random, sys
out, R = sys.argv[1], random.Random(int(sys.argv[2]))
words = ("the cat sat on mat dog a of in is was The Dog CAT Stra\u00dfe \u039f\u0394\u039f\u03a3 "
         "\u03a3\u0391\u03a3 \u041c\u043e\u0441\u043a\u0432\u0430 na\u00efve caf\u00e9 "
         "\u0130stanbul x y").split()
punct = list(".,;:!?\"'()[]-/@#$%&*+=<>~") + ["&quot;", "&amp;", "\u20ac", "\u00ab", "\u00bb",
                                              "\u2014", "\u3002", "\u00bf"]
nums = ["1", "23", "3.14", "1,000", "2019", "5-6", "10.", "e.g.", "U.S.A.", "9-", ".5"]
spaces = [" ", " ", "  ", "\t", "\u00a0", "\u3000"]

def line():
    toks = [R.choice(words) if r < 0.55 else R.choice(punct) if r < 0.8 else R.choice(nums)
            for r in (R.random() for _ in range(R.randint(1, 14)))]
    return "".join(t + (R.choice(spaces) if R.random() < 0.8 else "") for t in toks).strip() or "x"

def mutate(s, p):
    out = []
    for t in s.split():
        r = R.random()
        if r < 2 * p:
            out += [] if r < p else [R.choice(words)]
        else:
            out += [t] + ([R.choice(words)] if R.random() < p / 2 else [])
    return " ".join(out)

refs = [line() for _ in range(300)]
files = {"ref1": refs, "ref2": [mutate(r, 0.2) if R.random() > 0.1 else "" for r in refs],
         "hypA": [mutate(r, 0.35) for r in refs], "hypB": [mutate(r, 0.15) for r in refs]}
files["hypC"] = [a if R.random() < 0.9 else b for a, b in zip(files["hypA"], files["hypB"])]
for name, lines in files.items():
    with open(f"{out}/{name}", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
EOF

fails=0
compare() { # what, ours, theirs
    if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: mmt-bleu $2, model $3"; fails=$((fails + 1)); fi
}
cd "$tmp"
for opts in "" "--tokenize intl" "--tokenize char" "--tokenize none -lc" "-lc" \
            "--smooth floor" "--smooth add-k" "--smooth none"; do
    for refs in "ref1" "ref1 ref2"; do
        ours=$("$OLDPWD/$bin" $refs -i hypA $opts -w 10 -b)
        theirs=$("$py" "$OLDPWD/$ref_model" -i hypA $opts -- $refs | awk '{printf "%.10f", $3}')
        compare "BLEU $opts [$refs]" "$ours" "$theirs"
    done
done
for opts in "" "--chrf-lowercase"; do
    ours=$("$OLDPWD/$bin" ref1 ref2 -i hypA -m chrf $opts -w 10 -b)
    theirs=$("$py" "$OLDPWD/$ref_model" -i hypA --metrics chrf $opts -- ref1 ref2 | awk '{printf "%.10f", $3}')
    compare "chrF $opts" "$ours" "$theirs"
done

# paired tests: p-values, and the bootstrap means and intervals
ours=$("$OLDPWD/$bin" ref1 ref2 --paired-bs --baseline hypA --systems hypB hypC -m bleu chrf -w 6 -f json |
    "$py" -c 'import json, sys; d = json.load(sys.stdin)
for m in ("BLEU", "chrF2"):
    for s in d["systems"][1:]: print(m, "%.6f %.6f %.4f" % (s[m]["mean"], s[m]["ci"], s[m]["p_value"]))')
theirs=$("$py" "$OLDPWD/$ref_model" -i hypA hypB hypC --metrics bleu chrf --paired-bs -- ref1 ref2 |
    awk '$1 == "bs" && $5 == "mean" {printf "%s %.6f %.6f %.4f\n", ($2 == "bleu" ? "BLEU" : "chrF2"), $6, $8, $10}')
[ -n "$ours" ] || ours="(no output)"
compare "paired-bs" "$ours" "$theirs"
ours=$("$OLDPWD/$bin" ref1 ref2 --paired-ar --baseline hypA --systems hypB hypC -m bleu -f json |
    "$py" -c 'import json,sys; d=json.load(sys.stdin)
for s in d["systems"][1:]: print("%.4f" % s["BLEU"]["p_value"])')
theirs=$("$py" "$OLDPWD/$ref_model" -i hypA hypB hypC --paired-ar -- ref1 ref2 | awk '$1 == "ar" {printf "%.4f\n", $6}')
compare "paired-ar" "$ours" "$theirs"

echo "$fails failed"
[ "$fails" -eq 0 ]
