"""hf_monet.py's reference forward: a folder in the authors' layout read back, and the facts of
their modeling_monet.py (MonetRouter in eval mode, MonetMoVDE / MonetMoHDE, LLaMA attention with
grouped-query heads, RMSNorm and RoPE), with the MoE also in a literal form for the self-check."""
from __future__ import annotations

import json
import math
import os

import torch

from hf_safetensors import load_safetensors


# -------------------------------------------------------------------------------- the forward
def load_model(folder: str, dtype) -> tuple:
    with open(os.path.join(folder, "config.json")) as f:
        c = json.load(f)
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            wmap = json.load(f)["weight_map"]
        W = {}
        for file in sorted(set(wmap.values())):
            part = load_safetensors(os.path.join(folder, file))
            assert all(wmap.get(n) == file for n in part), f"{file}: a tensor mapped elsewhere"
            W.update(part)
        assert set(W) == set(wmap), "a tensor of the index is missing from its shard"
    else:
        W = load_safetensors(os.path.join(folder, "model.safetensors"))
    W = {n: t for n, t in W.items() if not n.endswith("num_batches_tracked")}  # unused in eval
    if "lm_head.weight" not in W:
        assert c.get("tie_word_embeddings"), "no lm_head.weight and the embeddings are not tied"
        W["lm_head.weight"] = W["model.embed_tokens.weight"]
    return c, {n: t.to(dtype) for n, t in W.items()}


def relu2(x):  # ACT2FN["relu2"]
    return torch.relu(x) ** 2


