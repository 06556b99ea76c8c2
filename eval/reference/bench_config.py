"""torch_bench.py's config: the JSON of train/config.h with the C++ defaults filled in, the
--set overrides, and the precision's autocast context."""
from __future__ import annotations

import contextlib
import json

import torch


# ---------------------------------------------------------------------------------------------
# The config (train/config.h): defaults, --set overrides
# ---------------------------------------------------------------------------------------------
def ffn_defaults(kind: str, d: int) -> dict:
    if kind == "dense":
        return dict(activation="relu2", hidden=4 * d)
    if kind in ("monet_hd", "monet_vd"):
        return dict(heads=4, sqrt_n=d // 2, dim=8, topk=8, group=4, aux_weight=1e-3)
    if kind == "peer":
        return dict(sqrt_n=d // 2, heads=8, topk=16, d_query=d // 2, activation="gelu",
                    score="softmax", query_batchnorm=1)
    if kind == "smoe":
        return dict(experts=8, dim=0, topk=0, gating="switch", capacity_factor=0,
                    balance_weight=1e-2, z_weight=1e-3, importance_weight=1e-2, load_weight=1e-2,
                    jitter=0, activation="relu2")
    raise SystemExit(f"torch_bench: model.ffn.kind '{kind}' is not known")


def resolve_config(raw: dict) -> dict:
    model = dict(vocab=256, d=128, layers=4, heads=4, context=128, norm_eps=1e-5)
    model.update({k: v for k, v in raw.get("model", {}).items() if k != "ffn"})
    ffn = dict(raw.get("model", {}).get("ffn", {}))
    kind = ffn.pop("kind", "dense")
    full = ffn_defaults(kind, model["d"])
    full.update(ffn)
    model["ffn"] = dict(kind=kind, **full)
    optim = dict(name="adamw", lr=1e-3, min_lr=0, weight_decay=0.1, beta1=0.9, beta2=0.95,
                 eps=1e-8, warmup_steps=0, grad_clip=1.0)
    optim.update(raw.get("optim", {}))
    run = dict(steps=1000, batch=16, seed=0, data="third_party/corpora/toy4", precision="fp32",
               gemm="auto")
    run.update(raw.get("run", {}))  # keys this side does not use (run.gemm, ...) pass through
    if run["precision"] not in PRECISIONS:
        raise SystemExit(f"torch_bench: run.precision '{run['precision']}' is not known "
                         f"(expected one of: {', '.join(PRECISIONS)})")
    return dict(model=model, optim=optim, run=run)


PRECISIONS = ("fp32", "bf16")


def autocast_for(precision: str):
    """The forward + loss context: PyTorch's bf16 autocast on CPU, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def apply_set(raw: dict, assignment: str):
    key, eq, value = assignment.partition("=")
    if not eq:
        raise SystemExit(f"torch_bench: --set '{assignment}' has no '='")
    try:
        value = json.loads(value)
    except json.JSONDecodeError:
        pass
    node = raw
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
