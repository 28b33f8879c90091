#!/usr/bin/env bash
# probe-eval.sh - the visual probe's measure for one or more runs: the share
# of masked colour words of the probe's test split that the translation
# renders with the right German colour word (any inflection; mmt-probe
# score), with the congruent images and with the images shuffled across
# sentences (the incongruent-image test), and BLEU on the same output; then
# the accuracy over the sentences with 1, 2 and 3 or more masked colours.
#
# usage: scripts/probe-eval.sh RUN_DIR [RUN_DIR ...]
# Environment: BIN (build), PROBE (data/probe), BEAM (the recipe's decode.beam).
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: scripts/probe-eval.sh RUN_DIR [RUN_DIR ...]" >&2; exit 2; }
bin=${BIN:-build}
probe=${PROBE:-data/probe}
for f in test.en test.de test.colours test.images.txt test.shuffled.images.txt; do
    [ -f "$probe/$f" ] || { echo "probe-eval.sh: $probe/$f not found (run data/make-probe)" >&2; exit 1; }
done
printf '%-28s %-10s %10s %22s %8s\n' "run" "images" "accuracy" "(right / masked)" "BLEU"
for run in "$@"; do
    ckpt=
    for c in checkpoint_avg checkpoint_best checkpoint_last; do
        [ -f "$run/$c.safetensors" ] && { ckpt=$run/$c.safetensors; break; }
    done
    [ -n "$ckpt" ] || { echo "probe-eval.sh: no checkpoint in $run" >&2; exit 1; }
    beam=${BEAM:-$("$bin/mmt-train" "$run/recipe.json" --query decode.beam)}
    fusion=$("$bin/mmt-train" "$run/recipe.json" --query model.fusion)
    mkdir -p "$run/eval"
    if [ "$fusion" = none ]; then sets="none"; else sets="congruent shuffled"; fi
    for s in $sets; do
        case $s in
            none) image=() ;;
            congruent) image=(--image-list "$probe/test.images.txt") ;;
            shuffled) image=(--image-list "$probe/test.shuffled.images.txt") ;;
        esac
        hyp=$run/eval/probe-$s.hyp
        "$bin/mmt-translate" --model "$ckpt" --beam "$beam" --quiet "${image[@]}" \
            < "$probe/test.en" > "$hyp"
        acc=$("$bin/mmt-probe" score --colours "$probe/test.colours" --hyp "$hyp")
        bleu=$("$bin/mmt-bleu" -b -tok none -lc "$probe/test.de" < "$hyp")
        printf '%-28s %-10s %10s %22s %8s\n' "$(basename "$run")" "$s" \
            "$(echo "$acc" | awk '{print $2}')" "$(echo "$acc" | awk '{print $3}')" "$bleu"
        # the same by how many colours the sentence masks: one colour needs
        # only the image, several also need each [cK] bound to its square
        for k in 1 2 3; do
            awk -v k=$k '{ print ((k < 3 ? NF == k : NF >= k) ? $0 : "") }' \
                "$probe/test.colours" > "$run/eval/colours-$k"
            acc=$("$bin/mmt-probe" score --colours "$run/eval/colours-$k" --hyp "$hyp" 2>/dev/null)
            printf '%-28s %-10s %10s %22s\n' "" "  $k$([ $k = 3 ] && echo +) colour(s)" \
                "$(echo "$acc" | awk '{print $2}')" "$(echo "$acc" | awk '{print $3}')"
        done
    done
done
