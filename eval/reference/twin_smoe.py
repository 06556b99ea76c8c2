"""The twin's sparse MoE layer (monet_ref.py; docs/math/smoe.md §2): softmax, noisy top-k,
Switch and GShard gating, capacity, dispatch and the aux losses, each vectorised and literal."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from twin_ops import linear, relu2


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
