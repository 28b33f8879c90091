#!/usr/bin/python3
"""torch_decode.py - a plain PyTorch decoder for mmt checkpoints (speed baseline).

    /usr/bin/python3 bench/torch_decode.py --model CKPT --beam N [--threads 2]
        < SOURCE_IDS > OUTPUT_IDS
    /usr/bin/python3 bench/torch_decode.py --model CKPT --extract-spm spm.model

Input: one sentence per line as space-separated SentencePiece ids (no bos, no
eos; e.g. from `spm_encode --output_format=id`). Output: the best hypothesis's
ids per line (without eos), in input order. Speed goes to stderr in the same
form as mmt-translate ("N sentences, M target tokens in S s: ..."; target
tokens count the eos, time excludes loading the model).

The model is the one of docs/ARCHITECTURE.md and tests/reference/make_fixture.py
(same math, float32, inference only). Decoding follows src/decode.c: the
source gets eos appended, the decoder starts from bos, pad and bos are never
produced, max length int(1.2f * (src_len + 1)) + 10 tokens including eos (eos
forced at the last one); beam search as fairseq: the 2k best (hyp, token)
extensions per sentence, an eos among the best k finishes that hypothesis
with score logprob / (len + 1)^lenpen, a sentence is done when k finished;
greedy is beam 1. Incremental decoding with a per-layer key/value cache
(concatenated each step, reordered with index_select as fairseq does);
batches of --batch-size sentences sorted longest first, as mmt-translate.

Needs only torch, numpy and the standard library (no safetensors module).
"""
import argparse
import json
import math
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as nnf

LN_EPS = 1e-5
NP_DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "U8": np.uint8,
             "I64": np.int64, "F16": np.float16}


