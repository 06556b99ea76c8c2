"""torch_bench.py's batches: train/corpus.h's byte stream and its Batcher's xoshiro256** draws,
bit for bit."""
from __future__ import annotations

import os

import torch


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
