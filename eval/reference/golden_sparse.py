"""gen_golden.py's sparse cases: the SMoE gatings (ref_smoe_*.safetensors) and the PEER variants
(ref_peer_*.safetensors)."""
from __future__ import annotations

import torch

import monet_ref as ref
from golden_util import assert_close, f32, grads, leaf, rnd, written


# ---------------------------------------------------------------------------------------------
# Sparse MoE: x [B·T, d] → y = Σ_s g_s E_{idx_s}(x) (dropped pairs contribute 0), with its aux
# losses. L = Σ y⊙dy + Σ weight·part, the weights O(1) so the aux gradients are not hidden
# under the output's in the comparison.
SMOE = dict(B=2, T=6, d=8, experts=4, dim=8, balance_weight=0.5, z_weight=0.1,
            importance_weight=0.5, load_weight=0.5)
SMOE_CASES = {
    # Switch top-1 with C = ⌈12·1·1.0/4⌉ = 3: some tokens overflow and are dropped.
    "switch": dict(gating="switch", topk=1, capacity_factor=1.0, activation="relu2", seed=501,
                   drops=True),
    # GShard top-2, dropless (grouped gemm path).
    "gshard": dict(gating="gshard", topk=2, capacity_factor=0.0, activation="relu2", seed=502,
                   drops=False),
    # Noisy top-2 with the noise ε stored as an input, capacity C = ⌈12·2·0.75/4⌉ = 5: second
    # choices are dropped after every first choice (slot-major), GELU experts.
    "noisy_topk": dict(gating="noisy_topk", topk=2, capacity_factor=0.75, activation="gelu",
                       seed=503, drops=True),
    # Dense softmax gating over all 4 experts, dropless.
    "softmax": dict(gating="softmax", topk=4, capacity_factor=0.0, activation="relu2", seed=504,
                    drops=False),
}
TOPK_MARGIN = 1e-4  # every top-k decision (and order) is this far from a tie


def topk_gap(v: torch.Tensor, k: int) -> float:
    """Min over rows of the gaps between consecutive values among the k+1 largest: the k-th
    against the (k+1)-th decides the kept set, the others the order of the slots."""
    top = v.detach().topk(min(k + 1, v.shape[-1]), dim=-1).values
    return (top[..., :-1] - top[..., 1:]).min().item()


def gen_smoe(name: str) -> int:
    c = dict(SMOE, **SMOE_CASES[name])
    B, T, d, E, m = c["B"], c["T"], c["d"], c["experts"], c["dim"]
    n = B * T
    noisy = c["gating"] == "noisy_topk"
    g = torch.Generator().manual_seed(c["seed"])
    x = rnd(g, B, T, d)
    P = {"gate.weight": rnd(g, E, d, std=0.5)}
    if noisy:
        P["noise.weight"] = rnd(g, E, d, std=0.3)
    P["w1"] = rnd(g, E, m, d, std=0.3)
    P["w2"] = rnd(g, E, d, m, std=0.3)
    dy = rnd(g, B, T, d)
    eps = rnd(g, n, E) if noisy else None  # ε ~ N(0, 1) of Eq. 4, stored: the C++ test injects it

    results = {}
    for literal in (False, True):
        L = {k: leaf(v) for k, v in P.items()}
        X = leaf(x)
        y, r, keep, C = ref.smoe_forward(X.view(n, d), L, c, True, eps, literal=literal)
        aux = ref.smoe_aux_loss(r, c)
        loss = (y.view(B, T, d) * dy).sum()
        if aux is not None:
            loss = loss + aux
        results[literal] = (y, r, keep, C, aux, loss, grads(loss, {"x": X, **L}))
    # The twin against itself: per-token loops and Python sorts vs the vectorised forms.
    (y, r, keep, C, aux, loss, gr), (y_l, r_l, keep_l, _, _, loss_l, gr_l) = results.values()
    assert torch.equal(r["idx"], r_l["idx"]) and torch.equal(keep, keep_l), f"smoe {name}: choices"
    assert_close(f"smoe {name} y", y, y_l)
    assert_close(f"smoe {name} gates", r["gates"], r_l["gates"])
    assert_close(f"smoe {name} loss", loss, loss_l)
    for part, _ in ref.SMOE_AUX:
        assert (part in r) == (part in r_l)
        if part in r:
            assert_close(f"smoe {name} {part}", r[part], r_l[part])
    for k in gr:
        assert_close(f"smoe {name} grad {k}", gr[k], gr_l[k])
    # ... and the per-expert dispatch torch_bench.py runs.
    L = {k: leaf(v) for k, v in P.items()}
    X = leaf(x)
    y_s, r_s, _, _ = ref.smoe_forward_sparse(X.view(n, d), L, c, True, eps)
    aux_s = ref.smoe_aux_loss(r_s, c)
    loss_s = (y_s.view(B, T, d) * dy).sum() + (aux_s if aux_s is not None else 0)
    gr_s = grads(loss_s, {"x": X, **L})
    assert_close(f"smoe {name} sparse y", y_s, y)
    for k in gr:
        assert_close(f"smoe {name} sparse grad {k}", gr_s[k], gr[k])
    gap = topk_gap(r["select"], c["topk"]) if r["select"] is not None else float("inf")
    assert gap > TOPK_MARGIN, f"smoe {name}: top-k gap {gap}"
    dropped = int((~keep).sum())
    dropped_tokens = int((~keep).all(-1).sum())
    assert (dropped > 0) == c["drops"], f"smoe {name}: {dropped} pairs dropped"
    print(f"smoe {name}: capacity {C}, {dropped} pairs dropped ({dropped_tokens} tokens), "
          f"top-k gap {gap:.2e}, loops vs vectorised agree")

    T_ = {"x": f32(x), "dy": f32(dy)}
    T_.update({k: f32(v) for k, v in P.items()})
    if eps is not None:
        T_["eps"] = f32(eps)
    T_.update({"logits": r["logits"].detach(), "idx": r["idx"].to(torch.int32),
               "gates": r["gates"].detach(), "keep": keep.to(torch.int32),
               "y": y.detach().view(B, T, d), "loss": loss.detach().reshape(1)})
    for part, _ in ref.SMOE_AUX:
        if part in r:
            T_[part] = r[part].detach().reshape(1)
    if aux is not None:
        T_["aux"] = aux.detach().reshape(1)
    T_.update({f"grad.{k}": v for k, v in gr.items()})
    meta = {k: str(v) for k, v in c.items() if k not in ("seed", "drops")}
    meta.update(capacity=str(C), dropped=str(dropped), dropped_tokens=str(dropped_tokens),
                training="1", loss="sum(y*dy) + aux", generator="eval/reference/gen_golden.py")
    return written(f"ref_smoe_{name}.safetensors", T_, meta)


