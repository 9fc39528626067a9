#!/usr/bin/python3
"""torch_reference.py - checks serendip's training numbers against PyTorch (conformance).

Usage: /usr/bin/python3 scripts/torch_reference.py DIR
DIR holds the dump of scripts/torch_driver.c (see its header). This script rebuilds the same
Llama model in PyTorch from the dumped parameters, with the conventions of include/serendip/lm.h
(RMSNorm, adjacent-pair RoPE as llama.cpp's LLAMA_ROPE_TYPE_NORM, GQA head h -> kv head
h // (n_heads / n_kv_heads), SwiGLU w2(silu(w1 x) * w3 x), optional tied head, LoRA
W x + alpha/r * B (A x)), and compares, in float64:
  - raw logits:        max |c - torch| <= 1e-5   (logits are O(1); float32 accumulation over
                                                   ~50-term dot products errs by ~1e-7; measured 4e-7)
  - masked mean loss:  relative error <= 1e-6     (measured <= 6e-8)
  - every gradient:    per tensor, max |c - torch| <= 1e-4 * max |torch|  (float32 backward vs
                       float64, measured <= 8e-7; a wrong term gives errors of order 1)
  - AdamW steps (warm-up + cosine lr, clipping, decoupled decay without the norm gains), run in
    float64 with torch.optim.AdamW: every step's loss within relative 1e-5 (measured <= 7e-8;
    Adam's normalisation can amplify float32 noise in near-zero gradients, hence the margin; a
    wrong update moves the loss by ~1e-1 per step here), and the final parameters within 1e-4
    (measured <= 4e-6).
Exits 1 on any mismatch, printing each comparison.
"""
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
DIR = sys.argv[1]
cfg = json.load(open(f"{DIR}/config.json"))
D, L, NH, NKV = cfg["dim"], cfg["n_layers"], cfg["n_heads"], cfg["n_kv_heads"]
H, V, TIED = cfg["hidden_dim"], cfg["vocab_size"], cfg["tied"]
B, T, EPS, THETA = cfg["B"], cfg["T"], cfg["norm_eps"], cfg["rope_theta"]
HD = D // NH
KVD = HD * NKV
RANK, ALPHA = cfg["lora_rank"], cfg["lora_alpha"]
failures = []


def load(name, dtype=np.float32):
    return np.fromfile(f"{DIR}/{name}", dtype=dtype)


# ---------------------------------------------------------------- parameters in lm.h order
SHAPES = [("tok_emb", (V, D)), ("attn_norm", (L, D)), ("wq", (L, D, D)), ("wk", (L, KVD, D)),
          ("wv", (L, KVD, D)), ("wo", (L, D, D)), ("ffn_norm", (L, D)), ("w1", (L, H, D)),
          ("w2", (L, D, H)), ("w3", (L, H, D)), ("out_norm", (D,))]
if not TIED:
    SHAPES.append(("out", (V, D)))
NO_DECAY = {"attn_norm", "ffn_norm", "out_norm"}


def split(flat, shapes):
    out, off = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        out[name] = torch.tensor(flat[off:off + n].astype(np.float64)).reshape(shape)
        off += n
    assert off == len(flat), f"block has {len(flat)} floats, layout needs {off}"
    return out


# LoRA block: per layer, per target (q k v o w1 w2 w3): A (r, in) then B (out, r)
TARGETS = [("wq", D, D), ("wk", D, KVD), ("wv", D, KVD), ("wo", D, D), ("w1", D, H), ("w2", H, D),
           ("w3", D, H)]
LORA_SHAPES = []
for l in range(L):
    for name, fin, fout in TARGETS:
        LORA_SHAPES += [(f"{l}.{name}.A", (RANK, fin)), (f"{l}.{name}.B", (fout, RANK))]

base = split(load("params.bin"), SHAPES)
lora = split(load("lora.bin"), LORA_SHAPES) if RANK else None
trainable = lora if RANK else base
order = LORA_SHAPES if RANK else SHAPES
for t in trainable.values():
    t.requires_grad_(True)
tokens = torch.tensor(load("tokens.bin", np.int32).astype(np.int64)).reshape(B, T + 1)
mask = torch.tensor(load("mask.bin", np.uint8).astype(np.float64)).reshape(B, T)
inp, tgt = tokens[:, :-1], tokens[:, 1:]

# ---------------------------------------------------------------- the model
pos = torch.arange(T, dtype=torch.float64)[:, None]
freq = THETA ** (-2.0 * torch.arange(HD // 2, dtype=torch.float64) / HD)
COS, SIN = torch.cos(pos * freq), torch.sin(pos * freq)  # (T, HD/2)


def rms(x, g):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + EPS) * g


def rope(x):  # x (B, T, heads, HD): rotate adjacent pairs (x[2i], x[2i+1])
    x0, x1 = x[..., 0::2], x[..., 1::2]
    c, s = COS[None, :, None, :], SIN[None, :, None, :]
    return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], -1).flatten(-2)


