#!/usr/bin/env python3
"""An executable model of sacreBLEU 2.3.1's scoring, to cross-check mmt-bleu.

sacreBLEU itself is not installable here, so this script restates what it
computes (BLEU and chrF with its defaults, the 13a / intl / char / none
tokenizers, paired bootstrap resampling and approximate randomisation with
numpy's generator) in plain Python, independently of src/bleu.c. The golden
values in tests/test_bleu.c that are not from sacreBLEU's documentation were
produced with it, and scripts/check-bleu-reference.sh compares the two
implementations on random corpora.

Needs numpy (for the random numbers sacreBLEU draws) and, for --tokenize
intl, the `regex` module. Prints full-precision numbers:

  bleu_reference.py [--tokenize T] [-lc] [--smooth S] [--smooth-value V]
                    [--metrics bleu chrf] [--paired-bs | --paired-ar]
                    [--seed N] [--samples N] -i HYP [HYP ...] -- REF [REF ...]

With several HYP files and a paired test, the first is the baseline.
"""
import argparse
import math
import re
from collections import Counter

import numpy as np



# ---------------------------------------------------------------- tokenizers

def tok_none(line):
    return line


def tok_13a(line):
    for a, b in (("<skipped>", ""), ("-\n", ""), ("\n", " "), ("&quot;", '"'),
                 ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
        line = line.replace(a, b)
    line = f" {line} "
    # mteval-v13a's substitutions, in order
    for pat, rep in ((r"([\{-\~\[-\` -\&\(-\+\:-\@\/])", r" \1 "),
                     (r"([^0-9])([\.,])", r"\1 \2 "),
                     (r"([\.,])([^0-9])", r" \1 \2"),
                     (r"([0-9])(-)", r"\1 \2 ")):
        line = re.sub(pat, rep, line)
    return " ".join(line.split())


def tok_intl(line):
    import regex
    for pat, rep in ((r"(\P{N})(\p{P})", r"\1 \2 "), (r"(\p{P})(\P{N})", r" \1 \2"),
                     (r"(\p{S})", r" \1 ")):
        line = regex.sub(pat, rep, line)
    return " ".join(line.split())


def tok_char(line):
    return " ".join(line)


TOKENIZERS = {"none": tok_none, "13a": tok_13a, "intl": tok_intl, "char": tok_char}


# ---------------------------------------------------------------------- BLEU

def word_ngrams(tokens, max_n):
    c = Counter()
    for n in range(1, max_n + 1):
        for i in range(len(tokens) - n + 1):
            c[tuple(tokens[i:i + n])] += 1
    return c


def bleu_segment(hyp, refs, tok, lc):
    def prep(s):
        return TOKENIZERS[tok]((s.lower() if lc else s).rstrip()).split()

    h = prep(hyp)
    merged, lens = Counter(), []
    for r in refs:
        toks = prep(r)
        lens.append(len(toks))
        for g, c in word_ngrams(toks, 4).items():
            merged[g] = max(merged[g], c)
    best = min(lens, key=lambda L: (abs(len(h) - L), L))
    correct, total = [0] * 4, [0] * 4
    for g, c in word_ngrams(h, 4).items():
        total[len(g) - 1] += c
        correct[len(g) - 1] += min(c, merged.get(g, 0))
    return [len(h), best] + correct + total


def bleu_score(stats, smooth="exp", value=None):
    hyp_len, ref_len = int(stats[0]), int(stats[1])
    correct, total = list(stats[2:6]), list(stats[6:10])
    if value is None:
        value = {"floor": 0.1, "add-k": 1}.get(smooth)
    bp = 1.0 if hyp_len >= ref_len else (math.exp(1 - ref_len / hyp_len) if hyp_len > 0 else 0.0)
    prec = [0.0] * 4
    if not any(correct):
        return 0.0, prec, bp
    mteval = 1.0
    for n in range(4):
        if smooth == "add-k" and n > 0:
            correct[n] += value
            total[n] += value
        if total[n] == 0:
            break
        if correct[n] == 0:
            if smooth == "exp":
                mteval *= 2
                prec[n] = 100.0 / (mteval * total[n])
            elif smooth == "floor":
                prec[n] = 100.0 * value / total[n]
        else:
            prec[n] = 100.0 * correct[n] / total[n]
    logs = sum([-9999999999 if p == 0.0 else math.log(p) for p in prec])
    return bp * math.exp(logs / 4), prec, bp


# ---------------------------------------------------------------------- chrF

def chrf_f(stats):
    prec_sum = rec_sum = 0.0
    eff = 0
    for i in range(6):
        h, r, m = stats[3 * i:3 * i + 3]
        if h > 0 and r > 0:
            prec_sum += m / h
            rec_sum += m / r
            eff += 1
    if eff == 0:
        return 0.0
    p, r = prec_sum / eff, rec_sum / eff
    if p + r == 0:
        return 0.0
    return 100 * (5 * p * r) / (4 * p + r)


def chrf_segment(hyp, refs, lc):
    def grams(s):
        s = "".join((s.lower() if lc else s).split())
        return [Counter(s[i:i + n] for i in range(len(s) - n + 1)) for n in range(1, 7)]

    hg = grams(hyp)
    best, best_f = None, -1.0
    for r in refs:
        stats = []
        for h, rr in zip(hg, grams(r)):
            match = sum(min(c, rr[g]) for g, c in h.items() if g in rr)
            stats += [sum(h.values()) if rr else 0, sum(rr.values()), match]
        f = chrf_f(stats)
        if f > best_f:
            best, best_f = stats, f
    return best


# ---------------------------------------------------------- significance

def ci(scores):
    s = np.sort(np.array(scores))
    lo = len(s) // 40
    return s.mean(), 0.5 * (s[len(s) - lo - 1] - s[lo])


def paired_bs(score_fn, base, sys, n_samples, seed):
    """Score, mean, ci and p of sys against base; float32 statistics as numpy does."""
    idx = np.random.default_rng(seed).choice(len(base), size=(n_samples, len(base)),
                                             replace=True)
    b32, s32 = np.array(base, dtype="float32"), np.array(sys, dtype="float32")
    sb = np.array([score_fn(x.sum(0)) for x in b32[idx]])
    ss = np.array([score_fn(x.sum(0)) for x in s32[idx]])
    actual = abs(score_fn(list(np.sum(base, 0))) - score_fn(list(np.sum(sys, 0))))
    diffs = np.abs(ss - sb)
    c = np.sum((diffs - diffs.mean()) > actual).item()
    mean, half = ci(ss)
    return score_fn(list(np.sum(sys, 0))), mean, half, (c + 1) / (n_samples + 1)


def paired_ar(score_fn, base, sys, n_trials, seed):
    pos = np.random.default_rng(seed).integers(2, size=(n_trials, len(base)), dtype=bool)
    b, s = np.array(base), np.array(sys)
    a_stats, b_stats = pos @ b + ~pos @ s, ~pos @ b + pos @ s
    diffs = np.abs(np.array([score_fn(list(x)) for x in a_stats]) -
                   np.array([score_fn(list(x)) for x in b_stats]))
    actual = abs(score_fn(list(b.sum(0))) - score_fn(list(s.sum(0))))
    return score_fn(list(s.sum(0))), (np.sum(diffs > actual).item() + 1) / (n_trials + 1)


# ----------------------------------------------------------------------- main

def read_lines(path):
    with open(path, encoding="utf-8", newline="\n") as f:
        return [line.rstrip() for line in f]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-i", "--input", nargs="+", required=True)
    ap.add_argument("refs", nargs="+")
    ap.add_argument("--tokenize", default="13a")
    ap.add_argument("-lc", action="store_true")
    ap.add_argument("--chrf-lowercase", action="store_true")
    ap.add_argument("--smooth", default="exp")
    ap.add_argument("--smooth-value", type=float)
    ap.add_argument("--metrics", nargs="+", default=["bleu"])
    ap.add_argument("--paired-bs", action="store_true")
    ap.add_argument("--paired-ar", action="store_true")
    ap.add_argument("--samples", type=int)
    ap.add_argument("--seed", type=int, default=12345)
    args = ap.parse_args()

    refs = [read_lines(p) for p in args.refs]
    systems = [read_lines(p) for p in args.input]
    seg_refs = [[r[i] for r in refs if r[i] != ""] for i in range(len(refs[0]))]

    for metric in args.metrics:
        if metric == "bleu":
            def stats_of(hyps):
                return [bleu_segment(h, rs, args.tokenize, args.lc) for h, rs in zip(hyps, seg_refs)]

            def score_fn(st):
                return bleu_score(st, args.smooth, args.smooth_value)[0]
        else:
            def stats_of(hyps):
                return [chrf_segment(h, rs, args.chrf_lowercase) for h, rs in zip(hyps, seg_refs)]

            score_fn = chrf_f
        all_stats = [stats_of(s) for s in systems]
        for name, st in zip(args.input, all_stats):
            total = [sum(col) for col in zip(*st)]
            if metric == "bleu":
                score, prec, bp = bleu_score(total, args.smooth, args.smooth_value)
                print(f"{metric} {name} {score:.12f} {' '.join(f'{p:.12f}' for p in prec)} "
                      f"{bp:.12f} {total[0]} {total[1]}")
            else:
                print(f"{metric} {name} {score_fn(total):.12f}")
        if args.paired_bs:
            n = args.samples or 1000
            idx = np.random.default_rng(args.seed).choice(
                len(systems[0]), size=(n, len(systems[0])), replace=True)
            b32 = np.array(all_stats[0], dtype="float32")
            mean, half = ci([score_fn(x.sum(0)) for x in b32[idx]])
            print(f"bs {metric} {args.input[0]} mean {mean:.12f} ci {half:.12f}")
            for name, st in zip(args.input[1:], all_stats[1:]):
                score, mean, half, p = paired_bs(score_fn, all_stats[0], st, n, args.seed)
                print(f"bs {metric} {name} {score:.12f} mean {mean:.12f} ci {half:.12f} p {p:.12f}")
        if args.paired_ar:
            n = args.samples or 10000
            for name, st in zip(args.input[1:], all_stats[1:]):
                score, p = paired_ar(score_fn, all_stats[0], st, n, args.seed)
                print(f"ar {metric} {name} {score:.12f} p {p:.12f}")


if __name__ == "__main__":
    main()
