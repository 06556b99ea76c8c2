"""hf_monet.py's safetensors writer and reader: BF16, F32 and I64 tensors laid out as the
safetensors library lays them (by dtype, then name), without that library."""
from __future__ import annotations

import json
import struct

import torch

# ------------------------------------------------------------------------ safetensors by hand
# code -> (torch dtype, struct format); BF16 travels as its 16 raw bits (int16).
_CODES = {"BF16": (torch.bfloat16, "h"), "F32": (torch.float32, "f"), "I64": (torch.int64, "q")}
_RANK = {"BF16": 0, "F32": 1, "I64": 2}  # the safetensors library lays data out by dtype, name


def save_safetensors(path: str, tensors: dict) -> int:
    """Writes bf16/f32/i64 tensors in the safetensors format; returns the bytes of data."""
    code_of = {dt: code for code, (dt, _) in _CODES.items()}
    names = sorted(tensors, key=lambda n: (-_RANK[code_of[tensors[n].dtype]], n))
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in names:
        t = tensors[name].detach().contiguous()
        code = code_of[t.dtype]
        # raw little-endian bytes (numpy comes with Debian's python3-torch)
        blob = (t.view(torch.int16) if code == "BF16" else t).reshape(-1).numpy().tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for blob in blobs:
            f.write(blob)
    return offset


def load_safetensors(path: str) -> dict:
    """Reads BF16 (kept as bfloat16 until the caller upcasts), F32 and I64 tensors."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    out, base, end = {}, 8 + n, 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = info["data_offsets"]
        assert b == end, f"{path}: {name} does not follow the previous tensor"
        end = e
        dtype, fmt = _CODES[info["dtype"]]
        vals = struct.unpack("<%d%s" % ((e - b) // struct.calcsize(fmt), fmt),
                             raw[base + b:base + e])
        bf16 = info["dtype"] == "BF16"
        t = torch.tensor(vals, dtype=torch.int16 if bf16 else dtype)
        out[name] = (t.view(dtype) if bf16 else t).reshape(info["shape"])
    assert base + end == len(raw), f"{path}: trailing bytes"
    return out
