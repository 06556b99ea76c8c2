"""What every case of gen_golden.py shares: single-threaded deterministic torch, the output
folder tests/data, float32-valued draws, leaves, gradients, the self-check and the writer."""
from __future__ import annotations

import os

import torch

import monet_ref as ref

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
F64 = torch.float64
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "data")


def rnd(gen: torch.Generator, *shape, std: float = 1.0, mean: float = 0.0) -> torch.Tensor:
    """N(mean, std²), rounded to a float32 value, held in float64."""
    t = torch.randn(*shape, generator=gen, dtype=F64) * std + mean
    return t.float().double()


def leaf(t: torch.Tensor) -> torch.Tensor:
    return t.clone().requires_grad_(True)


def f32(t: torch.Tensor) -> torch.Tensor:
    """For storage: a tensor whose values are float32 values already (exact)."""
    assert torch.equal(t.detach().float().double(), t.detach()), "not a float32 value"
    return t.detach().float()


def grads(loss: torch.Tensor, named: dict) -> dict:
    gs = torch.autograd.grad(loss, list(named.values()), allow_unused=True, retain_graph=True)
    return {n: (g if g is not None else torch.zeros_like(t)).detach()
            for (n, t), g in zip(named.items(), gs)}


def assert_close(what: str, a: torch.Tensor, b: torch.Tensor, tol: float = 1e-12):
    err = (a - b).abs().max().item() if a.numel() else 0.0
    scale = max(1.0, b.abs().max().item() if b.numel() else 0.0)
    assert err <= tol * scale, f"twin self-check {what}: max |diff| {err:.3e}"


def written(name: str, tensors: dict, meta: dict):
    for k, v in tensors.items():
        assert torch.isfinite(v.double()).all(), f"{name}: {k} is not finite"
    path = os.path.join(OUT, name)
    size = ref.save_safetensors(path, tensors, meta)
    back, _ = ref.load_safetensors(path)  # round trip of the hand-written format
    for k, v in tensors.items():
        assert torch.equal(back[k], v.detach().contiguous().to(back[k].dtype)), k
    print(f"{name}: {len(tensors)} tensors, {size} bytes")
    return size
