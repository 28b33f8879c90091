#!/usr/bin/env bash
# compare.sh - paired significance of run B over run A on each test set of A's
# recipe: paired bootstrap resampling (1000 resamples) and approximate
# randomisation (10000 trials) with mmt-bleu, on the translations that
# scripts/evaluate.sh wrote into RUN/eval/.
#
# usage: scripts/compare.sh RUN_A RUN_B      (run evaluate.sh on both first)
set -euo pipefail
a=${1:?usage: scripts/compare.sh RUN_A RUN_B}
b=${2:?usage: scripts/compare.sh RUN_A RUN_B}
bin=${BIN:-build}
q() { "$bin/mmt-train" "$a/recipe.json" --query "$1"; }
mapfile -t names < <(q data.test.names)
mapfile -t tgts < <(q data.test.tgt)
if [ "$(q data.generate)" = demo ]; then names=(test); tgts=("$a/data/test.tgt"); fi
scoring=$(q data.scoring)
opts=(-lc); [ "$scoring" = tok ] && opts=(-tok none -lc)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for i in "${!names[@]}"; do
    name=${names[$i]}
    for r in "$a" "$b"; do
        [ -f "$r/eval/$name.hyp" ] || { echo "compare.sh: $r/eval/$name.hyp missing: run scripts/evaluate.sh $r" >&2; exit 1; }
    done
    zcat -f "${tgts[$i]}" > "$tmp/ref"
    echo "## $name: $b over $a"
    "$bin/mmt-bleu" "${opts[@]}" -m bleu chrf "$tmp/ref" --paired-bs --baseline "$a/eval/$name.hyp" --systems "$b/eval/$name.hyp"
    "$bin/mmt-bleu" "${opts[@]}" "$tmp/ref" --paired-ar --baseline "$a/eval/$name.hyp" --systems "$b/eval/$name.hyp"
done
