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
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import statistics
import struct
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import monet_ref as ref  # noqa: E402


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


# ---------------------------------------------------------------------------------------------
# The data: train/corpus.h (byte tokens, domains sorted by name, train splits concatenated) and
# the Batcher's draws (core/random.h: xoshiro256** seeded through splitmix64; randint unbiased
# by rejection), reproduced bit for bit.
# ---------------------------------------------------------------------------------------------
MASK = (1 << 64) - 1


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & MASK


class Xoshiro:
    def __init__(self, seed: int):
        self.s = []
        x = seed & MASK
        for _ in range(4):  # splitmix64
            x = (x + 0x9E3779B97F4A7C15) & MASK
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
            self.s.append(z ^ (z >> 31))

    def next_u64(self) -> int:
        s = self.s
        result = (_rotl((s[1] * 5) & MASK, 7) * 9) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    def randint(self, n: int) -> int:
        limit = MASK - MASK % n
        while True:
            r = self.next_u64()
            if r < limit:
                return r % n


def train_stream(folder: str) -> torch.Tensor:
    if not os.path.isdir(folder):
        raise SystemExit(f"torch_bench: corpus folder '{folder}' does not exist (run from the "
                         "repository root, as monet, or set run.data)")
    names = sorted(f[: -len(".train.txt")] for f in os.listdir(folder)
                   if f.endswith(".train.txt") and len(f) > len(".train.txt"))
    data = b""
    for name in names:
        with open(os.path.join(folder, name + ".train.txt"), "rb") as f:
            data += f.read()
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


class Batcher:
    """train/corpus.h's Batcher: row b of a batch starts at randint(n − T)."""

    def __init__(self, tokens: torch.Tensor, seed: int):
        self.tokens, self.gen = tokens, Xoshiro(seed)

    def next(self, B: int, T: int):
        n = self.tokens.numel()
        rows = [self.tokens[s:s + T + 1] for s in (self.gen.randint(n - T) for _ in range(B))]
        w = torch.stack(rows).long()
        return w[:, :-1], w[:, 1:]


# ---------------------------------------------------------------------------------------------
# Parameters: names and shapes of the C++ model (nn/transformer.h, monet/*.h)
# ---------------------------------------------------------------------------------------------
def param_shapes(cfg: dict) -> dict:
    """name → (shape, init) with init 'normal' (N(0, 0.02²)), 'zeros', 'ones'."""
    m = cfg["model"]
    d, V, f = m["d"], m["vocab"], m["ffn"]
    kind = f["kind"]
    S = {"embed.weight": ((V, d), "normal")}
    for l in range(m["layers"]):
        p = f"layers.{l}."
        S[p + "norm1.weight"] = ((d,), "ones")
        for w in ("wq", "wk", "wv", "wo"):
            S[p + f"attn.{w}.weight"] = ((d, d), "normal")
        S[p + "norm2.weight"] = ((d,), "ones")
        q = p + "ffn."
        if kind == "dense":
            S[q + "w1.weight"] = ((f["hidden"], d), "normal")
            S[q + "w2.weight"] = ((d, f["hidden"]), "normal")
            if f["activation"] == "swiglu":
                S[q + "w3.weight"] = ((f["hidden"], d), "normal")
        elif kind in ("monet_hd", "monet_vd"):
            H, sq, dim = f["heads"], f["sqrt_n"], f["dim"]
            if l % f["group"] == 0:
                for r in ("w1", "w2"):
                    S[q + f"router.{r}.weight"] = ((H * sq, d), "normal")
                for r in ("norm1", "norm2"):
                    S[q + f"router.{r}.running_mean"] = ((H,), "zeros")
                    S[q + f"router.{r}.running_var"] = ((H,), "ones")
            w = sq * dim
            if kind == "monet_hd":
                S[q + "u.weight"], S[q + "u.bias"] = ((w, d), "normal"), ((w,), "zeros")
                S[q + "v.weight"], S[q + "b"] = ((d, w), "normal"), ((sq, d), "zeros")
            else:
                for u in ("u1", "u2"):
                    S[q + f"{u}.weight"], S[q + f"{u}.bias"] = ((w // 2, d), "normal"), \
                        ((w // 2,), "zeros")
                for v in ("v11", "v12", "v21", "v22"):
                    S[q + f"{v}.weight"] = ((d // 2, w // 2), "normal")
                S[q + "b1"], S[q + "b2"] = ((sq, d // 2), "zeros"), ((sq, d // 2), "zeros")
        elif kind == "smoe":
            E, k = f["experts"], smoe_k(f)
            hidden = f["dim"] if f["dim"] > 0 else max(1, 4 * d // k)
            noisy = f["gating"] == "noisy_topk"
            S[q + "gate.weight"] = ((E, d), "zeros" if noisy else "normal")
            if noisy:
                S[q + "noise.weight"] = ((E, d), "zeros")
            S[q + "w1"] = ((E, hidden, d), "normal")
            S[q + "w2"] = ((E, d, hidden), "normal")
        elif kind == "peer":
            H, dq, sq = f["heads"], f["d_query"], f["sqrt_n"]
            S[q + "query.weight"] = ((H * dq, d), "normal")
            if f["query_batchnorm"]:
                S[q + "query_norm.running_mean"] = ((H * dq,), "zeros")
                S[q + "query_norm.running_var"] = ((H * dq,), "ones")
            S[q + "keys1"] = ((sq, dq // 2), "normal")
            S[q + "keys2"] = ((sq, dq // 2), "normal")
            S[q + "u"] = ((sq * sq, d), "normal")
            S[q + "v"] = ((sq * sq, d), "normal")
    S["norm.weight"] = ((d,), "ones")
    S["lm_head.weight"] = ((V, d), "normal")
    return S


def smoe_k(f: dict) -> int:
    if f["topk"] > 0:
        return f["topk"]
    return {"softmax": f["experts"], "switch": 1, "noisy_topk": 2, "gshard": 2}[f["gating"]]


def init_state(cfg: dict, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, (shape, how) in param_shapes(cfg).items():
        if how == "normal":
            out[name] = torch.randn(*shape, generator=g) * 0.02
        else:
            out[name] = (torch.zeros if how == "zeros" else torch.ones)(*shape)
    return out


def load_state(path: str, cfg: dict) -> dict:
    """A safetensors file of F32 tensors (train/safetensors.h), checked against param_shapes."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise SystemExit(f"torch_bench: {path}: '{name}' is {info['dtype']}, expected F32")
        b, e = info["data_offsets"]
        out[name] = torch.frombuffer(bytearray(raw[base + b:base + e]),
                                     dtype=torch.float32).view(info["shape"]).clone()
    want = param_shapes(cfg)
    if set(out) != set(want):
        raise SystemExit(f"torch_bench: {path} does not hold this model's tensors: missing "
                         f"{sorted(set(want) - set(out))}, unexpected {sorted(set(out) - set(want))}")
    for name, (shape, _) in want.items():
        if tuple(out[name].shape) != tuple(shape):
            raise SystemExit(f"torch_bench: {path}: '{name}' has shape {list(out[name].shape)}, "
                             f"the model wants {list(shape)}")
    return out


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
