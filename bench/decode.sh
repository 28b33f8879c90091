#!/bin/bash
# decode.sh - decoding speed: mmt-translate vs a plain PyTorch decoder
# (bench/torch_decode.py), greedy and beam 5, same checkpoint, same source.
#
#   bench/decode.sh [CKPT] [SRC]        (build first: make)
#
# Env: MMT (default build/mmt-translate), PY (default /usr/bin/python3, needs
# torch), OUT (work folder, default a temporary one), THREADS (default 2).
# PyTorch gets source ids from `spm_encode --output_format=id` with the
# checkpoint's own SentencePiece model; its output ids go back to text with
# spm_decode and are diffed against mmt-translate's text (greedy and beam).
# Speed: sentences/s and target tokens/s (eos included) over the process's
# whole wall time (load included) and as each tool reports it (decode only),
# peak RSS from /usr/bin/time -f %M.
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT=${1:-runs/m30k-probe/checkpoint_last.safetensors}
SRC=${2:-data/multi30k/tok/test_2016_flickr.lc.norm.tok.en.gz}
MMT=${MMT:-build/mmt-translate}
PY=${PY:-/usr/bin/python3}
THREADS=${THREADS:-2}
OUT=${OUT:-$(mktemp -d /tmp/mmt-decode.XXXXXX)}
mkdir -p "$OUT"
for tool in "$MMT" /usr/bin/time spm_encode spm_decode; do
    command -v "$tool" >/dev/null || { echo "decode.sh: $tool not found" >&2; exit 1; }
done
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx512f /proc/cpuinfo; then
    export OPENBLAS_CORETYPE=SkylakeX  # mmt-translate would set it itself anyway
fi
# PyTorch needs OMP_WAIT_POLICY=PASSIVE to be timed fairly on 2 cores; mmt runs with
# OpenMP's default (its decoder runs many short parallel loops per step, which
# PASSIVE's sleeping threads would slow down several times)

zcat -f "$SRC" > "$OUT/src.txt"
"$PY" bench/torch_decode.py --model "$CKPT" --extract-spm "$OUT/spm.model"
spm_encode --model "$OUT/spm.model" --output_format=id < "$OUT/src.txt" > "$OUT/src.ids"
NSENT=$(wc -l < "$OUT/src.txt")
echo "checkpoint $CKPT, source $SRC ($NSENT sentences), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $(nproc) cpus, work folder $OUT"

# run NAME CMD...: stdin src, wall time and peak RSS into $OUT/NAME.{out,err,time}
run() {
    local name=$1; shift
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -f %M -o "$OUT/$name.rss" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
    t1=$(date +%s.%N)
    echo "$t0 $t1" | awk '{printf "%.3f\n", $2 - $1}' > "$OUT/$name.time"
}

for beam in 1 5; do
    run mmt_b${beam}_t$THREADS "$MMT" --model "$CKPT" --beam $beam --threads "$THREADS" \
        --input "$OUT/src.txt"
    run mmt_b${beam}_t1 "$MMT" --model "$CKPT" --beam $beam --threads 1 --input "$OUT/src.txt"
    run torch_b${beam}_t$THREADS env OMP_WAIT_POLICY=PASSIVE "$PY" bench/torch_decode.py \
        --model "$CKPT" --beam $beam \
        --threads "$THREADS" < "$OUT/src.ids"
    spm_decode --model "$OUT/spm.model" --input_format=id < "$OUT/torch_b${beam}_t$THREADS.out" \
        > "$OUT/torch_b${beam}_t$THREADS.txt"
    cp "$OUT/mmt_b${beam}_t$THREADS.out" "$OUT/mmt_b${beam}_t$THREADS.txt"
    cp "$OUT/mmt_b${beam}_t1.out" "$OUT/mmt_b${beam}_t1.txt"
done

# target tokens as each tool counted them (from its speed line), reported rate and time
field() { sed -n 's/.*: \([0-9]*\) sentences, \([0-9]*\) target tokens in \([0-9.]*\) s.*/\1 \2 \3/p' "$1"; }

printf '\n%-16s %7s %9s %8s %9s %10s %9s %10s %9s %9s\n' run beam threads wall_s rss_MiB \
    sent/s tok/s dec_sent/s dec_tok/s x_mmt/torch
for beam in 1 5; do
    tw=$(cat "$OUT/torch_b${beam}_t$THREADS.time")
    read -r _ _ tdec < <(field "$OUT/torch_b${beam}_t$THREADS.err")
    for name in mmt_b${beam}_t$THREADS mmt_b${beam}_t1 torch_b${beam}_t$THREADS; do
        read -r ns nt ds < <(field "$OUT/$name.err")
        w=$(cat "$OUT/$name.time")
        rss=$(tail -1 "$OUT/$name.rss")
        th=${name##*_t}
        awk -v n="$name" -v b="$beam" -v th="$th" -v w="$w" -v r="$rss" -v ns="$ns" -v nt="$nt" \
            -v ds="$ds" -v tw="$tw" -v td="$tdec" 'BEGIN {
                printf "%-16s %7d %9d %8.2f %9.1f %10.1f %9.0f %10.1f %9.0f   wall %.2fx dec %.2fx\n",
                    n, b, th, w, r / 1024, ns / w, nt / w, ns / (ds + 1e-9), nt / (ds + 1e-9),
                    tw / w, td / (ds + 1e-9) }'
    done
done

echo
echo "sent/s, tok/s: over the process wall time (model load included); dec_*: as the tool reports (decode only)."
echo "x_mmt/torch: torch time / this run's time (mmt speed-up; 1.00x for torch itself)."
echo
# ndiff A B: lines that differ (line i of A vs line i of B; missing lines count);
# firstdiff A B: number of the first such line
ndiff() { awk 'NR == FNR { a[FNR] = $0; n = FNR; next } { m = FNR; if (!(FNR in a) || a[FNR] != $0) d++ }
               END { if (n > m) d += n - m; print d + 0 }' "$1" "$2"; }
firstdiff() { awk 'NR == FNR { a[FNR] = $0; next } !(FNR in a) || a[FNR] != $0 { if (!f) f = FNR }
                   END { print f + 0 }' "$1" "$2"; }
for beam in 1 5; do
    a="$OUT/mmt_b${beam}_t$THREADS.txt" b="$OUT/torch_b${beam}_t$THREADS.txt"
    nd=$(ndiff "$a" "$b")
    n1=$(ndiff "$a" "$OUT/mmt_b${beam}_t1.txt")
    echo "beam $beam: mmt vs torch outputs differ on $nd of $NSENT lines; mmt $THREADS threads vs 1 thread differ on $n1"
    if [ "$nd" -gt 0 ]; then
        first=$(firstdiff "$a" "$b")
        echo "  first difference, line $first:"
        echo "    src:   $(sed -n "${first}p" "$OUT/src.txt")"
        echo "    mmt:   $(sed -n "${first}p" "$a")"
        echo "    torch: $(sed -n "${first}p" "$b")"
    fi
done
