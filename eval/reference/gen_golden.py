"""Regenerates the golden files of tests/test_reference_*.cpp from the PyTorch twin.

    /usr/bin/python3 eval/reference/gen_golden.py            # writes tests/data/ref_*.safetensors

For fixed small configurations it draws inputs and weights from a fixed seed, runs the twin
(monet_ref.py) forward and backward in float64, checks the twin against itself (the literal
"every expert built" form against the paper's efficient form, forward and every gradient), and
writes one safetensors file per case. See README.md beside this file for what each file holds.

Inputs and weights are rounded to float32 values before use and stored as F32 (exactly), so the
C++ side can run the same case in F32 and in F64 from one file; every output and gradient is
computed in float64 and stored as F64.

The cases live beside this file, split by idea: golden_monet.py (the router, the aux losses,
MONET-HD / -VD, the dense and MONET transformers), golden_sparse.py (SMoE and PEER) and
golden_util.py (torch's settings, the output folder, the float32 draws, the twin-against-
itself check and the writer).
"""
from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_monet import gen_aux, gen_layer, gen_router, gen_transformer  # noqa: E402
from golden_sparse import PEER_CASES, SMOE_CASES, gen_peer, gen_smoe  # noqa: E402
from golden_util import OUT  # noqa: E402


def main():
    os.makedirs(OUT, exist_ok=True)
    print(f"torch {torch.__version__}")
    total = gen_router() + gen_aux() + gen_layer(False) + gen_layer(True)
    total += gen_transformer(False) + gen_transformer(True)
    total += sum(gen_smoe(name) for name in SMOE_CASES)
    total += sum(gen_peer(name) for name in PEER_CASES)
    print(f"total {total} bytes in {OUT}")
    assert total < 450_000


if __name__ == "__main__":
    main()
