#!/bin/sh
# bench/run-train.sh - mmt's training step against PyTorch's, side by side.
#
#     bench/run-train.sh [THREADS...]          (default: 2; e.g. "2 1")
#
# For each thread count and model, in one go on this machine: bench-train,
# then bench/torch_train.py, then bench-train again (a drift check), all on
# the same synthetic batch. Each run's table goes to stderr; the summary goes
# to stdout: median step times, the ratio of mmt's target tokens/s to
# PyTorch's, the share of mmt's step outside sgemm, and the project's targets.
# About 5 minutes at 2 threads on an otherwise idle 2-core machine.
#
# Environment knobs:
#   MODELS        models to run (default "tiny small")
#   TINY_STEPS    timed steps for tiny (10), SMALL_STEPS for small (3),
#   WARMUP        warm-up steps before them (1)
#   TORCH_PROFILE 1 (default): one more PyTorch step under torch.profiler for
#                 tiny, for its mm/addmm share (about a minute of bookkeeping)
#   BLAS_AUTO     1 (default): when OPENBLAS_CORETYPE is unset and OpenBLAS
#                 falls back to its SSE3 "Prescott" kernels on a CPU with
#                 AVX-512 or AVX2, set SkylakeX or Haswell, for both sides
#   QUIET_WAIT    seconds to wait, before each run, for other processes to
#                 leave the CPUs (under 10 % busy); 0 skips the wait (60)
#   BUILD         build folder (build-bench); BENCH, the program, if prebuilt
#   KEEP          folder for the TSV of every run (default: a new temp folder)
set -eu

cd "$(dirname "$0")/.."
THREADS=${*:-2}
MODELS=${MODELS:-tiny small}
TINY_STEPS=${TINY_STEPS:-10}
SMALL_STEPS=${SMALL_STEPS:-3}
WARMUP=${WARMUP:-1}
TORCH_PROFILE=${TORCH_PROFILE:-1}
BLAS_AUTO=${BLAS_AUTO:-1}
QUIET_WAIT=${QUIET_WAIT:-60}
BUILD=${BUILD:-build-bench}
PYTHON=/usr/bin/python3 # Debian's, with python3-torch; not a pyenv one

if [ -z "${BENCH:-}" ]; then
    make -s BUILD="$BUILD" "$BUILD/bench-train" >&2
    BENCH=$BUILD/bench-train
fi
KEEP=${KEEP:-$(mktemp -d "${TMPDIR:-/tmp}/run-train.XXXXXX")}
mkdir -p "$KEEP"

# OpenBLAS 0.3.21 does not recognise recent Xeons and picks its SSE3 kernels
core=$("$BENCH" --blas-core)
if [ "$BLAS_AUTO" = 1 ] && [ -z "${OPENBLAS_CORETYPE:-}" ] && [ "$core" = Prescott ]; then
    if grep -qw avx512f /proc/cpuinfo; then
        OPENBLAS_CORETYPE=SkylakeX
    elif grep -qw avx2 /proc/cpuinfo; then
        OPENBLAS_CORETYPE=Haswell
    fi
    if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
        export OPENBLAS_CORETYPE
        echo "note: OpenBLAS chose its Prescott (SSE3) kernels; both sides run with" \
             "OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE (BLAS_AUTO=0 keeps Prescott)" >&2
        core=$("$BENCH" --blas-core)
    fi
fi

# cpu_busy: "busy total" jiffies of all CPUs, from /proc/stat
cpu_busy() {
    awk '/^cpu / { busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6 }' /proc/stat
}

# wait_quiet: wait up to QUIET_WAIT seconds for a second with the CPUs under 10 % busy;
# each run then reports how much other processes took while it was timed
wait_quiet() {
    waited=0
    while [ "$waited" -lt "$QUIET_WAIT" ]; do
        set -- $(cpu_busy)
        sleep 1
        set -- "$@" $(cpu_busy)
        [ $(( ($3 - $1) * 100 )) -lt $(( ($4 - $2) * 10 + 1 )) ] && return 0
        waited=$((waited + 1))
    done
    echo "note: the CPUs stayed busy with other work for ${QUIET_WAIT} s; running anyway" >&2
}

start=$(date +%s)
for t in $THREADS; do
    for m in $MODELS; do
        case $m in
            tiny) steps=$TINY_STEPS ;;
            *) steps=$SMALL_STEPS ;;
        esac
        prof=
        [ "$m" = tiny ] && [ "$TORCH_PROFILE" = 1 ] && prof=--profile
        common="--model $m --threads $t --steps $steps --warmup $WARMUP --tsv"
        wait_quiet
        echo "== $m, $t threads: mmt" >&2
        "$BENCH" $common >"$KEEP/mmt1-$m-$t.tsv"
        wait_quiet
        echo "== $m, $t threads: PyTorch" >&2
        OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$t \
            "$PYTHON" bench/torch_train.py $common --no-ref $prof >"$KEEP/torch-$m-$t.tsv"
        wait_quiet
        echo "== $m, $t threads: mmt again (drift)" >&2
        "$BENCH" $common --no-ref >"$KEEP/mmt2-$m-$t.tsv"
    done
