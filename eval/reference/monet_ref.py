"""A reference twin of monet-cpp in PyTorch, written from the papers, not from the C++.

Sources (see ../../../shared/docs/moe-math.md §1 and §4 for the working summary):
  * MONET: Park et al. 2024, "Monet: Mixture of Monosemantic Experts for Transformers",
    arXiv 2412.04139 — §3 (adaptive routing with BatchNorm), Eq. 6–15 (horizontal and vertical
    expert decomposition), App. A.1 (the memory-efficient einsum forms), Eq. 16–18 (aux losses).
  * LLaMA (Touvron et al. 2023): pre-norm RMSNorm blocks, rotary embeddings (Su et al. 2021) in
    the "rotate half" layout, causal multi-head attention, untied LM head, no biases.
  * Squared ReLU (So et al. 2021, "Primer"): relu²(x) = max(x, 0)².

Every layer exists here in two forms where the paper gives two: the literal definition, which
builds every composed expert E_ij(x) and sums Σ_h Σ_ij ĝ1_hi ĝ2_hj E_ij(x), and the paper's
memory-efficient reformulation (App. A.1). gen_golden.py checks that both agree before it dumps
anything, so the golden files do not rest on one formulation alone.

Weight layouts follow PyTorch's nn.Linear ([out, in], y = x Wᵀ + b) and the authors' checkpoint
names: router w1, w2 [H·√N, d] with row h·√N + i; HD u [√N·m, d] (row i·m + r), v [d, √N·m],
b [√N, d]; VD u1, u2 [√N·m/2, d], v11, v12, v21, v22 [d/2, √N·m/2], b1, b2 [√N, d/2].

Run with Debian's interpreter (/usr/bin/python3, python3-torch 1.13). Pure torch: no numpy, no
scipy, no safetensors package needed.
"""
from __future__ import annotations

import json
import math
import struct

import torch
import torch.nn.functional as F


# ---------------------------------------------------------------------------------------------
# Small pieces
# ---------------------------------------------------------------------------------------------
def relu2(x: torch.Tensor) -> torch.Tensor:
    """Squared ReLU, max(x, 0)² (Primer; MONET's expert activation)."""
    r = torch.relu(x)
    return r * r


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """nn.Linear with W [out, in]."""
    return F.linear(x, w, b)


def routing_threshold(k: int, sqrt_n: int) -> float:
    """σ = Φ⁻¹(1 − k/√N): on standard-normal logits, P(n ≥ σ) = k/√N, so ≈ k of √N pass."""
    assert 1 <= k < sqrt_n
    std_normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64),
                                            torch.tensor(1.0, dtype=torch.float64))
    return float(std_normal.icdf(torch.tensor(1.0 - k / sqrt_n, dtype=torch.float64)))


# ---------------------------------------------------------------------------------------------
# MONET router (§3): two sub-routers, BatchNorm only for the mask, softmax of the raw logits
# ---------------------------------------------------------------------------------------------
def router_logits(x: torch.Tensor, w: torch.Tensor, heads: int) -> torch.Tensor:
    """z = W x as [B, T, H, √N] (row h·√N + i of W scores sub-expert i of head h)."""
    B, T, _ = x.shape
    return linear(x, w).view(B, T, heads, -1)


def adaptive_route(z: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor,
                   training: bool, sigma: float, momentum: float = 0.1, eps: float = 1e-5):
    """One sub-router's routing probabilities from its logits z [B, T, H, √N].

    n = BatchNorm(z) without affine parameters, one mean/variance per head pooled over all
    tokens and the √N logits (PyTorch's F.batch_norm on a [B·T, H, √N] view: channel axis 1);
    in training the batch statistics are used and the running buffers are updated in place
    (momentum 0.1, unbiased variance), in eval the running statistics are used.
    τ = min(max_i n_i, σ) per (token, head); sub-expert i is kept iff n_i ≥ τ, so the largest is
    always kept. ĝ = softmax over the kept entries of the RAW z. The mask is a constant for
    autograd: gradients reach z (and W) only through the softmax.
    Returns (ĝ, n, keep).
    """
    B, T, H, S = z.shape
    with torch.no_grad():
        n = F.batch_norm(z.detach().reshape(B * T, H, S), running_mean, running_var,
                         training=training, momentum=momentum, eps=eps).view(B, T, H, S)
        tau = n.amax(dim=-1, keepdim=True).clamp(max=sigma)
        keep = n >= tau
    g = torch.softmax(z.masked_fill(~keep, float("-inf")), dim=-1)
    return g, n, keep


