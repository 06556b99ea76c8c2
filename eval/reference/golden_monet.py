"""gen_golden.py's MONET cases: the router, the aux losses, the MONET-HD and -VD layers and the
tiny dense and MONET-VD transformers (ref_router, ref_aux_loss, ref_monet_{hd,vd},
ref_transformer, ref_monet_transformer .safetensors)."""
from __future__ import annotations

import torch

import monet_ref as ref
from golden_util import F64, assert_close, f32, grads, leaf, rnd, written

# The MONET layer case: B=2, T=5, d=16, H=2, √N=8, m=4, k=2 (σ = Φ⁻¹(0.75) ≈ 0.6745).
MONET = dict(B=2, T=5, d=16, heads=2, sqrt_n=8, dim=4, topk=2)
# The tiny transformer: vocab 32, d 16, 2 layers, 2 heads, T 8, relu² MLP of 4d.
TINY = dict(B=2, T=8, vocab=32, d=16, layers=2, heads=2, hidden=64, norm_eps=1e-6, theta=10000.0)
# The MONET transformer: the tiny one with MONET-VD FFNs, both layers in one routing group.
# k = 3 (σ = Φ⁻¹(5/8)) so that every sub-expert is kept by one of the 16 tokens (ḡ > 0).
TINY_MONET = dict(TINY, monet_heads=2, sqrt_n=8, dim=4, topk=3, group=2, aux_weight=1e-3)

MASK_MARGIN = 1e-4  # every |n − σ| must exceed this, so F32 rounding cannot change a kept set


def mask_margin(n: torch.Tensor, sigma: float) -> float:
    """How far the kept-set decision is from flipping: min over (token, head) of the gap between
    the threshold τ and the nearest n_i on either side (excluding the argmax when τ = max)."""
    tau = n.amax(-1, keepdim=True).clamp(max=sigma)
    gap = (n - tau).abs()
    gap = torch.where(n == tau, torch.full_like(gap, float("inf")), gap)
    return gap.min().item()


# ---------------------------------------------------------------------------------------------
def gen_router() -> int:
    """The router alone, in training mode (batch statistics, running-stat update) and in eval
    mode (given running statistics). L = Σ ĝ1⊙c1 + Σ ĝ2⊙c2 with fixed random c1, c2."""
    c = MONET
    B, T, d, H, S = c["B"], c["T"], c["d"], c["heads"], c["sqrt_n"]
    sigma = ref.routing_threshold(c["topk"], S)
    g = torch.Generator().manual_seed(101)
    x = rnd(g, B, T, d)
    w1, w2 = rnd(g, H * S, d, std=0.3), rnd(g, H * S, d, std=0.3)
    c1, c2 = rnd(g, B, T, H, S), rnd(g, B, T, H, S)
    stats = {
        "train": [rnd(g, H, std=0.2), (rnd(g, H, std=0.2).abs() + 0.5).float().double(),
                  rnd(g, H, std=0.2), (rnd(g, H, std=0.2).abs() + 0.5).float().double()],
        "eval": [rnd(g, H, std=0.3), (rnd(g, H, std=0.3).abs() + 1.0).float().double(),
                 rnd(g, H, std=0.3), (rnd(g, H, std=0.3).abs() + 1.0).float().double()],
    }
    T_ = {"x": f32(x), "router.w1.weight": f32(w1), "router.w2.weight": f32(w2),
          "c1": f32(c1), "c2": f32(c2)}
    for mode, (m1, v1, m2, v2) in stats.items():
        training = mode == "train"
        T_[f"{mode}.norm1.running_mean"], T_[f"{mode}.norm1.running_var"] = f32(m1), f32(v1)
        T_[f"{mode}.norm2.running_mean"], T_[f"{mode}.norm2.running_var"] = f32(m2), f32(v2)
        rm1, rv1, rm2, rv2 = m1.clone(), v1.clone(), m2.clone(), v2.clone()
        X, W1, W2 = leaf(x), leaf(w1), leaf(w2)
        z1, z2 = ref.router_logits(X, W1, H), ref.router_logits(X, W2, H)
        g1, n1, k1 = ref.adaptive_route(z1, rm1, rv1, training, sigma)
        g2, n2, k2 = ref.adaptive_route(z2, rm2, rv2, training, sigma)
        margin = min(mask_margin(n1, sigma), mask_margin(n2, sigma))
        assert margin > MASK_MARGIN, f"router {mode}: mask margin {margin}"
        kept = torch.cat((k1, k2)).sum(-1).double()
        print(f"router {mode}: kept per (token, head) mean {kept.mean():.2f} "
              f"min {kept.min():.0f} max {kept.max():.0f}, mask margin {margin:.2e}")
        loss = (g1 * c1).sum() + (g2 * c2).sum()
        gr = grads(loss, {"x": X, "w1": W1, "w2": W2})
        T_.update({
            f"{mode}.n1": n1, f"{mode}.n2": n2,
            f"{mode}.keep1": k1.to(torch.int32), f"{mode}.keep2": k2.to(torch.int32),
            f"{mode}.g1": g1.detach(), f"{mode}.g2": g2.detach(),
            f"{mode}.norm1.running_mean.after": rm1, f"{mode}.norm1.running_var.after": rv1,
            f"{mode}.norm2.running_mean.after": rm2, f"{mode}.norm2.running_var.after": rv2,
            f"{mode}.grad.x": gr["x"], f"{mode}.grad.router.w1.weight": gr["w1"],
            f"{mode}.grad.router.w2.weight": gr["w2"],
        })
    meta = dict(c, sigma=repr(sigma), momentum="0.1", eps="1e-05",
                loss="sum(g1*c1) + sum(g2*c2)", generator="eval/reference/gen_golden.py")
    return written("ref_router.safetensors", T_, meta)


