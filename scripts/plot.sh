#!/usr/bin/env bash
# plot.sh - the learning curve of a run as a PNG: training and validation loss
# per token against updates, and validation BLEU on a second axis.
#
# usage: scripts/plot.sh RUN_DIR [OUT.png]     (default RUN_DIR/curve.png)
# Reads RUN_DIR/log.tsv (one row per validation, written by mmt-train).
set -euo pipefail
run=${1:?usage: scripts/plot.sh RUN_DIR [OUT.png]}
out=${2:-$run/curve.png}
log=$run/log.tsv
[ -f "$log" ] || { echo "plot.sh: $log not found (has the run validated yet?)" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }
[ "$(wc -l < "$log")" -ge 2 ] || { echo "plot.sh: $log has no validation rows yet" >&2; exit 1; }
gnuplot <<GP
set terminal pngcairo size 900,540 noenhanced
set output "$out"
set datafile separator "\t"
set key autotitle columnhead top center
set title "$(basename "$run")"
set xlabel "updates"
set ylabel "loss per target token"
set y2label "validation BLEU"
set ytics nomirror
set y2tics
set grid
plot "$log" using 1:4 with linespoints title "train loss", \
     "$log" using 1:5 with linespoints title "valid loss", \
     "$log" using 1:7 axes x1y2 with linespoints title "valid BLEU"
GP
echo "plot.sh: wrote $out" >&2