# ---------------------------------------------------------------------------------------------
# MONET-HD (Eq. 6–12): E_ij(x) = V_j relu²(U_i x + b1_i) + b2_j
# ---------------------------------------------------------------------------------------------
def hd_literal(x, g1, g2, u_w, u_b, v_w, b):
    """Σ_h Σ_i Σ_j ĝ1_hi ĝ2_hj E_ij(x), with every E_ij(x) built ([B, T, √N, √N, d])."""
    S, d = b.shape
    m = u_w.shape[0] // S
    h = relu2(linear(x, u_w, u_b)).unflatten(-1, (S, m))   # U_i x + b1_i → relu², [B,T,i,m]
    V = v_w.view(d, S, m)                                  # V_j = v_w[:, j·m:(j+1)·m]
    experts = torch.einsum("djr,btir->btijd", V, h) + b[None, None, None, :, :]  # + b2_j
    score = torch.einsum("bthi,bthj->btij", g1, g2)        # Σ_h ĝ1_hi ĝ2_hj
    return torch.einsum("btij,btijd->btd", score, experts)


def hd_efficient(x, g1, g2, u_w, u_b, v_w, b):
    """App. A.1: mix the √N hidden vectors over i and h first, then apply each V_j once."""
    S, _ = b.shape
    m = u_w.shape[0] // S
    h = relu2(linear(x, u_w, u_b)).unflatten(-1, (S, m))                # [B,T,√N,m]
    mixed = torch.einsum("btim,bthi,bthj->btjm", h, g1, g2)             # Σ_h ĝ2_hj Σ_i ĝ1_hi h_i
    bias = torch.einsum("bthj,jd->btd", g2, b)                          # Σ_j (Σ_h ĝ2_hj) b2_j
    return linear(mixed.flatten(-2), v_w) + bias


# ---------------------------------------------------------------------------------------------
# MONET-VD (Eq. 13–15): each expert's hidden layer is half from sub-expert i, half from j
# ---------------------------------------------------------------------------------------------
def vd_literal(x, g1, g2, u1_w, u1_b, u2_w, u2_b, v11, v12, v21, v22, b1, b2):
    """E_ij(x) = [V11_i a1_i + V12_i a2_j + b1_i ; V21_j a1_i + V22_j a2_j + b2_j], all built."""
    S, dh = b1.shape
    hm = u1_w.shape[0] // S
    a1 = relu2(linear(x, u1_w, u1_b)).unflatten(-1, (S, hm))   # a1_i, [B,T,√N,m/2]
    a2 = relu2(linear(x, u2_w, u2_b)).unflatten(-1, (S, hm))   # a2_j
    V11, V12 = v11.view(dh, S, hm), v12.view(dh, S, hm)          # blocks of sub-expert i
    V21, V22 = v21.view(dh, S, hm), v22.view(dh, S, hm)          # blocks of sub-expert j
    top = (torch.einsum("dir,btir->btid", V11, a1)[:, :, :, None, :]      # V11_i a1_i
           + torch.einsum("dir,btjr->btijd", V12, a2)                     # V12_i a2_j
           + b1[None, None, :, None, :])                                  # b1_i
    bottom = (torch.einsum("djr,btir->btijd", V21, a1)                    # V21_j a1_i
              + torch.einsum("djr,btjr->btjd", V22, a2)[:, :, None, :, :]  # V22_j a2_j
              + b2[None, None, None, :, :])                                # b2_j
    experts = torch.cat((top, bottom), dim=-1)                   # [B,T,√N,√N,d]
    score = torch.einsum("bthi,bthj->btij", g1, g2)
    return torch.einsum("btij,btijd->btd", score, experts)