# ---------------------------------------------------------------------------------------------
def gen_aux() -> int:
    """L_unif and L_amb of a training-mode routing on a batch large enough that every
    sub-expert is kept by some token (ḡ > 0: the paper's formula, no clamp involved)."""
    c = MONET
    B, T, d, H, S = 4, 8, c["d"], c["heads"], c["sqrt_n"]
    sigma = ref.routing_threshold(c["topk"], S)
    g = torch.Generator().manual_seed(203)
    x = rnd(g, B, T, d)
    w1, w2 = rnd(g, H * S, d, std=0.3), rnd(g, H * S, d, std=0.3)
    X, W1, W2 = leaf(x), leaf(w1), leaf(w2)
    g1, n1, _ = ref.adaptive_route(ref.router_logits(X, W1, H), torch.zeros(H, dtype=F64),
                                   torch.ones(H, dtype=F64), True, sigma)
    g2, n2, _ = ref.adaptive_route(ref.router_logits(X, W2, H), torch.zeros(H, dtype=F64),
                                   torch.ones(H, dtype=F64), True, sigma)
    margin = min(mask_margin(n1, sigma), mask_margin(n2, sigma))
    assert margin > MASK_MARGIN, f"aux: mask margin {margin}"
    usage = torch.cat((g1.mean((0, 1)), g2.mean((0, 1))))
    assert usage.min() > 1e-3, f"aux: a sub-expert is unused ({usage.min()})"
    unif, amb = ref.uniformity_loss(g1, g2), ref.ambiguity_loss(g1, g2)
    print(f"aux: L_unif {unif.item():.6f} (min log √N = {torch.log(torch.tensor(S * 1.0)):.6f}), "
          f"L_amb {amb.item():.6f}, min usage {usage.min():.3e}")
    named = {"x": X, "router.w1.weight": W1, "router.w2.weight": W2}
    gu, ga = grads(unif, named), grads(amb, named)
    T_ = {"x": f32(x), "router.w1.weight": f32(w1), "router.w2.weight": f32(w2),
          "unif": unif.detach().reshape(1), "amb": amb.detach().reshape(1)}
    T_.update({f"grad_unif.{k}": v for k, v in gu.items()})
    T_.update({f"grad_amb.{k}": v for k, v in ga.items()})
    meta = dict(c, B=B, T=T, sigma=repr(sigma), training="1",
                generator="eval/reference/gen_golden.py")
    return written("ref_aux_loss.safetensors", T_, meta)


