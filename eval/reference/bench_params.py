"""torch_bench.py's parameters: the C++ model's names, shapes and initialisation, drawn here or
read from the model.safetensors `monet bench` writes (--init)."""
from __future__ import annotations

import json
import struct

import torch


# ---------------------------------------------------------------------------------------------
# Parameters: names and shapes of the C++ model (nn/transformer.h, monet/*.h)
# ---------------------------------------------------------------------------------------------
def param_shapes(cfg: dict) -> dict:
    """name → (shape, init) with init 'normal' (N(0, 0.02²)), 'zeros', 'ones'."""
    m = cfg["model"]
    d, V, f = m["d"], m["vocab"], m["ffn"]
    kind = f["kind"]
    S = {"embed.weight": ((V, d), "normal")}
    for l in range(m["layers"]):
        p = f"layers.{l}."
        S[p + "norm1.weight"] = ((d,), "ones")
        for w in ("wq", "wk", "wv", "wo"):
            S[p + f"attn.{w}.weight"] = ((d, d), "normal")
        S[p + "norm2.weight"] = ((d,), "ones")
        q = p + "ffn."
        if kind == "dense":
            S[q + "w1.weight"] = ((f["hidden"], d), "normal")
            S[q + "w2.weight"] = ((d, f["hidden"]), "normal")
            if f["activation"] == "swiglu":
                S[q + "w3.weight"] = ((f["hidden"], d), "normal")
        elif kind in ("monet_hd", "monet_vd"):
            H, sq, dim = f["heads"], f["sqrt_n"], f["dim"]
            if l % f["group"] == 0:
                for r in ("w1", "w2"):
                    S[q + f"router.{r}.weight"] = ((H * sq, d), "normal")
                for r in ("norm1", "norm2"):
                    S[q + f"router.{r}.running_mean"] = ((H,), "zeros")
                    S[q + f"router.{r}.running_var"] = ((H,), "ones")
            w = sq * dim
            if kind == "monet_hd":
                S[q + "u.weight"], S[q + "u.bias"] = ((w, d), "normal"), ((w,), "zeros")
                S[q + "v.weight"], S[q + "b"] = ((d, w), "normal"), ((sq, d), "zeros")
            else:
                for u in ("u1", "u2"):
                    S[q + f"{u}.weight"], S[q + f"{u}.bias"] = ((w // 2, d), "normal"), \
                        ((w // 2,), "zeros")
                for v in ("v11", "v12", "v21", "v22"):
                    S[q + f"{v}.weight"] = ((d // 2, w // 2), "normal")
                S[q + "b1"], S[q + "b2"] = ((sq, d // 2), "zeros"), ((sq, d // 2), "zeros")
        elif kind == "smoe":
            E, k = f["experts"], smoe_k(f)
            hidden = f["dim"] if f["dim"] > 0 else max(1, 4 * d // k)
            noisy = f["gating"] == "noisy_topk"
            S[q + "gate.weight"] = ((E, d), "zeros" if noisy else "normal")
            if noisy:
                S[q + "noise.weight"] = ((E, d), "zeros")
            S[q + "w1"] = ((E, hidden, d), "normal")
            S[q + "w2"] = ((E, d, hidden), "normal")
        elif kind == "peer":
            H, dq, sq = f["heads"], f["d_query"], f["sqrt_n"]
            S[q + "query.weight"] = ((H * dq, d), "normal")
            if f["query_batchnorm"]:
                S[q + "query_norm.running_mean"] = ((H * dq,), "zeros")
                S[q + "query_norm.running_var"] = ((H * dq,), "ones")
            S[q + "keys1"] = ((sq, dq // 2), "normal")
            S[q + "keys2"] = ((sq, dq // 2), "normal")
            S[q + "u"] = ((sq * sq, d), "normal")
            S[q + "v"] = ((sq * sq, d), "normal")
    S["norm.weight"] = ((d,), "ones")
    S["lm_head.weight"] = ((V, d), "normal")
    return S


def smoe_k(f: dict) -> int:
    if f["topk"] > 0:
        return f["topk"]
    return {"softmax": f["experts"], "switch": 1, "noisy_topk": 2, "gshard": 2}[f["gating"]]


def init_state(cfg: dict, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, (shape, how) in param_shapes(cfg).items():
        if how == "normal":
            out[name] = torch.randn(*shape, generator=g) * 0.02
        else:
            out[name] = (torch.zeros if how == "zeros" else torch.ones)(*shape)
    return out


def load_state(path: str, cfg: dict) -> dict:
    """A safetensors file of F32 tensors (train/safetensors.h), checked against param_shapes."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise SystemExit(f"torch_bench: {path}: '{name}' is {info['dtype']}, expected F32")
        b, e = info["data_offsets"]
        out[name] = torch.frombuffer(bytearray(raw[base + b:base + e]),
                                     dtype=torch.float32).view(info["shape"]).clone()
    want = param_shapes(cfg)
    if set(out) != set(want):
        raise SystemExit(f"torch_bench: {path} does not hold this model's tensors: missing "
                         f"{sorted(set(want) - set(out))}, unexpected {sorted(set(out) - set(want))}")
    for name, (shape, _) in want.items():
        if tuple(out[name].shape) != tuple(shape):
            raise SystemExit(f"torch_bench: {path}: '{name}' has shape {list(out[name].shape)}, "
                             f"the model wants {list(shape)}")
    return out
