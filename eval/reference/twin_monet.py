"""The MONET layers of the twin (monet_ref.py), from Park et al. 2024 (arXiv 2412.04139): the
router (§3), MONET-HD and MONET-VD in their literal and memory-efficient forms (Eq. 6–15,
App. A.1) and the auxiliary losses (Eq. 16–17)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from twin_ops import linear, relu2


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