def proj(x, P, A, l, name):
    y = x @ P[name][l].T
    if A is not None:
        y = y + (ALPHA / RANK) * ((x @ A[f"{l}.{name}.A"].T) @ A[f"{l}.{name}.B"].T)
    return y


def model(P, A):
    out_w = P["tok_emb"] if TIED else P["out"]
    x = P["tok_emb"][inp]
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    for l in range(L):
        xn = rms(x, P["attn_norm"][l])
        q = rope(proj(xn, P, A, l, "wq").view(B, T, NH, HD))
        k = rope(proj(xn, P, A, l, "wk").view(B, T, NKV, HD))
        v = proj(xn, P, A, l, "wv").view(B, T, NKV, HD)
        k = k.repeat_interleave(NH // NKV, dim=2)  # head h reads kv head h // group
        v = v.repeat_interleave(NH // NKV, dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(HD)
        att = torch.softmax(att.masked_fill(causal, float("-inf")), -1)
        o = (att @ v).transpose(1, 2).reshape(B, T, D)
        x = x + proj(o, P, A, l, "wo")
        xn = rms(x, P["ffn_norm"][l])
        x = x + proj(F.silu(proj(xn, P, A, l, "w1")) * proj(xn, P, A, l, "w3"), P, A, l, "w2")
    return rms(x, P["out_norm"]) @ out_w.T


def masked_loss(logits):
    ce = F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1), reduction="none")
    return (ce * mask.reshape(-1)).sum() / mask.sum()


def check(what, ok, detail):
    print(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}")
    if not ok:
        failures.append(what)


# ---------------------------------------------------------------- logits, loss, gradients
logits = model(base, lora)
c_logits = torch.tensor(load("logits.bin").astype(np.float64)).reshape(B, T, V)
err = (logits.detach() - c_logits).abs().max().item()
check("logits", err <= 1e-5, f"max abs diff {err:.2e} (tol 1e-5, |logits| max {logits.abs().max().item():.2f})")
loss = masked_loss(logits)
c_loss = float(open(f"{DIR}/loss.txt").read())
rel = abs(loss.item() - c_loss) / abs(loss.item())
check("loss", rel <= 1e-6, f"torch {loss.item():.8f} serendip {c_loss:.8f} rel {rel:.2e} (tol 1e-6)")
loss.backward()
c_grads = split(load("grads.bin"), order)
worst = 0.0
for name, _ in order:
    g = trainable[name].grad
    scale = g.abs().max().item()
    e = (g - c_grads[name]).abs().max().item() / (scale if scale > 0 else 1.0)
    worst = max(worst, e)
    if e > 1e-4:
        check(f"grad {name}", False, f"max abs diff {e:.2e} x max|g| {scale:.2e}")
check("gradients", worst <= 1e-4, f"{len(order)} tensors, worst max-abs-diff / max|g| {worst:.2e} (tol 1e-4)")

# ---------------------------------------------------------------- AdamW steps
STEPS = cfg["steps"]


def lr_at(step):
    lr, mn, wu = cfg["lr"], cfg["min_lr"], cfg["warmup"]
    if step < wu:
        return lr * (step + 1) / wu
    span = STEPS - 1 - wu
    if span <= 0:
        return lr
    r = min(1.0, (step - wu) / span)
    return mn + 0.5 * (1 + math.cos(math.pi * r)) * (lr - mn)


fresh = {k: v.detach().clone().requires_grad_(True) for k, v in trainable.items()}
if RANK:
    groups = [{"params": [fresh[n] for n, _ in order], "weight_decay": cfg["weight_decay"]}]
else:
    groups = [{"params": [fresh[n] for n, _ in order if n not in NO_DECAY], "weight_decay": cfg["weight_decay"]},
              {"params": [fresh[n] for n, _ in order if n in NO_DECAY], "weight_decay": 0.0}]
opt = torch.optim.AdamW(groups, lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"])
c_losses = load("losses.bin")
for step in range(STEPS):
    opt.zero_grad()
    if RANK:
        l_ = masked_loss(model(base, fresh))
    else:
        l_ = masked_loss(model(fresh, None))
    l_.backward()
    if cfg["clip"] > 0:
        torch.nn.utils.clip_grad_norm_([fresh[n] for n, _ in order], cfg["clip"])
    for g in opt.param_groups:
        g["lr"] = lr_at(step)
    opt.step()
    rel = abs(l_.item() - c_losses[step]) / abs(l_.item())
    check(f"AdamW step {step + 1} loss", rel <= 1e-5,
          f"torch {l_.item():.6f} serendip {c_losses[step]:.6f} rel {rel:.1e} (tol 1e-5)")
c_final = split(load("final.bin"), order)
drift = max((fresh[n].detach() - c_final[n]).abs().max().item() for n, _ in order)
check("parameters after AdamW", drift <= 1e-4, f"max abs diff {drift:.2e} after {STEPS} steps (tol 1e-4)")

print("conformance-torch:", "FAILED " + ", ".join(failures) if failures else "all checks passed")
sys.exit(1 if failures else 0)