def vd_efficient(x, g1, g2, u1_w, u1_b, u2_w, u2_b, v11, v12, v21, v22, b1, b2):
    """App. A.1's six terms (X11, X13, X22, X23 use Σ_j ĝ2_hj = Σ_i ĝ1_hi = 1)."""
    S, _ = b1.shape
    hm = u1_w.shape[0] // S
    a1 = relu2(linear(x, u1_w, u1_b)).unflatten(-1, (S, hm))
    a2 = relu2(linear(x, u2_w, u2_b)).unflatten(-1, (S, hm))
    x11 = linear(torch.einsum("bthi,btir->btir", g1, a1).flatten(-2), v11)
    x12 = linear(torch.einsum("bthi,bthj,btjr->btir", g1, g2, a2).flatten(-2), v12)
    x13 = torch.einsum("bthi,id->btd", g1, b1)
    x21 = linear(torch.einsum("bthj,bthi,btir->btjr", g2, g1, a1).flatten(-2), v21)
    x22 = linear(torch.einsum("bthj,btjr->btjr", g2, a2).flatten(-2), v22)
    x23 = torch.einsum("bthj,jd->btd", g2, b2)
    return torch.cat((x11 + x12 + x13, x21 + x22 + x23), dim=-1)


# ---------------------------------------------------------------------------------------------
# Auxiliary losses (Eq. 16–17)
# ---------------------------------------------------------------------------------------------
def uniformity_loss(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """−1/(2H√N) Σ_h Σ_i log ḡ1_hi − 1/(2H√N) Σ_h Σ_j log ḡ2_hj, ḡ averaged over all tokens.

    No clamp: the paper's formula, defined when every sub-expert has ḡ > 0 (the golden inputs
    are chosen so)."""
    H, S = g1.shape[-2:]
    gbar1, gbar2 = g1.mean(dim=(0, 1)), g2.mean(dim=(0, 1))
    return -(torch.log(gbar1).sum() + torch.log(gbar2).sum()) / (2 * H * S)


def ambiguity_loss(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """Per token 1/(2H) Σ_h [(1 − max_i ĝ1_hi) + (1 − max_j ĝ2_hj)], averaged over tokens."""
    H = g1.shape[-2]
    per_token = ((1 - g1.amax(dim=-1)).sum(-1) + (1 - g2.amax(dim=-1)).sum(-1)) / (2 * H)
    return per_token.mean()


# ---------------------------------------------------------------------------------------------
# Dense LLaMA-style transformer (moe-math.md §1)
# ---------------------------------------------------------------------------------------------
def rms_norm(x: torch.Tensor, gain: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * gain


def rope_cos_sin(head_dim: int, T: int, theta: float, dtype):
    """Tables for the rotate-half layout: frequency ωᵢ = θ^(−2i/hd) for pair (i, i + hd/2)."""
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)   # [T, hd/2]
    angles = torch.cat((angles, angles), dim=-1)                           # [T, hd]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, H, T, hd]: (x1, x2) → (x1 cos − x2 sin, x2 cos + x1 sin)."""
    return x * cos + rotate_half(x) * sin


def causal_attention(x, wq, wk, wv, wo, n_heads: int, theta: float = 10000.0):
    B, T, d = x.shape
    hd = d // n_heads

    def split(t):
        return t.view(B, T, n_heads, hd).transpose(1, 2)   # [B, H, T, hd]

    cos, sin = rope_cos_sin(hd, T, theta, x.dtype)
    q = apply_rope(split(linear(x, wq)), cos, sin)
    k = apply_rope(split(linear(x, wk)), cos, sin)
    v = split(linear(x, wv))
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
    future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
    probs = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
    y = (probs @ v).transpose(1, 2).reshape(B, T, d)
    return linear(y, wo)


def dense_mlp(x, w1, w2):
    """FFN d → hidden → d with squared ReLU, no biases."""
    return linear(relu2(linear(x, w1)), w2)


class MonetFFN:
    """A MONET feed-forward layer of a transformer block, with routing groups of G layers."""

    def __init__(self, P: dict, prefix: str, heads: int, sqrt_n: int, topk: int, vertical: bool,
                 efficient: bool = True):
        self.P, self.prefix, self.heads, self.vertical = P, prefix, heads, vertical
        self.sigma = routing_threshold(topk, sqrt_n)
        self.efficient = efficient

    def route(self, x, training: bool):
        P, p = self.P, self.prefix
        g1, n1, _ = adaptive_route(router_logits(x, P[p + "router.w1.weight"], self.heads),
                                  P[p + "router.norm1.running_mean"],
                                  P[p + "router.norm1.running_var"], training, self.sigma)
        g2, n2, _ = adaptive_route(router_logits(x, P[p + "router.w2.weight"], self.heads),
                                  P[p + "router.norm2.running_mean"],
                                  P[p + "router.norm2.running_var"], training, self.sigma)
        self.last_normalised = (n1, n2)  # for the generator's mask-margin check
        return g1, g2

    def experts(self, x, g1, g2):
        P, p = self.P, self.prefix
        if self.vertical:
            f = vd_efficient if self.efficient else vd_literal
            return f(x, g1, g2, P[p + "u1.weight"], P[p + "u1.bias"], P[p + "u2.weight"],
                     P[p + "u2.bias"], P[p + "v11.weight"], P[p + "v12.weight"],
                     P[p + "v21.weight"], P[p + "v22.weight"], P[p + "b1"], P[p + "b2"])
        f = hd_efficient if self.efficient else hd_literal
        return f(x, g1, g2, P[p + "u.weight"], P[p + "u.bias"], P[p + "v.weight"], P[p + "b"])


def transformer_forward(P: dict, ids: torch.Tensor, n_layers: int, n_heads: int,
                        norm_eps: float = 1e-6, theta: float = 10000.0, monet: dict | None = None,
                        training: bool = True, trace: list | None = None):
    """Logits [B, T, vocab] and the summed MONET aux loss (None for a dense model).

    P maps the C++ parameter names (embed.weight, layers.<l>.{norm1,norm2}.weight,
    layers.<l>.attn.{wq,wk,wv,wo}.weight, layers.<l>.ffn.*, norm.weight, lm_head.weight) to
    tensors. `monet` (heads, sqrt_n, topk, group, vertical, aux_weight, efficient) switches the
    FFN to MONET: layer l owns a router when l % group == 0, the others reuse its (ĝ1, ĝ2).
    `trace`, when given, receives ((n1, n2), σ) of each router, for inspection."""
    h = P["embed.weight"][ids]
    aux = None
    routing = None
    for l in range(n_layers):
        p = f"layers.{l}."
        a = rms_norm(h, P[p + "norm1.weight"], norm_eps)
        h = h + causal_attention(a, P[p + "attn.wq.weight"], P[p + "attn.wk.weight"],
                                 P[p + "attn.wv.weight"], P[p + "attn.wo.weight"], n_heads, theta)
        f = rms_norm(h, P[p + "norm2.weight"], norm_eps)
        if monet is None:
            h = h + dense_mlp(f, P[p + "ffn.w1.weight"], P[p + "ffn.w2.weight"])
        else:
            layer = MonetFFN(P, p + "ffn.", monet["heads"], monet["sqrt_n"], monet["topk"],
                             monet["vertical"], monet.get("efficient", True))
            if l % monet["group"] == 0:
                routing = layer.route(f, training)
                if trace is not None:
                    trace.append((layer.last_normalised, layer.sigma))
                if training:
                    term = monet["aux_weight"] * (uniformity_loss(*routing)
                                                  + ambiguity_loss(*routing))
                    aux = term if aux is None else aux + term
            h = h + layer.experts(f, *routing)
    logits = linear(rms_norm(h, P["norm.weight"], norm_eps), P["lm_head.weight"])
    return logits, aux


# ---------------------------------------------------------------------------------------------
# safetensors, written by hand (https://github.com/huggingface/safetensors):
#   [u64 LE header length N][N bytes JSON, space-padded to a multiple of 8][raw LE row-major data]
# ---------------------------------------------------------------------------------------------
_DTYPES = {torch.float64: ("F64", "<d"), torch.float32: ("F32", "<f"), torch.int32: ("I32", "<i")}


def save_safetensors(path: str, tensors: dict, metadata: dict | None = None) -> int:
    header: dict = {}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        code, fmt = _DTYPES[t.dtype]
        values = t.reshape(-1).tolist()
        blob = struct.pack("<%d%s" % (len(values), fmt[1]), *values)
        header[name] = {"dtype": code, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    data = struct.pack("<Q", len(text)) + text + b"".join(blobs)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def load_safetensors(path: str):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, info in header.items():
        code = info["dtype"]
        dtype, fmt = {"F64": (torch.float64, "d"), "F32": (torch.float32, "f"),
                      "I32": (torch.int32, "i")}[code]
        b, e = info["data_offsets"]
        count = (e - b) // struct.calcsize(fmt)
        vals = struct.unpack("<%d%s" % (count, fmt), raw[base + b:base + e])
        out[name] = torch.tensor(vals, dtype=dtype).view(info["shape"])
    return out, meta
