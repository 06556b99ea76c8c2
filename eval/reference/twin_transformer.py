"""The twin's LLaMA-style transformer (monet_ref.py; docs/math/transformer.md §1): RMSNorm,
rotate-half RoPE, causal attention, the dense FFNs, the MONET FFN of a block (MonetFFN) and the
whole model (transformer_forward)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from twin_monet import (adaptive_route, ambiguity_loss, hd_efficient, hd_literal,
                        router_logits, uniformity_loss, vd_efficient, vd_literal, vd_staged)
from twin_ops import linear, relu2, routing_threshold


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
