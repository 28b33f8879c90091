#!/usr/bin/python3
"""torch_train.py - the PyTorch side of bench-train: the same training step in
plain PyTorch, timed the same way, printing the same figures.

The model is what a typical user writes for transformer-tiny/small: nn.Linear,
nn.LayerNorm, nn.Dropout, softmax attention with a fused q/k/v projection,
post-norm, tied embeddings, F.cross_entropy with label smoothing. float32.
The batch is drawn by the same splitmix64 generator as bench/train.c, so its
shape, token counts and ids are those mmt times.

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_train.py \\
        [--model tiny|small|PATH]... [--threads N] [--steps K] [--warmup W] \\
        [--max-tokens N] [--dropout P] [--vocab V] [--seed S] [--no-ref] [--profile] [--tsv]

Run it with Debian's python3 (/usr/bin/python3), not a pyenv one. stdout: the
table, or with --tsv rows "impl model threads metric value" (the table then goes
to stderr). OMP_WAIT_POLICY=PASSIVE is set here when the caller has not set it:
PyTorch's OpenMP workers otherwise spin and steal the cores the main thread
needs between parallel regions.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP

import argparse
import json
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as nnf

POOL = 29000
PAD, UNK, BOS, EOS = 0, 1, 2, 3
MASK64 = (1 << 64) - 1


# ------------------------------------------------------------ synthetic batch

class SplitMix64:
    """The generator of bench/train.c, step for step."""

    def __init__(self, seed):
        self.s = seed & MASK64

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def uniform(self):
        """Uniform on (0, 1]."""
        return ((self.next() >> 11) + 1) * (1.0 / 9007199254740992.0)

    def normal(self):
        u1, u2 = self.uniform(), self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def round_clamp(x, lo, hi):
    return min(max(int(math.floor(x + 0.5)), lo), hi)


def cut_batches(pairs, max_tokens):
    """Batches of the sorted pool with B * max(S, T) <= max_tokens: their count
    and the (first, count) of the one holding the median pair."""
    n, nb, start, longest, chosen = len(pairs), 0, 0, 0, None
    for i in range(n + 1):
        length = max(pairs[i]) if i < n else 0
        wider = max(length, longest)
        if i == n or (i > start and (i - start + 1) * wider > max_tokens):
            if start <= n // 2 < i:
                chosen = (start, i - start)
            nb += 1
            start, wider = i, length
        longest = wider
    return nb, chosen


def make_batch(V, max_tokens, seed):
    """src (B, S), tgt_in (B, T), tgt_out (B, T) int64, right-padded, and the
    non-pad token counts; see bench/train.c for the length model."""
    rng = SplitMix64(seed)
    pairs = []
    for _ in range(POOL):
        z1, z2 = rng.normal(), rng.normal()
        pairs.append((round_clamp(14.0 + 4.0 * z1, 4, 40),
                      round_clamp(16.0 + 5.0 * (0.8 * z1 + 0.6 * z2), 4, 48)))
    pairs.sort()
    nbatches, (first, B) = cut_batches(pairs, max_tokens)
    chosen = pairs[first:first + B]
    S, T = max(p[0] for p in chosen), max(p[1] for p in chosen)

    # ids, from a second stream
    r = SplitMix64(seed ^ 0x5DEECE66D)
    src = torch.full((B, S), PAD, dtype=torch.int64)
    tgt_in = torch.full((B, T), PAD, dtype=torch.int64)
    tgt_out = torch.full((B, T), PAD, dtype=torch.int64)
    for b, (s_len, t_len) in enumerate(chosen):
        src[b, :s_len - 1] = torch.tensor([4 + r.next() % (V - 4) for _ in range(s_len - 1)])
        src[b, s_len - 1] = EOS
        words = torch.tensor([4 + r.next() % (V - 4) for _ in range(t_len - 1)],
                             dtype=torch.int64)
        tgt_in[b, 0] = BOS
        tgt_in[b, 1:t_len] = words
        tgt_out[b, :t_len - 1] = words
        tgt_out[b, t_len - 1] = EOS
    src_tokens = sum(p[0] for p in chosen)
    tgt_tokens = sum(p[1] for p in chosen)
    return src, tgt_in, tgt_out, src_tokens, tgt_tokens, nbatches


# ---------------------------------------------------------------------- model

def positions(n, D):
    """Sinusoidal table (n, D), fairseq's layout: sin in the first half, cos in the second."""
    half = D // 2
    w = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
    t = torch.arange(n, dtype=torch.float32)[:, None] * w[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


def attention(q, k, v, masked, H):
    """q (B, Tq, D), k and v (B, Tk, D), masked (B, 1 or Tq, Tk) True where hidden."""
    B, Tq, D = q.shape
    dh = D // H
    q = q.view(B, Tq, H, dh).transpose(1, 2)
    k = k.view(B, -1, H, dh).transpose(1, 2)
    v = v.view(B, -1, H, dh).transpose(1, 2)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
    scores = scores.masked_fill(masked[:, None], float("-inf"))
    ctx = torch.softmax(scores, dim=-1) @ v  # (B, H, Tq, dh)
    return ctx.transpose(1, 2).reshape(B, Tq, D)


class SelfAttention(nn.Module):
    def __init__(self, D, H):
        super().__init__()
        self.H, self.qkv, self.out = H, nn.Linear(D, 3 * D), nn.Linear(D, D)

    def forward(self, x, masked):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.out(attention(q, k, v, masked, self.H))


class CrossAttention(nn.Module):
    def __init__(self, D, H):
        super().__init__()
        self.H, self.q, self.kv = H, nn.Linear(D, D), nn.Linear(D, 2 * D)
        self.out = nn.Linear(D, D)

    def forward(self, x, mem, masked):
        k, v = self.kv(mem).chunk(2, dim=-1)
        return self.out(attention(self.q(x), k, v, masked, self.H))


class FFN(nn.Module):
    def __init__(self, D, F):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(D, F), nn.Linear(F, D)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class EncoderLayer(nn.Module):
    def __init__(self, D, F, H, p):
        super().__init__()
        self.self_attn, self.self_attn_norm = SelfAttention(D, H), nn.LayerNorm(D)
        self.ffn, self.ffn_norm = FFN(D, F), nn.LayerNorm(D)
        self.drop = nn.Dropout(p)

    def forward(self, x, masked):
        x = self.self_attn_norm(x + self.drop(self.self_attn(x, masked)))
        return self.ffn_norm(x + self.drop(self.ffn(x)))


class DecoderLayer(nn.Module):
    def __init__(self, D, F, H, p):
        super().__init__()
        self.self_attn, self.self_attn_norm = SelfAttention(D, H), nn.LayerNorm(D)
        self.cross_attn, self.cross_attn_norm = CrossAttention(D, H), nn.LayerNorm(D)
        self.ffn, self.ffn_norm = FFN(D, F), nn.LayerNorm(D)
        self.drop = nn.Dropout(p)

    def forward(self, y, mem, self_masked, cross_masked):
        y = self.self_attn_norm(y + self.drop(self.self_attn(y, self_masked)))
        y = self.cross_attn_norm(y + self.drop(self.cross_attn(y, mem, cross_masked)))
        return self.ffn_norm(y + self.drop(self.ffn(y)))


class Transformer(nn.Module):
    """Post-norm encoder-decoder with tied embeddings, as src/model.c."""

    def __init__(self, cfg):
        super().__init__()
        D, F, H, V, p = cfg["D"], cfg["F"], cfg["H"], cfg["V"], cfg["dropout"]
        self.D, self.eps = D, cfg["label_smoothing"]
        self.embed = nn.Embedding(V, D, padding_idx=PAD)
        nn.init.normal_(self.embed.weight, std=D ** -0.5)
        with torch.no_grad():
            self.embed.weight[PAD].zero_()
        self.register_buffer("pe", positions(cfg["max_positions"], D), persistent=False)
        self.enc = nn.ModuleList(EncoderLayer(D, F, H, p) for _ in range(cfg["enc_layers"]))
        self.dec = nn.ModuleList(DecoderLayer(D, F, H, p) for _ in range(cfg["dec_layers"]))
        self.drop = nn.Dropout(p)
        for name, w in self.named_parameters():
            if name.endswith(".weight") and w.dim() == 2 and name != "embed.weight":
                nn.init.xavier_uniform_(w)
            elif name.endswith(".bias"):
                nn.init.zeros_(w)

    def embed_tokens(self, ids):
        return self.drop(math.sqrt(self.D) * self.embed(ids) + self.pe[:ids.shape[1]])

    def forward(self, src, tgt_in, tgt_out):
        """The summed label-smoothed loss over non-pad targets."""
        T = tgt_in.shape[1]
        src_masked = (src == PAD)[:, None, :]  # (B, 1, S)
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        tgt_masked = causal[None] | (tgt_in == PAD)[:, None, :]  # (B, T, T)

        x = self.embed_tokens(src)
        for layer in self.enc:
            x = layer(x, src_masked)
        y = self.embed_tokens(tgt_in)
        for layer in self.dec:
            y = layer(y, x, tgt_masked, src_masked)
        logits = nnf.linear(y, self.embed.weight)
        return nnf.cross_entropy(logits.view(-1, logits.shape[-1]), tgt_out.view(-1),
                                 ignore_index=PAD, label_smoothing=self.eps, reduction="sum")


# ----------------------------------------------------------------- the preset

def load_config(name, vocab, dropout):
    path = "models/transformer-%s.json" % name if name in ("tiny", "small") else name
    with open(path) as f:
        j = json.load(f)
    if j.get("norm", "post") != "post":
        sys.exit("torch_train.py: %s: only post-norm presets are written here" % path)
    cfg = {"enc_layers": j["encoder_layers"], "dec_layers": j["decoder_layers"],
           "D": j["d_model"], "F": j["ffn_dim"], "H": j["heads"], "V": vocab,
           "dropout": j.get("dropout", 0.3) if dropout is None else dropout,
           "label_smoothing": j.get("label_smoothing", 0.1),
           "max_positions": j.get("max_positions", 1024)}
    short = os.path.basename(path)
    short = short[:-5] if short.endswith(".json") else short
    short = short[12:] if short.startswith("transformer-") else short
    return cfg, short


def step_flops(cfg, B, S, T):
    """model_step_flops of src/model.c, and its attention part."""
    D, F, V = cfg["D"], cfg["F"], cfg["V"]
    Ns, Nt = B * S, B * T
    attn_enc, attn_dec = 2 * Ns * S * D, 2 * Nt * T * D + 2 * Nt * S * D
    enc = Ns * (4 * D * D + 2 * D * F) + attn_enc
    dec = Nt * (6 * D * D + 2 * D * F) + Ns * 2 * D * D + attn_dec
    fwd = cfg["enc_layers"] * enc + cfg["dec_layers"] * dec + Nt * D * V
    attn = cfg["enc_layers"] * attn_enc + cfg["dec_layers"] * attn_dec
    return 6.0 * fwd, 6.0 * attn


# ------------------------------------------------------------------ reference

def model_shapes(cfg):
    """(name, M, N, K, a transposed, b transposed): bench/train.c's list."""
    N, D, F, V = 4096, cfg["D"], cfg["F"], cfg["V"]
    return [("square_2048", 2048, 2048, 2048, 0, 0), ("qkv_fwd", N, 3 * D, D, 0, 1),
            ("out_fwd", N, D, D, 0, 1), ("fc1_fwd", N, F, D, 0, 1), ("fc2_fwd", N, D, F, 0, 1),
            ("logits_fwd", N, V, D, 0, 1), ("logits_dx", N, D, V, 0, 0),
            ("logits_dw", V, D, N, 1, 0), ("fc1_dw", F, D, N, 1, 0)]


def mm_rate(M, N, K, ta, tb):
    """GFLOP/s of torch.mm on one shape: best of repeats over >= 1 s."""
    a = torch.rand(K, M) if ta else torch.rand(M, K)
    b = torch.rand(N, K) if tb else torch.rand(K, N)
    a, b = (a.t() if ta else a), (b.t() if tb else b)
    out = torch.empty(M, N)
    best, spent, rep = float("inf"), 0.0, 0
    while rep < 200 and (rep < 5 or spent < 1.0):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        dt = time.perf_counter() - t0
        best, spent, rep = min(best, dt), spent + dt, rep + 1
    return 2.0 * M * N * K / best * 1e-9


# --------------------------------------------------------------------- timing

def machine_busy_seconds():
    """Seconds the machine's CPUs have been busy (all processes, steal
    included), from /proc/stat; 0 where it cannot be read."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def time_steps(model, batch, ntokens, warmup, steps):
    """Per timed step: seconds of zero_grad + forward + backward, of Adam; the
    per-token loss of the first step; the share of the CPUs other processes
    used during the timed steps (%)."""
    opt = torch.optim.Adam(model.parameters(), lr=5e-4, betas=(0.9, 0.98), eps=1e-8)
    step_s, adam_s, first_loss = [], [], None
    for i in range(warmup + steps):
        if i == warmup:
            busy0, own0, wall0 = machine_busy_seconds(), own_cpu_seconds(), time.perf_counter()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(*batch)
        (loss / ntokens).backward()
        t1 = time.perf_counter()
        opt.step()
        t2 = time.perf_counter()
        first_loss = loss.item() / ntokens if first_loss is None else first_loss
        print("  %s step %d: %.3f s, adam %.4f s, loss %.4f" % (
            "warm-up" if i < warmup else "timed", i, t1 - t0, t2 - t1, loss.item() / ntokens),
            file=sys.stderr)
        if i >= warmup:
            step_s.append(t1 - t0)
            adam_s.append(t2 - t1)
    others = machine_busy_seconds() - busy0 - (own_cpu_seconds() - own0)
    others = max(0.0, 100.0 * others / ((time.perf_counter() - wall0) * (os.cpu_count() or 1)))
    return step_s, adam_s, first_loss, opt, others


def profile_step(model, opt, batch, ntokens):
    """One step under the autograd profiler: shares of its wall time in the
    matrix products of the linear layers (addmm, mm) and of attention (bmm).
    The profiler's own cost inflates the wall time a little, so the shares
    are slight underestimates; its bookkeeping afterwards takes far longer
    than the step (torch 1.13's bmm records one select per matrix)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        (model(*batch) / ntokens).backward()
        wall = time.perf_counter() - t0
    self_us = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    lin = sum(self_us.get(k, 0.0) for k in ("aten::addmm", "aten::mm", "aten::addmm_"))
    bmm = sum(self_us.get(k, 0.0) for k in ("aten::bmm", "aten::baddbmm"))
    return lin * 1e-6 / wall, bmm * 1e-6 / wall


# --------------------------------------------------------------------- report

def blas_core():
    """OpenBLAS's kernel family, when torch's BLAS is OpenBLAS."""
    import ctypes
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return "unknown"


def median(x):
    x = sorted(x)
    n = len(x)
    return x[n // 2] if n % 2 else 0.5 * (x[n // 2 - 1] + x[n // 2])


class Report:
    def __init__(self, model, threads, tsv):
        self.model, self.threads, self.tsv = model, threads, tsv
        self.table = sys.stderr if tsv else sys.stdout

    def emit(self, metric, label, value, fmt, note=""):
        print("  %-34s %14s  %s" % (label, fmt % value, note), file=self.table)
        if self.tsv:
            print("torch\t%s\t%d\t%s\t%.6g" % (self.model, self.threads, metric, value))


def bench_model(args, name):
    cfg, short = load_config(name, args.vocab, args.dropout)
    r = Report(short, args.threads, args.tsv)
    src, tgt_in, tgt_out, src_tokens, tgt_tokens, nbatches = make_batch(
        cfg["V"], args.max_tokens, args.seed)
    B, S, T = src.shape[0], src.shape[1], tgt_in.shape[1]
    torch.manual_seed(args.seed)
    model = Transformer(cfg)
    model.train()
    print("%s: B %d S %d T %d, %d warm-up + %d timed steps" % (
        short, B, S, T, args.warmup, args.steps), file=sys.stderr)
    batch = (src, tgt_in, tgt_out)
    step_s, adam_s, loss, opt, others = time_steps(model, batch, tgt_tokens, args.warmup,
                                                   args.steps)
    if args.profile:
        print("%s: one step under the profiler" % short, file=sys.stderr)
        lin_share, bmm_share = profile_step(model, opt, batch, tgt_tokens)
    shapes = model_shapes(cfg) if args.ref else []
    if shapes:
        print("%s: torch.mm reference rates" % short, file=sys.stderr)
    rates = [mm_rate(*s[1:]) for s in shapes]

    med = median(step_s)
    flops, attn = step_flops(cfg, B, S, T)
    nparams = sum(p.numel() for p in model.parameters())
    print("\ntorch  %s  (L %d+%d, D %d, F %d, H %d, V %d, dropout %.2f)  threads %d  "
          "torch %s, OpenBLAS core %s, OMP_WAIT_POLICY=%s" % (
              short, cfg["enc_layers"], cfg["dec_layers"], cfg["D"], cfg["F"], cfg["H"],
              cfg["V"], cfg["dropout"], args.threads, torch.__version__, blas_core(),
              os.environ.get("OMP_WAIT_POLICY")), file=r.table)
    r.emit("params", "parameters", nparams, "%.0f")
    r.emit("batch_B", "batch sentences B", B, "%.0f",
           "S %d, T %d; %d batches per epoch of %d pairs" % (S, T, nbatches, POOL))
    r.emit("batch_S", "batch S", S, "%.0f")
    r.emit("batch_T", "batch T", T, "%.0f")
    r.emit("src_tokens", "source tokens", src_tokens, "%.0f", "of %d padded (%.0f %% real)" % (
        B * S, 100.0 * src_tokens / (B * S)))
    r.emit("tgt_tokens", "target tokens", tgt_tokens, "%.0f", "of %d padded (%.0f %% real)" % (
        B * T, 100.0 * tgt_tokens / (B * T)))
    r.emit("loss", "loss per token, first step", loss, "%.4f")
    r.emit("step_median_s", "fwd+bwd step, median (s)", med, "%.4f",
           "min %.4f, max %.4f" % (min(step_s), max(step_s)))
    r.emit("step_min_s", "fwd+bwd step, min (s)", min(step_s), "%.4f")
    r.emit("step_max_s", "fwd+bwd step, max (s)", max(step_s), "%.4f")
    r.emit("adam_median_s", "adam step, median (s)", median(adam_s), "%.4f")
    r.emit("tgt_tok_per_s", "target tokens/s", tgt_tokens / med, "%.0f",
           "non-pad target tokens / median step")
    r.emit("all_tok_per_s", "source+target tokens/s", (src_tokens + tgt_tokens) / med, "%.0f")
    r.emit("step_gflop", "FLOPs per step (GFLOP)", flops * 1e-9, "%.2f")
    r.emit("gflops", "achieved GFLOP/s", flops / med * 1e-9, "%.1f",
           "%.1f GFLOP per step (%.1f of them attention)" % (flops * 1e-9, attn * 1e-9))
    if rates:
        r.emit("pct_peak", "% of square-sgemm peak", 100.0 * flops / med * 1e-9 / rates[0],
               "%.1f")
    if args.profile:
        report_profile(r, lin_share, bmm_share, med, flops - attn)
    for (sname, M, N, K, ta, tb), rate in zip(shapes, rates):
        r.emit("ref_%s_gflops" % sname, "ref torch.mm %s (GFLOP/s)" % sname, rate, "%.1f",
               "M %d N %d K %d%s%s" % (M, N, K, " A^T" if ta else "", " B^T" if tb else ""))
    r.emit("others_cpu_pct", "CPU used by other processes (%)", others, "%.1f",
           "during the timed steps, of all CPUs; above ~5 the figures are noisy")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    r.emit("peak_rss_mib", "peak RSS (MiB)", rss, "%.0f", "whole process so far")


def report_profile(r, lin_share, bmm_share, med, linear_flops):
    r.emit("gemm_s", "mm/addmm seconds per step", lin_share * med, "%.4f",
           "from one profiled step")
    r.emit("gemm_share", "share in mm/addmm (%)", 100.0 * lin_share, "%.1f",
           "linear layers and logits, as mmt's sgemm")
    r.emit("outside_share", "share outside mm/addmm (%)", 100.0 * (1.0 - lin_share), "%.1f",
           "of which attention bmm %.1f %%" % (100.0 * bmm_share))
    r.emit("bmm_share", "share in attention bmm (%)", 100.0 * bmm_share, "%.1f")
    r.emit("gemm_in_model_gflops", "mm GFLOP/s inside the step",
           linear_flops / (lin_share * med) * 1e-9, "%.1f", "linear FLOPs / mm seconds")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", help="tiny, small or a preset path")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=4096)
    ap.add_argument("--dropout", type=float, default=None)
    ap.add_argument("--vocab", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tsv", action="store_true")
    ap.add_argument("--no-ref", dest="ref", action="store_false",
                    help="skip the reference torch.mm timings")
    ap.add_argument("--profile", action="store_true",
                    help="one more step under torch.profiler for the mm/addmm share "
                         "(slow: about a minute of profiler bookkeeping)")
    args = ap.parse_args()
    if args.steps < 1:
        ap.error("--steps: expected at least 1")
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as mmt_set_ftz
    if args.tsv:
        print("impl\tmodel\tthreads\tmetric\tvalue")
    for name in args.model or ["tiny", "small"]:
        bench_model(args, name)


if __name__ == "__main__":
    main()
