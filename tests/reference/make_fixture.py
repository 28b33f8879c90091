#!/usr/bin/python3
"""make_fixture.py - PyTorch reference for mmt's parity test (tests/test_parity.c).

Builds the same tiny Transformer encoder-decoder as src/model.c from seeded
random float32 weights, runs it in float64, and writes for each variant
(post-norm, pre-norm, post-norm with the penal connection, and the two image
fusions: gated, selective) one safetensors file holding the inputs, the
parameters, the logits, the loss, every gradient and the losses of 5 Adam
steps.

    /usr/bin/python3 tests/reference/make_fixture.py tests/reference   (or: make fixtures)

Needs only torch, numpy and the standard library; the safetensors file is
written by hand. See README.md in this folder for the format.
"""
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as nnf

FORMAT_VERSION = "1"
SEED = 1234

# sizes of the tiny model and batch
V, D, H, F = 29, 16, 2, 24
ENC_LAYERS, DEC_LAYERS = 2, 2
B, S, T = 3, 7, 6
PAD, BOS, EOS = 0, 2, 3
SRC_LENS, TGT_LENS = [7, 5, 3], [6, 4, 2]
LABEL_SMOOTHING = 0.1
LN_EPS = 1e-5
ADAM_LR, ADAM_BETAS, ADAM_EPS, ADAM_STEPS = 1e-3, (0.9, 0.98), 1e-8, 5

P, DV = 4, 6  # image regions per example and their width (fusion variants)
HV = 5  # the image hidden layer's width (image_hidden variants)

VARIANTS = [  # file name, pre_norm, tau (penal on every sublayer, the fusion's too), fusion,
    # image hidden layer width (0: none)
    ("fixture-postnorm.safetensors", False, 0.0, None, 0),
    ("fixture-prenorm.safetensors", True, 0.0, None, 0),
    ("fixture-penal.safetensors", False, 0.5, None, 0),
    ("fixture-gated.safetensors", False, 0.5, "gated", 0),
    ("fixture-selective.safetensors", True, 0.5, "selective", 0),
    ("fixture-gated-hidden.safetensors", False, 0.5, "gated", HV),
]


# ---------------------------------------------------------------- inputs

def make_batch(gen):
    """src (B, S), tgt_in (B, T), tgt_out (B, T), right-padded with PAD."""
    src = torch.full((B, S), PAD, dtype=torch.int32)
    tgt_in = torch.full((B, T), PAD, dtype=torch.int32)
    tgt_out = torch.full((B, T), PAD, dtype=torch.int32)
    for b in range(B):
        src[b, :SRC_LENS[b]] = torch.randint(4, V, (SRC_LENS[b],), generator=gen)
        words = torch.randint(4, V, (TGT_LENS[b] - 1,), generator=gen, dtype=torch.int32)
        tgt_in[b, :TGT_LENS[b]] = torch.cat([torch.tensor([BOS], dtype=torch.int32), words])
        tgt_out[b, :TGT_LENS[b]] = torch.cat([words, torch.tensor([EOS], dtype=torch.int32)])
    return src, tgt_in, tgt_out


# ------------------------------------------------------------ parameters

def param_shapes(pre_norm, fusion=None, hidden=0):
    """(name, shape) of every parameter, in mmt's table order."""
    shapes = [("embed.weight", (V, D))]

    def linear(name, out, inp):
        shapes.extend([(name + ".weight", (out, inp)), (name + ".bias", (out,))])

    def norm(name):
        shapes.extend([(name + ".weight", (D,)), (name + ".bias", (D,))])

    for i in range(ENC_LAYERS):
        p = "enc.%d." % i
        linear(p + "self_attn.qkv", 3 * D, D)
        linear(p + "self_attn.out", D, D)
        norm(p + "self_attn_norm")
        linear(p + "ffn.fc1", F, D)
        linear(p + "ffn.fc2", D, F)
        norm(p + "ffn_norm")
    if pre_norm:
        norm("enc.norm")
    for i in range(DEC_LAYERS):
        p = "dec.%d." % i
        linear(p + "self_attn.qkv", 3 * D, D)
        linear(p + "self_attn.out", D, D)
        norm(p + "self_attn_norm")
        linear(p + "cross_attn.q", D, D)
        linear(p + "cross_attn.kv", 2 * D, D)
        linear(p + "cross_attn.out", D, D)
        norm(p + "cross_attn_norm")
        linear(p + "ffn.fc1", F, D)
        linear(p + "ffn.fc2", D, F)
        norm(p + "ffn_norm")
    if pre_norm:
        norm("dec.norm")
    if fusion:
        if hidden:
            linear("img.hidden", hidden, DV)
        linear("img.proj", D, hidden or DV)
        shapes.append(("img.pos", (P, D)))
        shapes.append(("fusion.gate_text.weight", (D, D)))
        shapes.append(("fusion.gate_image.weight", (D, D)))
        shapes.append(("fusion.gate.bias", (D,)))
        if fusion == "selective":
            linear("fusion.q", D, D)
            linear("fusion.kv", 2 * D, D)
    return shapes