done
elapsed=$(( $(date +%s) - start ))

# the summary, from the TSV rows "impl model threads metric value" of every run
"$PYTHON" - "$KEEP" "$core" "$elapsed" "$(nproc)" "$THREADS" "$MODELS" <<'PY'
import sys

keep, core, elapsed, ncpu, threads, models = sys.argv[1:]


def load(run, model, t):
    """{metric: value} of one run."""
    fig = {}
    with open("%s/%s-%s-%s.tsv" % (keep, run, model, t)) as f:
        for line in f:
            impl, m, thr, metric, value = line.rstrip("\n").split("\t")
            if impl != "impl":
                fig[metric] = float(value)
    return fig


print("\nmmt vs PyTorch, training step (fwd+bwd) on one ~4096-token Multi30k-like batch;")
print("OpenBLAS core %s, %s CPUs, %s s; TSV of every run in %s" % (core, ncpu, elapsed, keep))
head = ("model", "thr", "mmt s", "torch s", "mmt2 s", "mmt t/s", "torch", "ratio", "ratio",
        "%peak", "torch", "out%", "torch", "adam", "torch", "others %")
sub = ("", "", "median", "median", "median", "", "", "median", "best", "", "", "", "", "ms",
       "ms", "mmt/torch/mmt2")
fmt = "%-6s %3s  %8s %8s %8s  %7s %7s %6s %6s  %6s %6s  %6s %6s  %5s %5s  %s"
print(fmt % head)
print(fmt % sub)
targets = []
for t in threads.split():
    for m in models.split():
        a, p, b = load("mmt1", m, t), load("torch", m, t), load("mmt2", m, t)
        s = (a["step_median_s"] + b["step_median_s"]) / 2
        best = min(a["step_min_s"], b["step_min_s"])
        tok = a["tgt_tokens"]
        peak = a.get("ref_square_2048_gflops")
        out = (a["outside_share"] + b["outside_share"]) / 2
        pct = lambda g: "%.1f%%" % (100 * g / peak) if peak else "-"
        others = (a["others_cpu_pct"], p["others_cpu_pct"], b["others_cpu_pct"])
        print(fmt % (m, t, "%.3f" % a["step_median_s"], "%.3f" % p["step_median_s"],
                     "%.3f" % b["step_median_s"], "%.0f" % (tok / s),
                     "%.0f" % p["tgt_tok_per_s"], "%.2fx" % (p["step_median_s"] / s),
                     "%.2fx" % (p["step_min_s"] / best), pct(a["gflops"]), pct(p["gflops"]),
                     "%.1f%%" % out,
                     "%.1f%%" % p["outside_share"] if "outside_share" in p else "-",
                     "%.1f" % (1e3 * a["adam_median_s"]), "%.1f" % (1e3 * p["adam_median_s"]),
                     "%.0f / %.0f / %.0f" % others))
        print("       drift between the two mmt runs: %+.1f %% (step median)" % (
            100 * (b["step_median_s"] - a["step_median_s"]) / a["step_median_s"]))
        spare = 100.0 * max(0, int(ncpu) - int(t)) / int(ncpu)  # CPUs the runs leave idle
        if max(others) > spare + 5:
            print("       warning: other processes used up to %.0f %% of the CPUs: noisy"
                  % max(others))
        if m == "tiny":
            r = p["step_median_s"] / s
            targets.append("tiny, %s threads: >= 2x PyTorch's tokens/s: %.2fx, %s" % (
                t, r, "met" if r >= 2 else "NOT met"))
        if m == "small" and peak:
            r = a["gflops"] / peak
            targets.append("small, %s threads: >= 60 %% of the sgemm peak: %.1f %%, %s" % (
                t, 100 * r, "met" if r >= 0.6 else "NOT met"))
        targets.append("%s, %s threads: <= 20 %% of the step outside sgemm: %.1f %%, %s" % (
            m, t, out, "met" if out <= 20 else "NOT met"))
print("""columns: fwd+bwd seconds, median of the timed steps (mmt, PyTorch, mmt again); target
tokens/s (mmt: over the mean of its two medians); ratio of mmt's tokens/s to PyTorch's, from
the medians and from the best steps; achieved GFLOP/s as %% of the 2048^3 sgemm peak measured
in mmt's first run; share of the step outside the matrix products (mmt: outside sgemm, so
attention included, mean of its runs; PyTorch: outside mm/addmm, one profiled step); Adam
step in ms; CPU share taken by other processes during each run's timed steps.
""".replace("%%", "%"))
for line in targets:
    print("target: " + line)
PY
