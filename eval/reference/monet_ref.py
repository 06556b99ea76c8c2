"""A reference twin of monet-cpp in PyTorch, written from the papers, not from the C++.

Sources (see ../../docs/math/ for the project's math pages):
  * MONET: Park et al. 2024, "Monet: Mixture of Monosemantic Experts for Transformers",
    arXiv 2412.04139 — §3 (adaptive routing with BatchNorm), Eq. 6–15 (horizontal and vertical
    expert decomposition), App. A.1 (the memory-efficient einsum forms), Eq. 16–18 (aux losses).
  * LLaMA (Touvron et al. 2023): pre-norm RMSNorm blocks, rotary embeddings (Su et al. 2021) in
    the "rotate half" layout, causal multi-head attention, untied LM head, no biases.
  * Squared ReLU (So et al. 2021, "Primer"): relu²(x) = max(x, 0)².
  * Sparse MoE (docs/math/smoe.md §2): Shazeer et al. 2017 (arXiv 1701.06538) softmax and noisy top-k
    gating with the importance and load losses (Eq. 1–11, App. A); Switch (Fedus et al. 2021,
    arXiv 2101.03961 §2) top-1, capacity and balance loss; GShard (Lepikhin et al. 2020, arXiv
    2006.16668 Alg. 1) top-2; ST-MoE's router z-loss (Zoph et al. 2022, arXiv 2202.08906 Eq. 5).
  * PEER (He 2024, arXiv 2407.04153 §2, docs/math/peer.md §3): product-key retrieval, h heads, query
    BatchNorm, singleton experts σ(u_iᵀx)v_i.

Every layer exists here in two forms where the paper gives two: the literal definition, which
builds every composed expert E_ij(x) and sums Σ_h Σ_ij ĝ1_hi ĝ2_hj E_ij(x), and the paper's
memory-efficient reformulation (App. A.1). gen_golden.py checks that both agree before it dumps
anything, so the golden files do not rest on one formulation alone. SMoE and PEER have the same
pair: per-token loops with Python sorts (SMoE) or scoring all N keys (PEER) against the
vectorised / product-key forms.

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


def vd_staged(x, g1, g2, u1_w, u1_b, u2_w, u2_b, v11, v12, v21, v22, b1, b2):
    """vd_efficient with X12 and X21 contracted in two stages, Σ_h ĝ1_hi (Σ_j ĝ2_hj a2_j) and
    Σ_h ĝ2_hj (Σ_i ĝ1_hi a1_i), as Alg. 2 orders them: torch.einsum of 1.13 contracts three
    operands left to right and would build ĝ1ĝ2 over (i, j), B·T·N numbers. What torch_bench.py
    runs; gen_golden.py checks it against vd_efficient."""
    S, _ = b1.shape
    hm = u1_w.shape[0] // S
    a1 = relu2(linear(x, u1_w, u1_b)).unflatten(-1, (S, hm))
    a2 = relu2(linear(x, u2_w, u2_b)).unflatten(-1, (S, hm))
    x11 = linear((g1.sum(-2)[..., None] * a1).flatten(-2), v11)
    mix2 = torch.einsum("bthj,btjr->bthr", g2, a2)                  # Σ_j ĝ2_hj a2_j
    x12 = linear(torch.einsum("bthi,bthr->btir", g1, mix2).flatten(-2), v12)
    x13 = torch.einsum("bthi,id->btd", g1, b1)
    mix1 = torch.einsum("bthi,btir->bthr", g1, a1)                  # Σ_i ĝ1_hi a1_i
    x21 = linear(torch.einsum("bthj,bthr->btjr", g2, mix1).flatten(-2), v21)
    x22 = linear((g2.sum(-2)[..., None] * a2).flatten(-2), v22)
    x23 = torch.einsum("bthj,jd->btd", g2, b2)
    return torch.cat((x11 + x12 + x13, x21 + x22 + x23), dim=-1)


# ---------------------------------------------------------------------------------------------
# Auxiliary losses (Eq. 16–17)
# ---------------------------------------------------------------------------------------------
def uniformity_loss(g1: torch.Tensor, g2: torch.Tensor, clamp: float | None = None) -> torch.Tensor:
    """−1/(2H√N) Σ_h Σ_i log ḡ1_hi − 1/(2H√N) Σ_h Σ_j log ḡ2_hj, ḡ averaged over all tokens.

    No clamp by default: the paper's formula, defined when every sub-expert has ḡ > 0 (the golden
    inputs are chosen so). torch_bench.py passes clamp = 1e-9, the C++'s floor on ḡ
    (monet/aux_loss.h), so a training batch where some sub-expert is unused stays finite."""
    H, S = g1.shape[-2:]
    gbar1, gbar2 = g1.mean(dim=(0, 1)), g2.mean(dim=(0, 1))
    if clamp is not None:
        gbar1, gbar2 = gbar1.clamp_min(clamp), gbar2.clamp_min(clamp)
    return -(torch.log(gbar1).sum() + torch.log(gbar2).sum()) / (2 * H * S)


def ambiguity_loss(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """Per token 1/(2H) Σ_h [(1 − max_i ĝ1_hi) + (1 − max_j ĝ2_hj)], averaged over tokens."""
    H = g1.shape[-2]
    per_token = ((1 - g1.amax(dim=-1)).sum(-1) + (1 - g2.amax(dim=-1)).sum(-1)) / (2 * H)
    return per_token.mean()


# ---------------------------------------------------------------------------------------------
# Dense LLaMA-style transformer (docs/math/transformer.md §1)
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


def dense_ffn(x, w1, w2, w3=None, act: str = "relu2"):
    """The dense FFN with any of the C++ MLP's activations (nn/mlp.h): relu2, gelu (tanh
    approximation) or swiglu, W₂(silu(W₁x) ⊙ W₃x) (LLaMA)."""
    if act == "swiglu":
        return linear(F.silu(linear(x, w1)) * linear(x, w3), w2)
    if act == "gelu":
        return linear(F.gelu(linear(x, w1), approximate="tanh"), w2)
    return dense_mlp(x, w1, w2)


class MonetFFN:
    """A MONET feed-forward layer of a transformer block, with routing groups of G layers."""

    def __init__(self, P: dict, prefix: str, heads: int, sqrt_n: int, topk: int, vertical: bool,
                 efficient: bool = True, staged: bool = False):
        self.P, self.prefix, self.heads, self.vertical = P, prefix, heads, vertical
        self.sigma = routing_threshold(topk, sqrt_n)
        self.efficient, self.staged = efficient, staged

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
            f = (vd_staged if self.staged else vd_efficient) if self.efficient else vd_literal
            return f(x, g1, g2, P[p + "u1.weight"], P[p + "u1.bias"], P[p + "u2.weight"],
                     P[p + "u2.bias"], P[p + "v11.weight"], P[p + "v12.weight"],
                     P[p + "v21.weight"], P[p + "v22.weight"], P[p + "b1"], P[p + "b2"])
        f = hd_efficient if self.efficient else hd_literal
        return f(x, g1, g2, P[p + "u.weight"], P[p + "u.bias"], P[p + "v.weight"], P[p + "b"])


def transformer_forward(P: dict, ids: torch.Tensor, n_layers: int, n_heads: int,
                        norm_eps: float = 1e-6, theta: float = 10000.0, monet: dict | None = None,
                        training: bool = True, trace: list | None = None, ffn=None):
    """Logits [B, T, vocab] and the summed MONET aux loss (None for a dense model).

    P maps the C++ parameter names (embed.weight, layers.<l>.{norm1,norm2}.weight,
    layers.<l>.attn.{wq,wk,wv,wo}.weight, layers.<l>.ffn.*, norm.weight, lm_head.weight) to
    tensors. `monet` (heads, sqrt_n, topk, group, vertical, aux_weight, efficient) switches the
    FFN to MONET: layer l owns a router when l % group == 0, the others reuse its (ĝ1, ĝ2).
    `trace`, when given, receives ((n1, n2), σ) of each router, for inspection. `ffn`, when
    given, replaces both: ffn(l, prefix, x) → (output, aux term or None) for layer l, prefix
    "layers.<l>.ffn." (torch_bench.py's SMoE and PEER layers). monet["clamp"] (optional) is
    passed to uniformity_loss, monet["staged"] selects vd_staged."""
    h = P["embed.weight"][ids]
    aux = None
    routing = None
    for l in range(n_layers):
        p = f"layers.{l}."
        a = rms_norm(h, P[p + "norm1.weight"], norm_eps)
        h = h + causal_attention(a, P[p + "attn.wq.weight"], P[p + "attn.wk.weight"],
                                 P[p + "attn.wv.weight"], P[p + "attn.wo.weight"], n_heads, theta)
        f = rms_norm(h, P[p + "norm2.weight"], norm_eps)
        if ffn is not None:
            out, term = ffn(l, p + "ffn.", f)
            h = h + out
            if term is not None:
                aux = term if aux is None else aux + term
        elif monet is None:
            h = h + dense_mlp(f, P[p + "ffn.w1.weight"], P[p + "ffn.w2.weight"])
        else:
            layer = MonetFFN(P, p + "ffn.", monet["heads"], monet["sqrt_n"], monet["topk"],
                             monet["vertical"], monet.get("efficient", True),
                             monet.get("staged", False))
            if l % monet["group"] == 0:
                routing = layer.route(f, training)
                if trace is not None:
                    trace.append((layer.last_normalised, layer.sigma))
                if training:
                    term = monet["aux_weight"] * (uniformity_loss(*routing, monet.get("clamp"))
                                                  + ambiguity_loss(*routing))
                    aux = term if aux is None else aux + term
            h = h + layer.experts(f, *routing)
    logits = linear(rms_norm(h, P["norm.weight"], norm_eps), P["lm_head.weight"])
    return logits, aux


# ---------------------------------------------------------------------------------------------
# Sparse MoE (docs/math/smoe.md §2): E_i(x) = V_i σ(U_i x), y = Σ_{i∈K} g_i E_i(x)
#   Shazeer et al. 2017 (arXiv 1701.06538) Eq. 1–11 and App. A: softmax and noisy top-k gating,
#   importance and load losses; Switch (Fedus et al. 2021, arXiv 2101.03961) §2.1–2.2: top-1,
#   capacity, balance loss; GShard (Lepikhin et al. 2020, arXiv 2006.16668) Alg. 1: top-2 with
#   renormalised gates; ST-MoE (Zoph et al. 2022, arXiv 2202.08906) Eq. 5: router z-loss.
# Weights: gate.weight W_g [E, d], noise.weight W_noise [E, d], w1 = U [E, m, d], w2 = V [E, d, m].
# Choices the C++ made where the papers leave room (monet/smoe.h, monet/dispatch.h), matched here:
#   * CV² = population variance / (mean² + 1e-10), the 1e-10 as in Shazeer's released code;
#   * noise std = softplus(x W_noiseᵀ) without the released code's + 1e-2;
#   * f_i of the balance loss counts first choices before any dropping;
#   * capacity C = max(1, ⌈n·k·CF / E⌉); a pair's position is the count of earlier pairs for its
#     expert in slot-major order (every first choice before any second choice, as GShard);
#     a pair at position ≥ C contributes 0, the other gates are not renormalised;
#   * GShard's random dispatch of the second expert is left out (the second choice is kept);
#   * GELU is the tanh approximation (GPT-2's).
# ---------------------------------------------------------------------------------------------
def activation(name: str):
    """σ by name: relu2 (max(x,0)²), gelu (tanh approximation), relu."""
    if name == "relu2":
        return relu2
    if name == "gelu":
        return lambda h: F.gelu(h, approximate="tanh")
    if name == "relu":
        return torch.relu
    raise ValueError(f"unknown activation {name}")


def std_normal_cdf(z: torch.Tensor) -> torch.Tensor:
    """Φ(z) = ½ erfc(−z/√2)."""
    return 0.5 * torch.erfc(-z / math.sqrt(2.0))


def cv_squared(v: torch.Tensor) -> torch.Tensor:
    """CV² = var/mean² over a 1-D tensor, population variance, + 1e-10 in the denominator."""
    mean = v.mean()
    return ((v - mean) ** 2).mean() / (mean * mean + 1e-10)


def smoe_route(x, gate_w, noise_w, gating: str, k: int, training: bool, eps=None):
    """Vectorised routing of x [n, d]. Returns a dict: logits [n, E], select (the values whose
    top-k is the decision), idx [n, k] (first choice first), gates [n, k] and the unweighted aux
    parts (importance_cv2, load_cv2 for noisy_topk; balance, z_loss for switch and gshard)."""
    logits = linear(x, gate_w)                                   # l = x W_gᵀ
    n, E = logits.shape
    r = {"logits": logits}
    if gating == "softmax":                                      # Shazeer Eq. 2: every expert
        r["gates"] = torch.softmax(logits, -1)
        r["idx"] = torch.arange(E).expand(n, E)
        r["select"] = None
    elif gating == "noisy_topk":
        noise_std = F.softplus(linear(x, noise_w))               # softplus((x W_noise)_i)
        h = logits + eps * noise_std if training else logits     # H(x), Eq. 4
        top, idx = h.topk(k, dim=-1)                             # KeepTopK, Eq. 5
        gates = torch.softmax(top, -1)                           # Eq. 3
        dense = torch.zeros(n, E, dtype=x.dtype).scatter_add(1, idx, gates.to(x.dtype))
        r["importance_cv2"] = cv_squared(dense.sum(0))           # Eq. 6–7
        # App. A, Eq. 8–10: P(x, i) = Φ((l_i − kth_excluding(H, k, i)) / noise_std_i). When i is
        # among the top k of H, the k-th largest of the others is the (k+1)-th overall; when it
        # is not, it is the k-th overall (tensor2tensor's _prob_in_top_k formulation).
        top1 = h.topk(k + 1, dim=-1).values
        thr_in, thr_out = top1[:, k:k + 1], top1[:, k - 1:k]
        is_in = h > thr_in
        prob = torch.where(is_in, std_normal_cdf((logits - thr_in) / noise_std),
                           std_normal_cdf((logits - thr_out) / noise_std))
        r["load_cv2"] = cv_squared(prob.sum(0))                  # Eq. 11
        r.update(idx=idx, gates=gates, select=h)
    else:                                                        # switch (top-1) / gshard (top-2)
        probs = torch.softmax(logits, -1)
        top, idx = probs.topk(k, dim=-1)
        gates = top if gating == "switch" else top / top.sum(-1, keepdim=True)
        f = F.one_hot(idx[:, 0], E).to(x.dtype).mean(0)          # fraction of first choices
        r["balance"] = E * (f * probs.mean(0)).sum()             # Switch Eq. 4–6
        r["z_loss"] = (torch.logsumexp(logits, -1) ** 2).mean()  # ST-MoE Eq. 5
        r.update(idx=idx, gates=gates, select=probs)
    return r


def smoe_route_literal(x, gate_w, noise_w, gating: str, k: int, training: bool, eps=None):
    """smoe_route one token at a time: dot products, a Python sort for the top k, the
    kth_excluding of App. A built for every (x, i) by leaving component i out."""
    n, E = x.shape[0], gate_w.shape[0]

    def soft(v):
        e = torch.exp(v - v.max())
        return e / e.sum()

    def order(v):  # indices by decreasing value
        return sorted(range(len(v)), key=lambda i: -float(v[i]))

    logits = torch.stack([torch.stack([gate_w[i].dot(x[t]) for i in range(E)]) for t in range(n)])
    r = {"logits": logits, "select": None}
    if gating == "softmax":
        r["gates"] = torch.stack([soft(logits[t]) for t in range(n)])
        r["idx"] = torch.tensor([list(range(E))] * n)
        return r
    idx_rows, gate_rows = [], []
    if gating == "noisy_topk":
        std = torch.stack([torch.stack([F.softplus(noise_w[i].dot(x[t])) for i in range(E)])
                           for t in range(n)])
        h = logits + eps * std if training else logits
        importance = [torch.zeros((), dtype=x.dtype) for _ in range(E)]
        load = [torch.zeros((), dtype=x.dtype) for _ in range(E)]
        for t in range(n):
            sel = order(h[t])[:k]
            g = soft(torch.stack([h[t, i] for i in sel]))
            idx_rows.append(sel)
            gate_rows.append(g)
            for s, i in enumerate(sel):
                importance[i] = importance[i] + g[s]
            for i in range(E):
                others = [h[t, j] for j in range(E) if j != i]
                kth = others[order(others)[k - 1]]               # kth_excluding(H(x), k, i)
                load[i] = load[i] + std_normal_cdf((logits[t, i] - kth) / std[t, i])
        r["importance_cv2"] = cv_squared(torch.stack(importance))
        r["load_cv2"] = cv_squared(torch.stack(load))
        r["select"] = h
    else:
        probs = torch.stack([soft(logits[t]) for t in range(n)])
        first = []
        for t in range(n):
            sel = order(probs[t])[:k]
            top = torch.stack([probs[t, i] for i in sel])
            idx_rows.append(sel)
            gate_rows.append(top if gating == "switch" else top / top.sum())
            first.append(sel[0])
        f = [sum(1.0 for t in range(n) if first[t] == i) / n for i in range(E)]
        P = [sum(probs[t, i] for t in range(n)) / n for i in range(E)]
        r["balance"] = E * sum(f[i] * P[i] for i in range(E))
        lse = [logits[t].max() + torch.log(torch.exp(logits[t] - logits[t].max()).sum())
               for t in range(n)]
        r["z_loss"] = sum(v * v for v in lse) / n
        r["select"] = probs
    r["idx"] = torch.tensor(idx_rows)
    r["gates"] = torch.stack(gate_rows)
    return r


def expert_capacity(n: int, k: int, capacity_factor: float, experts: int) -> int:
    """C = ⌈tokens·k·CF / E⌉, at least 1 (Switch §2.2; GShard Alg. 1)."""
    return max(1, math.ceil(n * k * capacity_factor / experts))


def capacity_keep(idx: torch.Tensor, experts: int, capacity: int) -> torch.Tensor:
    """Kept pairs [n, k]: a pair's position is the exclusive cumulative count of its expert over
    the pairs in slot-major order (GShard / mesh-tensorflow's cumsum of the one-hot mask)."""
    n, k = idx.shape
    onehot = F.one_hot(idx, experts).transpose(0, 1).reshape(k * n, experts)  # slot-major
    position = ((onehot.cumsum(0) - onehot) * onehot).sum(-1).view(k, n).t()
    return position < capacity


def capacity_keep_literal(idx: torch.Tensor, experts: int, capacity: int) -> torch.Tensor:
    n, k = idx.shape
    count = [0] * experts
    keep = [[False] * k for _ in range(n)]
    for s in range(k):          # every first choice, then every second choice
        for t in range(n):
            e = int(idx[t, s])
            keep[t][s] = count[e] < capacity
            count[e] += 1
    return torch.tensor(keep)


def smoe_combine(x, idx, gates, keep, w1, w2, act):
    """Every expert on every token, then y = Σ_s keep·g_s·E_{idx_s}(x) as one contraction."""
    E = w1.shape[0]
    a = act(torch.einsum("nd,emd->nem", x, w1))                    # σ(U_e x)
    out = torch.einsum("nem,edm->ned", a, w2)                      # E_e(x) for every e
    weight = (F.one_hot(idx, E).to(x.dtype) * (gates * keep.to(x.dtype))[..., None]).sum(1)
    return torch.einsum("ne,ned->nd", weight, out)


def smoe_combine_literal(x, idx, gates, keep, w1, w2, act):
    rows = []
    for t in range(x.shape[0]):
        y = torch.zeros(x.shape[1], dtype=x.dtype)
        for s in range(idx.shape[1]):
            if keep[t, s]:
                e = int(idx[t, s])
                y = y + gates[t, s] * linear(act(linear(x[t], w1[e])), w2[e])   # g·V_e σ(U_e x)
        rows.append(y)
    return torch.stack(rows)


def smoe_forward(x, P: dict, cfg: dict, training: bool, eps=None, literal: bool = False):
    """x [n, d] → (y [n, d], routing dict, keep [n, k], capacity or 0). cfg: gating, topk,
    experts, capacity_factor, activation."""
    route = smoe_route_literal if literal else smoe_route
    r = route(x, P["gate.weight"], P.get("noise.weight"), cfg["gating"], cfg["topk"], training,
              eps)
    idx, n, k, E = r["idx"], x.shape[0], r["idx"].shape[1], cfg["experts"]
    C = 0
    if cfg["capacity_factor"] > 0:
        C = expert_capacity(n, k, cfg["capacity_factor"], E)
        keep = (capacity_keep_literal if literal else capacity_keep)(idx, E, C)
    else:
        keep = torch.ones(n, k, dtype=torch.bool)
    combine = smoe_combine_literal if literal else smoe_combine
    y = combine(x, idx, r["gates"], keep, P["w1"], P["w2"], activation(cfg["activation"]))
    return y, r, keep, C


def smoe_forward_sparse(x, P: dict, cfg: dict, training: bool, eps=None, x_route=None):
    """smoe_forward as a PyTorch MoE is usually written (one gemm pair per expert over the rows
    routed to it, index_add_ back), without computing every expert on every token: what
    torch_bench.py runs. gen_golden.py checks it against smoe_forward. `x_route` (Switch jitter:
    the router's input only) defaults to x."""
    r = smoe_route(x if x_route is None else x_route, P["gate.weight"], P.get("noise.weight"), cfg["gating"], cfg["topk"],
                   training, eps)
    idx, gates = r["idx"], r["gates"]
    n, k = idx.shape
    C = 0
    if cfg["capacity_factor"] > 0:
        C = expert_capacity(n, k, cfg["capacity_factor"], cfg["experts"])
        keep = capacity_keep(idx, cfg["experts"], C)
    else:
        keep = torch.ones(n, k, dtype=torch.bool)
    act = activation(cfg["activation"])
    w1, w2 = P["w1"], P["w2"]
    y = torch.zeros_like(x)
    flat_idx = idx.masked_fill(~keep, -1).reshape(-1)
    for e in range(cfg["experts"]):
        pairs = (flat_idx == e).nonzero().squeeze(1)          # pair p = t·k + s
        if pairs.numel() == 0:
            continue
        tok = torch.div(pairs, k, rounding_mode="floor")
        out = linear(act(linear(x[tok], w1[e])), w2[e])      # V_e σ(U_e x) on the routed rows
        y = y.index_add(0, tok, (out * gates.reshape(-1)[pairs, None]).to(y.dtype))
    return y, r, keep, C


SMOE_AUX = (("importance_cv2", "importance_weight"), ("load_cv2", "load_weight"),
            ("balance", "balance_weight"), ("z_loss", "z_weight"))


def smoe_aux_loss(r: dict, cfg: dict):
    """Σ weight·part over the parts the gating has (None when it has none)."""
    total = None
    for part, weight in SMOE_AUX:
        if part in r:
            term = cfg[weight] * r[part]
            total = term if total is None else total + term
    return total


# ---------------------------------------------------------------------------------------------
# PEER (He 2024, arXiv 2407.04153 §2, docs/math/peer.md §3): N = √N² singleton experts
# e_i(x) = σ(u_iᵀ x) v_i shared by h heads; head h retrieves I_h = top-k of q_h·k_i over product
# keys k_{i·√N+j} = [c_i; c′_j]; g = softmax over I_h or sigmoid; f(x) = Σ_h Σ_{j∈I_h} g_hj e_j(x).
# Weights: query.weight [h·d_q, d] (row head·d_q + c), keys1 = C, keys2 = C′ [√N, d_q/2] shared
# by the heads (the paper's wording; the C++ made the same choice, monet/peer.h), u, v [N, d].
# Query BatchNorm: one mean/variance per channel of the h·d_q query, no affine, batch statistics
# in training (momentum 0.1, unbiased running variance, eps 1e-5), differentiable.
# ---------------------------------------------------------------------------------------------
def peer_query(x, w, heads: int, running_mean=None, running_var=None, training: bool = True,
               literal: bool = False):
    """q [B, T, h, d_q]; BatchNorm when running_mean is given (buffers updated in training)."""
    B, T, _ = x.shape
    q = linear(x, w)
    if running_mean is not None:
        C = q.shape[-1]
        if not literal:
            q = F.batch_norm(q.reshape(B * T, C), running_mean, running_var, training=training,
                             momentum=0.1, eps=1e-5).view(B, T, C)
        elif training:
            mu = q.mean(dim=(0, 1))
            var = ((q - mu) ** 2).mean(dim=(0, 1))               # biased, to normalise
            with torch.no_grad():
                cnt = B * T
                running_mean.mul_(0.9).add_(0.1 * mu)
                running_var.mul_(0.9).add_(0.1 * var * cnt / (cnt - 1))
            q = (q - mu) / torch.sqrt(var + 1e-5)
        else:
            q = (q - running_mean) / torch.sqrt(running_var + 1e-5)
    return q.view(B, T, heads, -1)


def product_keys(keys1, keys2):
    """Every key k_{i·√N+j} = [c_i; c′_j], [N, d_q]."""
    S = keys1.shape[0]
    return torch.cat((keys1.repeat_interleave(S, 0), keys2.repeat(S, 1)), dim=-1)


def peer_retrieve_brute(q, keys1, keys2, k: int):
    """Eq. 1 by scoring all N keys: (scores, indices) [B, T, h, k], best first."""
    return (q @ product_keys(keys1, keys2).t()).topk(k, dim=-1)


def peer_retrieve(q, keys1, keys2, k: int):
    """Eq. 1 through product keys: the top k of q1·C and of q2·C′, the k² sums, their top k."""
    S, half = keys1.shape[0], keys1.shape[1]
    v1, i1 = (q[..., :half] @ keys1.t()).topk(k, dim=-1)
    v2, i2 = (q[..., half:] @ keys2.t()).topk(k, dim=-1)
    cand = (v1[..., :, None] + v2[..., None, :]).flatten(-2)    # candidate a·k + b
    scores, c = cand.topk(k, dim=-1)
    flat = (i1[..., :, None] * S + i2[..., None, :]).flatten(-2)
    return scores, flat.gather(-1, c)


def peer_gates(scores, score: str):
    return torch.softmax(scores, -1) if score == "softmax" else torch.sigmoid(scores)


def peer_experts(x, u, v, indices, gates, act):
    """Σ_h Σ_j g_hj σ(u_jᵀ x) v_j with the rows gathered: x [B, T, d], indices [B, T, h, k]."""
    U, V = u[indices], v[indices]                               # [B, T, h, k, d]
    a = act(torch.einsum("bthkd,btd->bthk", U, x)) * gates
    return torch.einsum("bthk,bthkd->btd", a, V)


def peer_experts_literal(x, u, v, indices, gates, act):
    B, T, H, K = indices.shape
    rows = []
    for b in range(B):
        for t in range(T):
            y = torch.zeros(x.shape[-1], dtype=x.dtype)
            for h in range(H):
                for j in range(K):
                    e = int(indices[b, t, h, j])
                    y = y + gates[b, t, h, j] * act(u[e].dot(x[b, t])) * v[e]
            rows.append(y)
    return torch.stack(rows).view(B, T, -1)


def peer_forward(x, P: dict, cfg: dict, training: bool = True, literal: bool = False):
    """x [B, T, d] → (y, q, scores, indices, gates). cfg: heads, topk, score, activation,
    query_batchnorm. P holds the weights and (with BatchNorm) query_norm.running_{mean,var}."""
    bn = cfg["query_batchnorm"]
    q = peer_query(x, P["query.weight"], cfg["heads"],
                   P["query_norm.running_mean"] if bn else None,
                   P["query_norm.running_var"] if bn else None, training, literal)
    retrieve = peer_retrieve_brute if literal else peer_retrieve
    scores, indices = retrieve(q, P["keys1"], P["keys2"], cfg["topk"])
    gates = peer_gates(scores, cfg["score"])
    experts = peer_experts_literal if literal else peer_experts
    y = experts(x, P["u"], P["v"], indices, gates, activation(cfg["activation"]))
    return y, q, scores, indices, gates


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