# ---------------------------------------------------------------------------------------------
def gen_layer(vertical: bool) -> int:
    """Router (training mode, initial running stats 0/1) → MONET-HD or -VD, L = Σ y⊙dy."""
    c = MONET
    B, T, d, H, S, m = c["B"], c["T"], c["d"], c["heads"], c["sqrt_n"], c["dim"]
    sigma = ref.routing_threshold(c["topk"], S)
    g = torch.Generator().manual_seed(303 if vertical else 304)
    x = rnd(g, B, T, d)
    P = {"router.w1.weight": rnd(g, H * S, d, std=0.3),
         "router.w2.weight": rnd(g, H * S, d, std=0.3)}
    if vertical:
        hm = m // 2
        P.update({"u1.weight": rnd(g, S * hm, d, std=0.3), "u1.bias": rnd(g, S * hm, std=0.3),
                  "u2.weight": rnd(g, S * hm, d, std=0.3), "u2.bias": rnd(g, S * hm, std=0.3)})
        for v in ("v11", "v12", "v21", "v22"):
            P[f"{v}.weight"] = rnd(g, d // 2, S * hm, std=0.3)
        P["b1"], P["b2"] = rnd(g, S, d // 2, std=0.3), rnd(g, S, d // 2, std=0.3)
    else:
        P.update({"u.weight": rnd(g, S * m, d, std=0.3), "u.bias": rnd(g, S * m, std=0.3),
                  "v.weight": rnd(g, d, S * m, std=0.3), "b": rnd(g, S, d, std=0.3)})
    dy = rnd(g, B, T, d)
    buffers = {"router.norm1.running_mean": torch.zeros(H, dtype=F64),
               "router.norm1.running_var": torch.ones(H, dtype=F64),
               "router.norm2.running_mean": torch.zeros(H, dtype=F64),
               "router.norm2.running_var": torch.ones(H, dtype=F64)}

    results = {}
    for efficient in (True, False):
        L = {k: leaf(v) for k, v in P.items()}
        X = leaf(x)
        st = {k: v.clone() for k, v in buffers.items()}
        layer = ref.MonetFFN({**L, **st}, "", H, S, c["topk"], vertical, efficient=efficient)
        g1, g2 = layer.route(X, training=True)
        y = layer.experts(X, g1, g2)
        loss = (y * dy).sum()
        results[efficient] = (g1, g2, y, grads(loss, {"x": X, **L}), st)
        margin = min(mask_margin(n, sigma) for n in layer.last_normalised)
        assert margin > MASK_MARGIN, f"layer: mask margin {margin}"
    # The twin against itself: the literal sum over every expert vs App. A.1's form.
    (g1, g2, y, gr, st), (_, _, y_lit, gr_lit, _) = results[True], results[False]
    assert_close("forward", y, y_lit)
    for k in gr:
        assert_close(f"grad {k}", gr[k], gr_lit[k])
    if vertical:  # ... and the staged contraction order torch_bench.py runs
        L = {k: leaf(v) for k, v in P.items()}
        X = leaf(x)
        args = [L[k] for k in ("u1.weight", "u1.bias", "u2.weight", "u2.bias", "v11.weight",
                               "v12.weight", "v21.weight", "v22.weight", "b1", "b2")]
        y_st = ref.vd_staged(X, g1.detach(), g2.detach(), *args)
        y_ef = ref.vd_efficient(X, g1.detach(), g2.detach(), *args)
        assert_close("vd staged forward", y_st, y_ef)
        named = {"x": X, **L}
        g_st, g_ef = grads((y_st * dy).sum(), named), grads((y_ef * dy).sum(), named)
        for k in g_st:
            assert_close(f"vd staged grad {k}", g_st[k], g_ef[k])
    # L_amb only: with 10 tokens some sub-experts are kept by none, where the paper's L_unif is
    # +inf (ref_aux_loss.safetensors covers L_unif on a batch that uses every sub-expert).
    amb = ref.ambiguity_loss(g1, g2)

    T_ = {"x": f32(x), "dy": f32(dy)}
    T_.update({k: f32(v) for k, v in P.items()})
    T_.update({k: f32(v) for k, v in buffers.items()})
    T_.update({"g1": g1.detach(), "g2": g2.detach(), "y": y.detach(),
               "amb": amb.detach().reshape(1)})
    T_.update({f"{k}.after": v for k, v in st.items()})
    T_.update({f"grad.{k}": v for k, v in gr.items()})
    kind = "vd" if vertical else "hd"
    print(f"monet_{kind}: |y| max {y.abs().max():.4f}, literal vs efficient agree")
    meta = dict(c, sigma=repr(sigma), vertical=str(int(vertical)), training="1",
                loss="sum(y*dy)", generator="eval/reference/gen_golden.py")
    return written(f"ref_monet_{kind}.safetensors", T_, meta)


# ---------------------------------------------------------------------------------------------
def tiny_params(g: torch.Generator, c: dict, monet: bool) -> dict:
    d, V = c["d"], c["vocab"]
    P = {"embed.weight": rnd(g, V, d, std=1.0)}
    for l in range(c["layers"]):
        p = f"layers.{l}."
        P[p + "norm1.weight"] = rnd(g, d, std=0.1, mean=1.0)
        for w in ("wq", "wk", "wv", "wo"):
            P[p + f"attn.{w}.weight"] = rnd(g, d, d, std=0.3)
        P[p + "norm2.weight"] = rnd(g, d, std=0.1, mean=1.0)
        if not monet:
            P[p + "ffn.w1.weight"] = rnd(g, c["hidden"], d, std=0.3)
            P[p + "ffn.w2.weight"] = rnd(g, d, c["hidden"], std=0.2)
        else:
            H, S, hm = c["monet_heads"], c["sqrt_n"], c["dim"] // 2
            if l % c["group"] == 0:
                P[p + "ffn.router.w1.weight"] = rnd(g, H * S, d, std=0.3)
                P[p + "ffn.router.w2.weight"] = rnd(g, H * S, d, std=0.3)
            P[p + "ffn.u1.weight"] = rnd(g, S * hm, d, std=0.3)
            P[p + "ffn.u1.bias"] = rnd(g, S * hm, std=0.3)
            P[p + "ffn.u2.weight"] = rnd(g, S * hm, d, std=0.3)
            P[p + "ffn.u2.bias"] = rnd(g, S * hm, std=0.3)
            for v in ("v11", "v12", "v21", "v22"):
                P[p + f"ffn.{v}.weight"] = rnd(g, d // 2, S * hm, std=0.3)
            P[p + "ffn.b1"] = rnd(g, S, d // 2, std=0.3)
            P[p + "ffn.b2"] = rnd(g, S, d // 2, std=0.3)
    P["norm.weight"] = rnd(g, d, std=0.1, mean=1.0)
    P["lm_head.weight"] = rnd(g, V, d, std=0.3)
    return P


def gen_transformer(monet: bool) -> int:
    """The whole model: ids → logits, L = cross-entropy (mean over B·T), plus for MONET the
    aux loss λ(L_unif + L_amb) of each router (training mode)."""
    c = TINY_MONET if monet else TINY
    B, T, V = c["B"], c["T"], c["vocab"]
    g = torch.Generator().manual_seed(405 if monet else 404)
    ids = torch.randint(V, (B, T), generator=g)
    targets = torch.randint(V, (B, T), generator=g)
    P = tiny_params(g, c, monet)
    buffers = {}
    mo = None
    if monet:
        H = c["monet_heads"]
        for l in range(0, c["layers"], c["group"]):
            for r in ("norm1", "norm2"):
                buffers[f"layers.{l}.ffn.router.{r}.running_mean"] = torch.zeros(H, dtype=F64)
                buffers[f"layers.{l}.ffn.router.{r}.running_var"] = torch.ones(H, dtype=F64)
        mo = dict(heads=H, sqrt_n=c["sqrt_n"], topk=c["topk"], group=c["group"], vertical=True,
                  aux_weight=c["aux_weight"])

    results = {}
    for efficient in ((True, False) if monet else (True,)):
        L = {k: leaf(v) for k, v in P.items()}
        st = {k: v.clone() for k, v in buffers.items()}
        if mo is not None:
            mo["efficient"] = efficient
        trace: list = []
        logits, aux = ref.transformer_forward({**L, **st}, ids, c["layers"], c["heads"],
                                              c["norm_eps"], c["theta"], mo, training=True,
                                              trace=trace)
        for (n1, n2), sigma in trace:
            margin = min(mask_margin(n1, sigma), mask_margin(n2, sigma))
            assert margin > MASK_MARGIN, f"model router: mask margin {margin}"
        ce = torch.nn.functional.cross_entropy(logits.reshape(B * T, V), targets.reshape(-1))
        loss = ce if aux is None else ce + aux
        assert torch.isfinite(loss), "a sub-expert no token kept: L_unif is infinite"
        results[efficient] = (logits, ce, aux, loss, grads(loss, L), st)
    logits, ce, aux, loss, gr, st = results[True]
    if monet:
        _, _, _, loss_lit, gr_lit, _ = results[False]
        assert_close("model loss", loss, loss_lit)
        for k in gr:
            assert_close(f"model grad {k}", gr[k], gr_lit[k])

    T_ = {"ids": ids.to(torch.int32), "targets": targets.to(torch.int32)}
    T_.update({k: f32(v) for k, v in P.items()})
    T_.update({k: f32(v) for k, v in buffers.items()})
    T_.update({"logits": logits.detach(), "ce": ce.detach().reshape(1),
               "loss": loss.detach().reshape(1)})
    if aux is not None:
        T_["aux"] = aux.detach().reshape(1)
    T_.update({f"{k}.after": v for k, v in st.items()})
    T_.update({f"grad.{k}": v for k, v in gr.items()})
    name = "ref_monet_transformer" if monet else "ref_transformer"
    print(f"{name}: CE {ce.item():.6f}" + (f", aux {aux.item():.3e}" if aux is not None else ""))
    meta = {k: str(v) for k, v in c.items()}
    meta.update(ffn="monet_vd" if monet else "dense", activation="relu2", training="1",
                loss="cross_entropy(logits, targets)" + (" + aux" if monet else ""),
                generator="eval/reference/gen_golden.py")
    return written(f"{name}.safetensors", T_, meta)
