"""The PyTorch twin of `monet train`'s training step, timed: what `monet bench --vs-torch` runs.

    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 eval/reference/torch_bench.py \\
        --config configs/bench_dense_d128.json [--steps 10] [--warmup 2] [--set key=value ...] \\
        [--init model.safetensors] [--threads 1]

Reads the same JSON config as `monet` (configs/*.json, the schema of train/config.h; missing keys
take the C++ defaults), builds the same model from monet_ref.py's transformer and layers (the ones
tests/test_reference_*.cpp checks against the C++: pre-norm LLaMA blocks, RMSNorm, RoPE in
the rotate-half layout, causal attention, untied LM head, no biases; FFN dense / smoe / peer /
monet_hd / monet_vd), draws the same training windows as train/corpus.h's Batcher (the same
xoshiro256** generator seeded with run.seed + 1, the same corpus stream, the same start
positions), and runs warm-up + timed steps of: batch → forward → cross-entropy + the layers' aux
losses → backward → clip_grad_norm_ → AdamW (decay on every tensor of 2+ dimensions whose name
has no "embed", as nn/optim.h) at the constant learning rate optim.lr (`monet bench` uses the
constant rate too: a bench run is too short for the schedule's warm-up).

Precision: run.precision "fp32" (the default) or "bf16". In bf16 the forward pass and the loss
run under torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's own mixed-precision recipe:
weights, gradients and AdamW state stay f32, backward runs outside autocast, and autocast's CPU
lists decide the rest (in torch 1.13: linear / matmul / einsum in bf16; cross_entropy in f32;
softmax and batch_norm keep their input's dtype; RMSNorm sees the f32 residual stream). run.gemm
(the C++ GEMM backend) and any other run.* key this side has no use for are accepted and ignored.

Initial weights: with --init, the C++ model's own initial state (model.safetensors written by
`monet bench`), so both sides start from identical weights and their losses can be compared step
by step; without it, drawn here with the C++ scheme (N(0, 0.02²) matrices, unit norm gains, zero
biases and MONET b, zero SMoE gates for noisy_topk) from torch's generator, so not the same
numbers. The one thing this side draws on its own is noisy top-k's ε (and Switch jitter): those
configurations do not follow the C++ loss exactly.

Prints one JSON object on stdout: step_seconds (the timed steps), losses (LM loss of every step,
warm-up included), tokens_per_step, median_tokens_per_second, parameters, torch version and
threads, OPENBLAS_NUM_THREADS, precision, max_rss_bytes (getrusage of this process).

The parts live beside this file: bench_config.py (the config, its defaults and --set),
bench_data.py (the corpus stream and the Batcher's draws) and bench_params.py (the C++ model's
parameter names and shapes, drawn or read from --init); this file builds the model and runs the
steps.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import monet_ref as ref  # noqa: E402
from bench_config import apply_set, autocast_for, resolve_config  # noqa: E402
from bench_data import Batcher, train_stream  # noqa: E402
from bench_params import init_state, load_state, param_shapes, smoe_k  # noqa: E402


# ---------------------------------------------------------------------------------------------
# The model: monet_ref.transformer_forward with the config's FFN
# ---------------------------------------------------------------------------------------------
def make_forward(cfg: dict, P: dict):
    m = cfg["model"]
    f = m["ffn"]
    kind = f["kind"]
    monet, ffn = None, None
    if kind in ("monet_hd", "monet_vd"):
        monet = dict(heads=f["heads"], sqrt_n=f["sqrt_n"], topk=f["topk"], group=f["group"],
                     vertical=kind == "monet_vd", aux_weight=f["aux_weight"], efficient=True,
                     staged=True, clamp=1e-9)
    elif kind == "dense":
        def ffn(l, p, x):
            return ref.dense_ffn(x, P[p + "w1.weight"], P[p + "w2.weight"], P.get(p + "w3.weight"),
                                 f["activation"]), None
    elif kind == "smoe":
        scfg = dict(f, topk=smoe_k(f))

        def ffn(l, p, x):
            B, T, d = x.shape
            xs = x.reshape(B * T, d)
            if f["jitter"] > 0:  # Switch jitter: the router's input only
                xr = xs * torch.empty_like(xs).uniform_(1 - f["jitter"], 1 + f["jitter"])
            else:
                xr = xs
            eps = torch.randn(B * T, f["experts"]) if f["gating"] == "noisy_topk" else None
            Q = {"gate.weight": P[p + "gate.weight"], "noise.weight": P.get(p + "noise.weight"),
                 "w1": P[p + "w1"], "w2": P[p + "w2"]}
            y, r, _, _ = ref.smoe_forward_sparse(xs, Q, scfg, True, eps, x_route=xr)
            return y.view(B, T, d), ref.smoe_aux_loss(r, scfg)
    elif kind == "peer":
        def ffn(l, p, x):
            Q = {k: P[p + k] for k in ("query.weight", "keys1", "keys2", "u", "v")}
            if f["query_batchnorm"]:
                Q["query_norm.running_mean"] = P[p + "query_norm.running_mean"]
                Q["query_norm.running_var"] = P[p + "query_norm.running_var"]
            y = ref.peer_forward(x, Q, f, training=True)[0]
            return y, None

    def forward(ids):
        return ref.transformer_forward(P, ids, m["layers"], m["heads"], m["norm_eps"], 10000.0,
                                       monet, training=True, ffn=ffn)
    return forward


def make_optimizer(cfg: dict, params: dict):
    o = cfg["optim"]
    if o["name"] == "sgd":
        return torch.optim.SGD(list(params.values()), lr=o["lr"], weight_decay=o["weight_decay"])
    decay = [p for n, p in params.items() if p.dim() != 1 and "embed" not in n]
    other = [p for n, p in params.items() if not (p.dim() != 1 and "embed" not in n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": o["weight_decay"]},
                              {"params": other, "weight_decay": 0.0}],
                             lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--init", help="initial weights (safetensors, C++ names) instead of drawing")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    with open(a.config) as f:
        raw = json.load(f)
    for s in a.sets:
        apply_set(raw, s)
    cfg = resolve_config(raw)
    m, run = cfg["model"], cfg["run"]
    precision = run["precision"]
    B, T = run["batch"], m["context"]
    torch.manual_seed(run["seed"] + 2)  # the draws of noisy top-k / jitter (not the C++'s)
    state = load_state(a.init, cfg) if a.init else init_state(cfg, run["seed"])
    shapes = param_shapes(cfg)
    P = {}
    params = {}
    for name, t in state.items():
        if "running_" in name:
            P[name] = t
        else:
            P[name] = params[name] = t.requires_grad_(True)
    forward = make_forward(cfg, P)
    opt = make_optimizer(cfg, params)
    clip = cfg["optim"]["grad_clip"]
    batcher = Batcher(train_stream(run["data"]), run["seed"] + 1)

    times, losses = [], []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        x, y = batcher.next(B, T)
        with autocast_for(precision):  # forward and loss; backward and the optimizer outside
            logits, aux = forward(x)
            lm = F.cross_entropy(logits.reshape(B * T, -1), y.reshape(-1))  # f32 under autocast
            loss = lm + aux if aux is not None else lm
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(list(params.values()), clip)
        opt.step()
        lm_value = lm.item()
        t1 = time.perf_counter()
        if not math.isfinite(lm_value):
            raise SystemExit(f"torch_bench: the loss is {lm_value} at step {step + 1}")
        losses.append(lm_value)
        if step >= a.warmup:
            times.append(t1 - t0)

    med = statistics.median(times) if times else float("nan")
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", ""),
        "kind": m["ffn"]["kind"], "d": m["d"], "precision": precision, "tokens_per_step": B * T,
        "parameters": sum(int(math.prod(s)) for n, (s, _) in shapes.items() if "running_" not in n),
        "init": "file" if a.init else "drawn", "warmup": a.warmup,
        "step_seconds": times, "losses": losses,
        "median_tokens_per_second": B * T / med if times else 0.0,
        "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == "__main__":
    main()