def rms_norm(x, w, eps):  # LlamaRMSNorm
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, theta):  # LLaMA's rotate-half RoPE; x [T, heads, hd], positions 0..T-1
    T, hd = x.shape[0], x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=x.dtype) / hd)
    ang = torch.arange(T, dtype=x.dtype)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], -1)[:, None, :]
    x1, x2 = x[..., :hd // 2], x[..., hd // 2:]
    return x * ang.cos() + torch.cat([-x2, x1], -1) * ang.sin()


def attention(x, W, p, c):  # LlamaAttention: grouped-query heads, causal, no biases
    T, H = x.shape[0], c["num_attention_heads"]
    KV, hd = c.get("num_key_value_heads") or H, c["hidden_size"] // H
    q = rope((x @ W[p + "q_proj.weight"].T).view(T, H, hd), c["rope_theta"])
    k = rope((x @ W[p + "k_proj.weight"].T).view(T, KV, hd), c["rope_theta"])
    v = (x @ W[p + "v_proj.weight"].T).view(T, KV, hd)
    k, v = (t.repeat_interleave(H // KV, dim=1) for t in (k, v))  # head h reads h // (H/KV)
    s = torch.einsum("thd,shd->hts", q, k) / math.sqrt(hd)
    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    o = torch.einsum("hts,shd->thd", s.softmax(-1), v).reshape(T, H * hd)
    return o @ W[p + "o_proj.weight"].T


def router(x, W, p, c, margins):  # MonetRouter in eval mode (running statistics, eps 1e-5)
    nh, E = c["moe_heads"], c["moe_experts"]
    sigma = torch.distributions.Normal(0.0, 1.0).icdf(
        torch.tensor(1 - c["moe_topk"] / E, dtype=torch.float64)).item()
    gs = []
    for k in "12":
        z = (x @ W[p + f"w{k}.weight"].T).view(-1, nh, E)
        mean, var = W[p + f"norm{k}.running_mean"], W[p + f"norm{k}.running_var"]
        n = (z - mean[None, :, None]) / torch.sqrt(var[None, :, None] + 1e-5)
        tau = n.amax(-1, keepdim=True).clamp(max=sigma)
        gap = torch.where(n == tau, torch.full_like(n, float("inf")), (n - tau).abs())
        margins.append(gap.min().item())
        gs.append(torch.where(n >= tau, z, torch.full_like(z, -1e10)).softmax(-1))
    return gs  # g1, g2: [T, heads, experts]


def moe_efficient(x, g1, g2, W, p, c):  # the einsum forms of MonetMoVDE / MonetMoHDE
    E = c["moe_experts"]
    if c["moe_decompose"] == "vertical":
        a1 = relu2(x @ W[p + "u1.weight"].T + W[p + "u1.bias"]).unflatten(-1, (E, -1))
        a2 = relu2(x @ W[p + "u2.weight"].T + W[p + "u2.bias"]).unflatten(-1, (E, -1))
        x11 = torch.einsum("tim,thi->tim", a1, g1).flatten(-2) @ W[p + "v11.weight"].T
        x12 = torch.einsum("tjm,thj,thi->tim", a2, g2, g1).flatten(-2) @ W[p + "v12.weight"].T
        x13 = torch.einsum("thi,id->td", g1, W[p + "b1"])
        x21 = torch.einsum("tim,thi,thj->tjm", a1, g1, g2).flatten(-2) @ W[p + "v21.weight"].T
        x22 = torch.einsum("tjm,thj->tjm", a2, g2).flatten(-2) @ W[p + "v22.weight"].T
        x23 = torch.einsum("thj,jd->td", g2, W[p + "b2"])
        return torch.cat([x11 + x12 + x13, x21 + x22 + x23], -1)
    a = relu2(x @ W[p + "u.weight"].T + W[p + "u.bias"]).unflatten(-1, (E, -1))
    y = torch.einsum("tim,thi,thj->tjm", a, g1, g2).flatten(-2) @ W[p + "v.weight"].T
    return y + torch.einsum("thj,jd->td", g2, W[p + "b"])


def moe_literal(x, g1, g2, W, p, c):
    """Every composed expert E_ij(x) built on its own; y = sum_h sum_ij g1_hi g2_hj E_ij(x).
    VD: E_ij = [V11_i a1_i + V12_i a2_j + b1_i ; V21_j a1_i + V22_j a2_j + b2_j];
    HD: E_ij = V_j relu2(U_i x + bu_i) + b_j. V.._i: the columns of v.. of sub-expert i."""
    vd = c["moe_decompose"] == "vertical"
    r = c["moe_dim"] // 2 if vd else c["moe_dim"]
    y = torch.zeros_like(x)

    def a(name, i):  # relu2 of sub-expert i's rows of u (u1, u2)
        return relu2(x @ W[p + name + ".weight"][i * r:(i + 1) * r].T
                     + W[p + name + ".bias"][i * r:(i + 1) * r])

    def V(name, i):  # sub-expert i's columns of v.. , transposed for x @ V
        return W[p + name + ".weight"][:, i * r:(i + 1) * r].T

    for i in range(c["moe_experts"]):
        for j in range(c["moe_experts"]):
            if vd:
                a1, a2 = a("u1", i), a("u2", j)
                e = torch.cat([a1 @ V("v11", i) + a2 @ V("v12", i) + W[p + "b1"][i],
                               a1 @ V("v21", j) + a2 @ V("v22", j) + W[p + "b2"][j]], -1)
            else:
                e = a("u", i) @ V("v", j) + W[p + "b"][j]
            y = y + (g1[:, :, i] * g2[:, :, j]).sum(-1, keepdim=True) * e
    return y


def forward(ids, c, W, margins, self_check=None):
    """MonetForCausalLM's logits [T, vocab] for one sequence. A layer without a router reuses
    the (g1, g2) of the last layer that had one (MonetModel's previous_router_probs)."""
    eps = c["rms_norm_eps"]
    h = W["model.embed_tokens.weight"][torch.tensor(ids)]
    for i in range(c["num_hidden_layers"]):  # MonetDecoderLayer
        p = f"model.layers.{i}."
        h = h + attention(rms_norm(h, W[p + "input_layernorm.weight"], eps), W, p + "self_attn.", c)
        x = rms_norm(h, W[p + "post_attention_layernorm.weight"], eps)
        if p + "router.w1.weight" in W:
            g1, g2 = router(x, W, p + "router.", c, margins)
        y = moe_efficient(x, g1, g2, W, p + "moe.", c)
        if self_check is not None:
            lit = moe_literal(x, g1, g2, W, p + "moe.", c)
            self_check.append(((lit - y).abs().max() / y.abs().max()).item())
        h = h + y
    return rms_norm(h, W["model.norm.weight"], eps) @ W["lm_head.weight"].T
