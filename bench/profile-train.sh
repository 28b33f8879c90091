#!/bin/sh
# bench/profile-train.sh - where mmt's training step spends the time that is
# not sgemm: the wall time of every layer kernel, then (with PERF=1) perf's
# view of the hottest functions.
#
#     bench/profile-train.sh [MODEL...]        (default: tiny)
#
# Builds bench-train in BUILD (build-bench-prof) with -DBENCH_KERNEL_TIMES and
# the linker's --wrap for each kernel of src/kernels.h plus memset and memcpy,
# so each kernel call is timed from outside src/ (see bench/kernel_times.h).
# Environment: THREADS (2), STEPS (5), WARMUP (1), PERF (0), BUILD;
# OPENBLAS_CORETYPE as for bench/run-train.sh (SkylakeX or Haswell is set
# when OpenBLAS would fall back to Prescott).
set -eu

cd "$(dirname "$0")/.."
MODELS=${*:-tiny}
THREADS=${THREADS:-2}
STEPS=${STEPS:-5}
WARMUP=${WARMUP:-1}
PERF=${PERF:-0}
BUILD=${BUILD:-build-bench-prof}

wrap=
for k in dropout_forward dropout_backward embedding_forward embedding_backward \
         layernorm_forward layernorm_backward layernorm_backward_into linear_forward \
         linear_backward linear_backward_into \
         relu_forward relu_backward attention_forward attention_backward \
         residual_forward residual_backward xent_forward xent_backward memset memcpy \
         xent_forward_exp dropout_residual_forward dropout_residual_backward; do
    wrap="$wrap,--wrap=$k"
done
make -s BUILD="$BUILD" CFLAGS=-DBENCH_KERNEL_TIMES LDLIBS="-Wl$wrap" "$BUILD/bench-train" >&2
BENCH=$BUILD/bench-train

if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ "$("$BENCH" --blas-core)" = Prescott ]; then
    if grep -qw avx512f /proc/cpuinfo; then
        export OPENBLAS_CORETYPE=SkylakeX
    elif grep -qw avx2 /proc/cpuinfo; then
        export OPENBLAS_CORETYPE=Haswell
    fi
fi

for m in $MODELS; do
    "$BENCH" --model "$m" --threads "$THREADS" --steps "$STEPS" --warmup "$WARMUP" --no-ref
    if [ "$PERF" = 1 ]; then
        data=$(mktemp "${TMPDIR:-/tmp}/perf-train.XXXXXX")
        perf record -q -F 999 -o "$data" \
            "$BENCH" --model "$m" --threads "$THREADS" --steps "$STEPS" --warmup "$WARMUP" \
            --no-ref >/dev/null 2>&1
        echo "perf: samples of both threads by function (libgomp's unnamed addresses are"
        echo "its threads spinning at barriers and between parallel regions); $data"
        perf report -i "$data" --no-children --sort dso,symbol --stdio 2>/dev/null |
            grep -E '^ +[0-9]' | head -30
    fi
done