def make_params(pre_norm, gen, fusion=None, hidden=0):
    """float32 weights of a sensible scale; norms and biases away from 1 and 0
    so that every gradient path is exercised."""
    params = {}
    for name, shape in param_shapes(pre_norm, fusion, hidden):
        r = torch.randn(shape, generator=gen, dtype=torch.float32)
        if name == "embed.weight":
            p = r * D ** -0.5
        elif "norm." in name and name.endswith(".weight"):
            p = 1.0 + 0.1 * r
        elif name.endswith(".bias"):
            p = 0.1 * r
        else:
            p = r * math.sqrt(2.0 / (shape[0] + shape[1]))
        params[name] = p
    return params


# ----------------------------------------------------------------- model

def positions(n):
    """Sinusoidal table (n, D): sin in the first half, cos in the second."""
    half = D // 2
    w = torch.tensor([10000.0 ** (-i / (half - 1)) for i in range(half)], dtype=torch.float64)
    t = torch.arange(n, dtype=torch.float64)[:, None] * w[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


def linear(x, p, name):
    return x @ p[name + ".weight"].T + p[name + ".bias"]


def layer_norm(x, p, name):
    return nnf.layer_norm(x, (D,), p[name + ".weight"], p[name + ".bias"], LN_EPS)


def attention(q, k, v, masked):
    """q (B, Tq, D), k and v (B, Tk, D), masked (B, Tq, Tk) True where hidden."""
    dh = D // H
    split = lambda x: x.reshape(x.shape[0], x.shape[1], H, dh).transpose(1, 2)
    q, k, v = split(q), split(k), split(v)
    scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
    scores = scores.masked_fill(masked[:, None], float("-inf"))
    ctx = torch.softmax(scores, dim=-1) @ v  # (B, H, Tq, dh)
    return ctx.transpose(1, 2).reshape(q.shape[0], -1, D)


class Model:
    """The forward pass of src/model.c; penal hooks on every residual branch."""

    def __init__(self, p, pre_norm, tau, fusion=None, hidden=0):
        self.p, self.pre_norm, self.tau, self.fusion = p, pre_norm, tau, fusion
        self.hidden = hidden

    def sublayer(self, x, branch, norm, keep):
        """post-norm: LN(x + z), z = branch(x); pre-norm: x + z, z = branch(LN(x)).
        The penal connection adds tau/ntokens * z to z's gradient on non-pad rows
        (keep (B, N, 1) is 1 there), the gradient of tau/2 ||z||^2 / ntokens."""
        z = branch(layer_norm(x, self.p, norm) if self.pre_norm else x)
        if self.tau > 0 and z.requires_grad:
            c = self.tau / self.ntokens
            z.register_hook(lambda g, z=z: g + c * z.detach() * keep)
        return x + z if self.pre_norm else layer_norm(x + z, self.p, norm)

    def self_attn(self, name, masked):
        def branch(x):
            q, k, v = linear(x, self.p, name + ".qkv").split(D, dim=-1)
            return linear(attention(q, k, v, masked), self.p, name + ".out")
        return branch

    def cross_attn(self, name, mem, masked):
        def branch(x):
            q = linear(x, self.p, name + ".q")
            k, v = linear(mem, self.p, name + ".kv").split(D, dim=-1)
            return linear(attention(q, k, v, masked), self.p, name + ".out")
        return branch

    def ffn(self, name):
        return lambda x: linear(torch.relu(linear(x, self.p, name + ".fc1")), self.p,
                                name + ".fc2")

    def penal_hook(self, z, keep):
        if self.tau > 0 and z.requires_grad:
            c = self.tau / self.ntokens
            z.register_hook(lambda g, z=z: g + c * z.detach() * keep)

    def fuse(self, h, img, keep):
        """The image fusion on the encoder output h (B, S, D) from img (B, P, DV):
        h + z, the penal connection on z."""
        p = self.p
        x = torch.relu(linear(img, p, "img.hidden")) if self.hidden else img  # (B, P, HV)
        v = linear(x, p, "img.proj") + p["img.pos"][None]  # (B, P, D)
        if self.fusion == "gated":
            g = v.mean(dim=1)  # (B, D)
            pre = h @ p["fusion.gate_text.weight"].T + \
                (g @ p["fusion.gate_image.weight"].T + p["fusion.gate.bias"])[:, None]
            z = torch.sigmoid(pre) * g[:, None]
        else:
            q = linear(h, p, "fusion.q")
            k, u = linear(v, p, "fusion.kv").split(D, dim=-1)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D), dim=-1) @ u
            lam = torch.sigmoid(h @ p["fusion.gate_text.weight"].T +
                                att @ p["fusion.gate_image.weight"].T + p["fusion.gate.bias"])
            z = lam * (att - h)
        self.penal_hook(z, keep)
        return h + z

    def embed(self, ids):
        n = ids.shape[1]
        return math.sqrt(D) * self.p["embed.weight"][ids.long()] + positions(n)[None]

    def forward(self, src, tgt_in, tgt_out, img=None):
        """Logits (B*T, V) and the summed loss, nll and ntokens."""
        self.ntokens = int((tgt_out != PAD).sum())
        src_keep = (src != PAD).double()[:, :, None]
        tgt_keep = (tgt_in != PAD).double()[:, :, None]
        src_masked = (src == PAD)[:, None, :].expand(B, S, S)
        cross_masked = (src == PAD)[:, None, :].expand(B, T, S)
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        tgt_masked = causal[None] | (tgt_in == PAD)[:, None, :]

        # encoder
        x = self.embed(src)
        for i in range(ENC_LAYERS):
            e = "enc.%d." % i
            x = self.sublayer(x, self.self_attn(e + "self_attn", src_masked),
                              e + "self_attn_norm", src_keep)
            x = self.sublayer(x, self.ffn(e + "ffn"), e + "ffn_norm", src_keep)
        mem = layer_norm(x, self.p, "enc.norm") if self.pre_norm else x
        if self.fusion:
            mem = self.fuse(mem, img, src_keep)

        # decoder
        y = self.embed(tgt_in)
        for i in range(DEC_LAYERS):
            d = "dec.%d." % i
            y = self.sublayer(y, self.self_attn(d + "self_attn", tgt_masked),
                              d + "self_attn_norm", tgt_keep)
            y = self.sublayer(y, self.cross_attn(d + "cross_attn", mem, cross_masked),
                              d + "cross_attn_norm", tgt_keep)
            y = self.sublayer(y, self.ffn(d + "ffn"), d + "ffn_norm", tgt_keep)
        if self.pre_norm:
            y = layer_norm(y, self.p, "dec.norm")
        logits = y.reshape(B * T, D) @ self.p["embed.weight"].T

        # label-smoothed cross entropy as fairseq: target 1-eps, others eps/(V-1)
        lprobs = torch.log_softmax(logits, dim=-1)
        target = tgt_out.reshape(-1).long()
        keep = target != PAD
        nll = -lprobs[torch.arange(B * T), target][keep]
        smooth = -lprobs.sum(dim=-1)[keep]
        eps_i = LABEL_SMOOTHING / (V - 1)
        loss = ((1.0 - LABEL_SMOOTHING - eps_i) * nll + eps_i * smooth).sum()
        return logits, loss, nll.sum(), self.ntokens


