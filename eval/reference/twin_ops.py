"""The twin's small pieces (monet_ref.py): squared ReLU, nn.Linear, MONET's routing threshold."""
from __future__ import annotations

import torch
import torch.nn.functional as F


# ---------------------------------------------------------------------------------------------
# Small pieces
# ---------------------------------------------------------------------------------------------
def relu2(x: torch.Tensor) -> torch.Tensor:
    """Squared ReLU, max(x, 0)² (Primer; MONET's expert activation)."""
    r = torch.relu(x)
    return r * r


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """nn.Linear with W [out, in]."""
    return F.linear(x, w, b)


def routing_threshold(k: int, sqrt_n: int) -> float:
    """σ = Φ⁻¹(1 − k/√N): on standard-normal logits, P(n ≥ σ) = k/√N, so ≈ k of √N pass."""
    assert 1 <= k < sqrt_n
    std_normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64),
                                            torch.tensor(1.0, dtype=torch.float64))
    return float(std_normal.icdf(torch.tensor(1.0 - k / sqrt_n, dtype=torch.float64)))
