"""The twin's PEER layer (monet_ref.py; He 2024, arXiv 2407.04153 §2, docs/math/peer.md §3):
query BatchNorm, product-key retrieval and singleton experts, efficient and literal."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from twin_ops import linear
from twin_smoe import activation


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