# ------------------------------------------------------------ safetensors

DTYPES = {np.float32: "F32", np.float64: "F64", np.int32: "I32"}


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, numpy array), listed in the header in that order.
    In the data, wider dtypes come first (as st_writer and the safetensors
    library do), so every tensor starts at a multiple of its element size."""
    header = {"__metadata__": metadata}
    header.update({name: None for name, _ in tensors})
    chunks, offset = [], 0
    for name, a in sorted(tensors, key=lambda t: -t[1].dtype.itemsize):
        data = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": DTYPES[a.dtype.type], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


# ------------------------------------------------------------------ main

def make_fixture(path, pre_norm, tau, fusion, hidden):
    gen = torch.Generator().manual_seed(SEED)
    src, tgt_in, tgt_out = make_batch(gen)
    params32 = make_params(pre_norm, gen, fusion, hidden)
    img32 = torch.rand((B, P, DV), generator=gen, dtype=torch.float32) if fusion else None
    img = img32.double() if fusion else None
    names = list(params32)

    # forward and backward in float64 from the float32 values
    p = {n: params32[n].double().requires_grad_() for n in names}
    model = Model(p, pre_norm, tau, fusion, hidden)
    logits, loss, nll, ntokens = model.forward(src, tgt_in, tgt_out, img)
    (loss / ntokens).backward()
    grads = {n: p[n].grad.clone() for n in names}

    # Adam: loss before each step, then after the last
    opt = torch.optim.Adam(p.values(), lr=ADAM_LR, betas=ADAM_BETAS, eps=ADAM_EPS)
    adam_losses = []
    for _ in range(ADAM_STEPS):
        opt.zero_grad()
        _, step_loss, _, _ = model.forward(src, tgt_in, tgt_out, img)
        (step_loss / ntokens).backward()
        opt.step()
        adam_losses.append(step_loss.item())
    with torch.no_grad():
        adam_losses.append(model.forward(src, tgt_in, tgt_out, img)[1].item())

    config = {"D": D, "F": F, "H": H, "V": V, "enc_layers": ENC_LAYERS,
              "dec_layers": DEC_LAYERS, "pre_norm": int(pre_norm), "tau": tau,
              "label_smoothing": LABEL_SMOOTHING, "pad_id": PAD, "bos_id": BOS,
              "eos_id": EOS, "adam_lr": ADAM_LR, "adam_beta1": ADAM_BETAS[0],
              "adam_beta2": ADAM_BETAS[1], "adam_eps": ADAM_EPS, "adam_steps": ADAM_STEPS}
    if fusion:
        config.update({"fusion": fusion, "image_dim": DV, "image_regions": P,
                       "image_positions": 1, "penal_fusion": 1})
        if hidden:
            config["image_hidden"] = hidden
    f32 = lambda t: t.detach().numpy().astype(np.float32)
    tensors = [("input.src", src.numpy()), ("input.tgt_in", tgt_in.numpy()),
               ("input.tgt_out", tgt_out.numpy())]
    if fusion:
        tensors.append(("input.img", img32.numpy()))
    tensors += [("param." + n, params32[n].numpy()) for n in names]
    tensors += [("out.logits", f32(logits)),
                ("out.loss", np.array([loss.item(), nll.item(), ntokens], dtype=np.float64))]
    tensors += [("grad." + n, f32(grads[n])) for n in names]
    tensors += [("adam.losses", np.array(adam_losses, dtype=np.float64))]
    write_safetensors(path, tensors, {"format_version": FORMAT_VERSION,
                                      "config": json.dumps(config, sort_keys=True)})
    print("%s: loss %.6f nll %.6f ntokens %d, adam losses %s" % (
        path, loss.item(), nll.item(), ntokens, " ".join("%.6f" % l for l in adam_losses)))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    torch.set_num_threads(1)  # the same float64 sums on every machine
    for name, pre_norm, tau, fusion, hidden in VARIANTS:
        make_fixture("%s/%s" % (out, name), pre_norm, tau, fusion, hidden)


if __name__ == "__main__":
    main()