def read_safetensors(path):
    """(metadata dict, {name: numpy array}) parsed by hand."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        dt = np.dtype(NP_DTYPES[h["dtype"]]).newbyteorder("<")
        tensors[name] = np.frombuffer(blob, dtype=dt, count=(b - a) // dt.itemsize,
                                      offset=base + a).reshape(h["shape"])
    return meta, tensors


class Model:
    def __init__(self, cfg, tensors):
        self.D = cfg["d_model"]
        self.H = cfg["heads"]
        self.dh = self.D // self.H
        self.enc_layers = cfg["encoder_layers"]
        self.dec_layers = cfg["decoder_layers"]
        self.pre_norm = cfg.get("norm", "post") == "pre"
        self.pad, self.bos, self.eos = cfg["pad_id"], cfg["bos_id"], cfg["eos_id"]
        self.max_positions = cfg.get("max_positions", 1024)
        self.p = {k: torch.from_numpy(np.array(v, dtype=np.float32))
                  for k, v in tensors.items()
                  if k.startswith(("embed.", "enc.", "dec."))}
        self.E = self.p["embed.weight"]
        self.scale = math.sqrt(self.D)
        half = self.D // 2
        w = torch.tensor([10000.0 ** (-i / (half - 1)) for i in range(half)], dtype=torch.float64)
        t = torch.arange(self.max_positions, dtype=torch.float64)[:, None] * w[None, :]
        self.pe = torch.cat([torch.sin(t), torch.cos(t)], dim=1).float()

    def lin(self, x, name):
        return nnf.linear(x, self.p[name + ".weight"], self.p[name + ".bias"])

    def ln(self, x, name):
        return nnf.layer_norm(x, (self.D,), self.p[name + ".weight"], self.p[name + ".bias"],
                              LN_EPS)

    def heads(self, x):  # (B, T, D) -> (B, H, T, dh)
        return x.view(x.shape[0], x.shape[1], self.H, self.dh).transpose(1, 2)

    def attend(self, q, k, v, mask):
        """q (B, H, Tq, dh), k v (B, H, Tk, dh), mask broadcastable, True = hidden."""
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.dh)
        if mask is not None:
            s = s.masked_fill(mask, float("-inf"))
        ctx = torch.softmax(s, dim=-1) @ v
        return ctx.transpose(1, 2).reshape(q.shape[0], q.shape[2], self.D)

    def sub(self, x, f, norm):
        if self.pre_norm:
            return x + f(self.ln(x, norm))
        return self.ln(x + f(x), norm)

    def encode(self, src):
        """src (B, S) int64 -> memory (B, S, D), pad mask (B, 1, 1, S)."""
        mask = (src == self.pad)[:, None, None, :]
        x = self.scale * self.E[src] + self.pe[:src.shape[1]][None]
        for i in range(self.enc_layers):
            e = "enc.%d." % i

            def sa(h, e=e):
                q, k, v = self.lin(h, e + "self_attn.qkv").split(self.D, dim=-1)
                return self.lin(self.attend(self.heads(q), self.heads(k), self.heads(v), mask),
                                e + "self_attn.out")
            x = self.sub(x, sa, e + "self_attn_norm")
            x = self.sub(x, lambda h, e=e: self.lin(torch.relu(self.lin(h, e + "ffn.fc1")),
                                                    e + "ffn.fc2"), e + "ffn_norm")
        if self.pre_norm:
            x = self.ln(x, "enc.norm")
        return x, mask

    def cross_kv(self, mem):
        """Per decoder layer (k, v), each (B, H, S, dh)."""
        out = []
        for i in range(self.dec_layers):
            k, v = self.lin(mem, "dec.%d.cross_attn.kv" % i).split(self.D, dim=-1)
            out.append((self.heads(k), self.heads(v)))
        return out

    def step(self, tok, t, cache, ckv, smask):
        """One decoder position for R rows: tok (R,), cache list of [k, v] per layer
        (R, H, t, dh) or None, extended in place. Returns log-probs (R, V)."""
        x = (self.scale * self.E[tok] + self.pe[t])[:, None, :]  # (R, 1, D)
        for i in range(self.dec_layers):
            d = "dec.%d." % i

            def sa(h, d=d, i=i):
                q, k, v = self.lin(h, d + "self_attn.qkv").split(self.D, dim=-1)
                k, v = self.heads(k), self.heads(v)
                if cache[i] is not None:
                    k = torch.cat([cache[i][0], k], dim=2)
                    v = torch.cat([cache[i][1], v], dim=2)
                cache[i] = [k, v]
                return self.lin(self.attend(self.heads(q), k, v, None), d + "self_attn.out")

            def ca(h, d=d, i=i):
                q = self.heads(self.lin(h, d + "cross_attn.q"))
                return self.lin(self.attend(q, ckv[i][0], ckv[i][1], smask), d + "cross_attn.out")
            x = self.sub(x, sa, d + "self_attn_norm")
            x = self.sub(x, ca, d + "cross_attn_norm")
            x = self.sub(x, lambda h, d=d: self.lin(torch.relu(self.lin(h, d + "ffn.fc1")),
                                                    d + "ffn.fc2"), d + "ffn_norm")
        if self.pre_norm:
            x = self.ln(x, "dec.norm")
        lp = torch.log_softmax(x[:, 0] @ self.E.T, dim=-1)
        lp[:, self.pad] = float("-inf")
        lp[:, self.bos] = float("-inf")
        return lp


def max_len(n, a=1.2, b=10, cap=1024):
    ml = int(np.float32(a) * np.float32(n + 1)) + b  # float arithmetic as src/decode.c
    return max(1, min(ml, cap))


@torch.no_grad()
def decode_batch(m, srcs, k, lenpen):
    """srcs: list of id lists (no eos). Returns the best finished hypothesis
    (list of ids, without eos) per sentence."""
    B = len(srcs)
    S = max(len(s) for s in srcs) + 1
    src = torch.full((B, S), m.pad, dtype=torch.long)
    for i, s in enumerate(srcs):
        src[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        src[i, len(s)] = m.eos
    mem, smask = m.encode(src)
    ckv = m.cross_kv(mem)
    V = m.E.shape[0]
    # rows: (Ba * k), sentence-major; expand encoder state to k rows per sentence
    rep = torch.arange(B).repeat_interleave(k)
    ckv = [(kk.index_select(0, rep), vv.index_select(0, rep)) for kk, vv in ckv]
    smask = smask.index_select(0, rep)
    cache = [None] * m.dec_layers
    maxl = [max_len(len(s), cap=m.max_positions) for s in srcs]
    sent = list(range(B))  # active sentence ids, in row-block order
    done = [[] for _ in range(B)]  # (score, logprob, ids)
    lprob = torch.full((B, k), float("-inf"))
    lprob[:, 0] = 0.0
    toks = torch.empty((B * k, 0), dtype=torch.long)  # tokens so far per row
    t = 0
    while sent:
        Ba = len(sent)
        last_tok = torch.full((Ba * k,), m.bos, dtype=torch.long) if t == 0 else toks[:, -1]
        lp = m.step(last_tok, t, cache, ckv, smask)  # (Ba*k, V)
        cand = (lprob.view(Ba * k, 1) + lp).view(Ba, k * V)
        cs, ci = torch.topk(cand, 2 * k, dim=1)  # sorted, best first
        crow = ci // V
        ctok = ci % V
        is_eos = ctok == m.eos
        # keep: the first k non-eos candidates of each sentence
        key = torch.where(is_eos, torch.full_like(ci, 1 << 30),
                          torch.arange(2 * k).expand(Ba, 2 * k))
        keep = torch.topk(key, k, dim=1, largest=False).indices.sort(dim=1).values
        new_lp = cs.gather(1, keep)
        new_row = crow.gather(1, keep) + (torch.arange(Ba) * k)[:, None]
        new_tok = ctok.gather(1, keep)
        alive = []
        eos_lp = lp[:, m.eos].view(Ba, k)
        ev = is_eos[:, :k].nonzero().tolist() if bool(is_eos[:, :k].any()) else []
        evi = 0
        for j, b in enumerate(sent):
            d = done[b]
            if t + 1 >= maxl[b]:  # eos forced: finish the live rows in order
                for r in range(k):
                    if len(d) >= k:
                        break
                    l = float(lprob[j, r] + eos_lp[j, r])
                    if l == float("-inf"):
                        continue
                    d.append((float(np.float32(l) / np.float32(t + 1) ** lenpen), l,
                              toks[j * k + r].tolist()))
            else:
                while evi < len(ev) and ev[evi][0] == j:
                    i = ev[evi][1]
                    evi += 1
                    if len(d) < k and float(cs[j, i]) != float("-inf"):
                        l = float(cs[j, i])
                        d.append((float(np.float32(l) / np.float32(t + 1) ** lenpen), l,
                                  toks[j * k + int(crow[j, i])].tolist()))
                if len(d) < k:
                    alive.append(j)
            while evi < len(ev) and ev[evi][0] == j:
                evi += 1
        if not alive:
            break
        al = torch.tensor(alive, dtype=torch.long)
        rows = new_row.index_select(0, al).view(-1)
        toks = torch.cat([toks.index_select(0, rows), new_tok.index_select(0, al).view(-1, 1)],
                         dim=1)
        lprob = new_lp.index_select(0, al)
        cache = [[c[0].index_select(0, rows), c[1].index_select(0, rows)] for c in cache]
        if len(alive) < Ba:
            srows = (al[:, None] * k + torch.arange(k)[None]).view(-1)
            ckv = [(kk.index_select(0, srows), vv.index_select(0, srows)) for kk, vv in ckv]
            smask = smask.index_select(0, srows)
        sent = [sent[j] for j in alive]
        t += 1
    out = []
    for d in done:
        if not d:
            out.append([])
            continue
        out.append(max(d, key=lambda h: h[0])[2])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--lenpen", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--extract-spm", metavar="PATH",
                    help="write the checkpoint's SentencePiece model to PATH and exit")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    meta, tensors = read_safetensors(a.model)
    if a.extract_spm:
        with open(a.extract_spm, "wb") as f:
            f.write(tensors["tokenizer.sentencepiece"].tobytes())
        return
    cfg = json.loads(meta["model_config"])
    m = Model(cfg, tensors)
    del tensors

    srcs = [[int(w) for w in line.split()] for line in sys.stdin]
    t0 = time.perf_counter()
    order = sorted(range(len(srcs)), key=lambda i: (-len(srcs[i]), i))  # longest first
    out = [None] * len(srcs)
    for s in range(0, len(order), a.batch_size):
        idx = order[s:s + a.batch_size]
        nonempty = [i for i in idx if srcs[i]]
        for i in idx:
            if not srcs[i]:
                out[i] = []
        if nonempty:
            for i, h in zip(nonempty, decode_batch(m, [srcs[i] for i in nonempty], a.beam,
                                                   a.lenpen)):
                out[i] = h
    sec = time.perf_counter() - t0
    sys.stdout.write("".join(" ".join(map(str, h)) + "\n" for h in out))
    sys.stdout.flush()
    ntok = sum(len(h) + 1 for h in out)
    if not a.quiet:
        print("torch_decode: %d sentences, %d target tokens in %.2f s: %.1f sentences/s, "
              "%.0f target tokens/s (beam %d, %d threads)" % (
                  len(out), ntok, sec, len(out) / (sec + 1e-9), ntok / (sec + 1e-9), a.beam,
                  torch.get_num_threads()), file=sys.stderr)


if __name__ == "__main__":
    main()
