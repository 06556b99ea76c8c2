"""The twin's safetensors writer and reader (monet_ref.py): F64, F32 and I32 tensors, without
the safetensors package."""
from __future__ import annotations

import json
import struct

import torch


# ---------------------------------------------------------------------------------------------
# safetensors, written by hand (https://github.com/huggingface/safetensors):
#   [u64 LE header length N][N bytes JSON, space-padded to a multiple of 8][raw LE row-major data]
# ---------------------------------------------------------------------------------------------
_DTYPES = {torch.float64: ("F64", "<d"), torch.float32: ("F32", "<f"), torch.int32: ("I32", "<i")}


def save_safetensors(path: str, tensors: dict, metadata: dict | None = None) -> int:
    header: dict = {}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        code, fmt = _DTYPES[t.dtype]
        values = t.reshape(-1).tolist()
        blob = struct.pack("<%d%s" % (len(values), fmt[1]), *values)
        header[name] = {"dtype": code, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    data = struct.pack("<Q", len(text)) + text + b"".join(blobs)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def load_safetensors(path: str):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, info in header.items():
        code = info["dtype"]
        dtype, fmt = {"F64": (torch.float64, "d"), "F32": (torch.float32, "f"),
                      "I32": (torch.int32, "i")}[code]
        b, e = info["data_offsets"]
        count = (e - b) // struct.calcsize(fmt)
        vals = struct.unpack("<%d%s" % (count, fmt), raw[base + b:base + e])
        out[name] = torch.tensor(vals, dtype=dtype).view(info["shape"])
    return out, meta