# ---------------------------------------------------------------------------------------------
# PEER: training mode (batch statistics in the query BatchNorm when there is one), L = Σ y⊙dy.
PEER = dict(B=2, T=6, d=12, sqrt_n=6, heads=2, topk=3, d_query=8)
PEER_CASES = {
    "softmax_bn": dict(score="softmax", query_batchnorm=1, activation="gelu", seed=601),
    "sigmoid_bn": dict(score="sigmoid", query_batchnorm=1, activation="gelu", seed=602),
    "softmax": dict(score="softmax", query_batchnorm=0, activation="relu", seed=603),
    "sigmoid": dict(score="sigmoid", query_batchnorm=0, activation="gelu", seed=604),
}


def gen_peer(name: str) -> int:
    c = dict(PEER, **PEER_CASES[name])
    B, T, d, S, H, k, dq = (c["B"], c["T"], c["d"], c["sqrt_n"], c["heads"], c["topk"],
                            c["d_query"])
    bn = bool(c["query_batchnorm"])
    g = torch.Generator().manual_seed(c["seed"])
    x = rnd(g, B, T, d)
    P = {"query.weight": rnd(g, H * dq, d, std=0.3), "keys1": rnd(g, S, dq // 2),
         "keys2": rnd(g, S, dq // 2), "u": rnd(g, S * S, d, std=0.3),
         "v": rnd(g, S * S, d, std=0.3)}
    buffers = {}
    if bn:
        buffers = {"query_norm.running_mean": rnd(g, H * dq, std=0.2),
                   "query_norm.running_var": (rnd(g, H * dq, std=0.2).abs() + 0.5).float().double()}
    dy = rnd(g, B, T, d)

    results = {}
    for literal in (False, True):
        L = {k: leaf(v) for k, v in P.items()}
        st = {k: v.clone() for k, v in buffers.items()}
        X = leaf(x)
        y, q, scores, indices, gates = ref.peer_forward(X, {**L, **st}, c, True, literal)
        loss = (y * dy).sum()
        results[literal] = (y, q, scores, indices, gates, grads(loss, {"x": X, **L}), st)
    # The twin against itself: product keys vs scoring all N keys, the expert sum token by token,
    # BatchNorm written out vs F.batch_norm.
    (y, q, scores, indices, gates, gr, st), (y_l, q_l, s_l, i_l, _, gr_l, st_l) = results.values()
    assert torch.equal(indices, i_l), f"peer {name}: retrieved experts differ"
    assert_close(f"peer {name} q", q, q_l)
    assert_close(f"peer {name} scores", scores, s_l)
    assert_close(f"peer {name} y", y, y_l)
    for k_ in gr:
        assert_close(f"peer {name} grad {k_}", gr[k_], gr_l[k_])
    for k_ in st:
        assert_close(f"peer {name} {k_}", st[k_], st_l[k_])
    # Gaps: each half's top k (the k-th vs the (k+1)-th decides it) and the true top k over N.
    half = dq // 2
    qd = q.detach()
    gap = min(topk_gap(qd[..., :half] @ P["keys1"].t(), k),
              topk_gap(qd[..., half:] @ P["keys2"].t(), k),
              topk_gap(qd @ ref.product_keys(P["keys1"], P["keys2"]).t(), k))
    assert gap > TOPK_MARGIN, f"peer {name}: top-k gap {gap}"
    if c["activation"] == "relu":  # relu′ jumps at 0: keep every u_jᵀx away from it
        z = torch.einsum("bthkd,btd->bthk", P["u"][indices], x).abs().min().item()
        assert z > TOPK_MARGIN, f"peer {name}: |u_jᵀx| = {z} at relu's kink"
    used = indices.unique().numel()
    print(f"peer {name}: {used} of {S * S} experts retrieved, top-k gap {gap:.2e}, "
          f"product keys vs all N keys agree")

    T_ = {"x": f32(x), "dy": f32(dy)}
    T_.update({k_: f32(v) for k_, v in P.items()})
    T_.update({k_: f32(v) for k_, v in buffers.items()})
    T_.update({"q": q.detach(), "scores": scores.detach(), "indices": indices.to(torch.int32),
               "gates": gates.detach(), "y": y.detach()})
    T_.update({f"{k_}.after": v for k_, v in st.items()})
    T_.update({f"grad.{k_}": v for k_, v in gr.items()})
    meta = {k_: str(v) for k_, v in c.items() if k_ != "seed"}
    meta.update(training="1", loss="sum(y*dy)", generator="eval/reference/gen_golden.py")
    return written(f"ref_peer_{name}.safetensors", T_, meta)
