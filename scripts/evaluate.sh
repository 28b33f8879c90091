#!/usr/bin/env bash
# evaluate.sh - translate every test set of a run's recipe with its averaged
# (else best, else last) checkpoint and print one table: test set, BLEU on
# tokenised lowercased text (multi-bleu.perl's figure: what Multi30k papers
# report), BLEU as sacreBLEU computes it (13a), chrF2, and the hypothesis /
# reference length ratio. A multimodal run's test images (data.test.images,
# data.test.image_index) go with their test sets.
#
# usage: scripts/evaluate.sh RUN_DIR [CKPT] [-- extra mmt-translate options]
# Translations go to RUN_DIR/eval/NAME.hyp. BIN (default build) holds the programs.
set -euo pipefail
run=${1:?usage: scripts/evaluate.sh RUN_DIR [CKPT] [-- mmt-translate options]}
shift
ckpt=
if [ $# -gt 0 ] && [ "$1" != "--" ]; then ckpt=$1; shift; fi
[ "${1:-}" = "--" ] && shift
bin=${BIN:-build}
recipe=$run/recipe.json
[ -f "$recipe" ] || { echo "evaluate.sh: $recipe not found (not a run folder?)" >&2; exit 1; }
if [ -z "$ckpt" ]; then
    for c in checkpoint_avg checkpoint_best checkpoint_last; do
        [ -f "$run/$c.safetensors" ] && { ckpt=$run/$c.safetensors; break; }
    done
fi
[ -f "$ckpt" ] || { echo "evaluate.sh: no checkpoint in $run" >&2; exit 1; }
q() { "$bin/mmt-train" "$recipe" --query "$1"; }

# the test sets: the recipe's, or the demo's own test split
mapfile -t names < <(q data.test.names)
mapfile -t srcs < <(q data.test.src)
mapfile -t tgts < <(q data.test.tgt)
mapfile -t imgs < <(q data.test.images)
mapfile -t idxs < <(q data.test.image_index)
if [ "$(q data.generate)" = demo ]; then
    names=(test); srcs=("$run/data/test.src"); tgts=("$run/data/test.tgt")
fi
[ ${#names[@]} -gt 0 ] || { echo "evaluate.sh: the recipe names no test sets (data.test)" >&2; exit 1; }
scoring=$(q data.scoring)
beam=$(q decode.beam)
lenpen=$(q decode.lenpen)
mkdir -p "$run/eval"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "# $ckpt, beam $beam, lenpen $lenpen, scoring $scoring"
printf '%-20s %8s %8s %8s %7s %6s\n' "test set" "BLEU-tok" "BLEU-13a" "chrF2" "ratio" "lines"
for i in "${!names[@]}"; do
    name=${names[$i]}
    hyp=$run/eval/$name.hyp
    ref=$tmp/$name.ref
    zcat -f "${tgts[$i]}" > "$ref"
    image=()
    if [ -n "${imgs[$i]:-}" ]; then
        case ${imgs[$i]} in *.npy) image=(--images "${imgs[$i]}") ;; *) image=(--image-list "${imgs[$i]}") ;; esac
        [ -n "${idxs[$i]:-}" ] && image+=(--image-index "${idxs[$i]}")
    fi
    zcat -f "${srcs[$i]}" | "$bin/mmt-translate" --model "$ckpt" --beam "$beam" \
        --lenpen "$lenpen" --quiet "${image[@]}" "$@" > "$hyp"
    # tokenised lowercased BLEU: the tok files as they are; raw text through 13a, lowercased
    if [ "$scoring" = tok ]; then tokbleu=$("$bin/mmt-bleu" -b -tok none -lc "$ref" < "$hyp")
    else tokbleu=$("$bin/mmt-bleu" -b -lc "$ref" < "$hyp"); fi
    full=$("$bin/mmt-bleu" "$ref" < "$hyp" | head -n 1)
    bleu=$(echo "$full" | awk '{print $3}')
    ratio=$(echo "$full" | sed -n 's/.*ratio = \([0-9.]*\).*/\1/p')
    chrf=$("$bin/mmt-bleu" -b -m chrf "$ref" < "$hyp")
    printf '%-20s %8s %8s %8s %7s %6s\n' "$name" "$tokbleu" "$bleu" "$chrf" "$ratio" \
        "$(wc -l < "$hyp")"
done
