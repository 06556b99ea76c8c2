"""A tiny MONET checkpoint in the authors' Hugging Face layout and its reference forward (#16).

    /usr/bin/python3 eval/reference/hf_monet.py make-fixture DIR --decompose vertical \
        --shards 2 --kv-heads 2 --seed 1
    /usr/bin/python3 eval/reference/hf_monet.py reference DIR --text "..." --greedy 16 --out F.json

`make-fixture` writes what `MonetForCausalLM.save_pretrained` would for a small random model:
config.json, BF16 safetensors (one file, or two shards and model.safetensors.index.json) and a
SentencePiece tokenizer trained by Debian's `spm_train` on third_party/corpora/toy4.
`reference` reads such a folder back, runs it in float64 (or --dtype float32) and writes the
logits of every position and a greedy continuation as JSON. The model follows the facts of the
authors' modeling_monet.py (MonetRouter, MonetMoVDE, MonetMoHDE, MonetDecoderLayer, MonetModel,
with LLaMA's attention, RMSNorm and RoPE). No transformers, safetensors or numpy is needed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import torch

torch.set_num_threads(1)
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS = os.path.join(ROOT, "third_party", "corpora", "toy4")
MASK_MARGIN = 1e-4  # every |n - tau| must exceed this, so F32 rounding cannot change a kept set
GREEDY_GAP = 1e-3   # nor a greedy step's argmax (its two best logits must differ by this)
SELF_CHECK_RTOL = 1e-5

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


def write_json(path: str, obj):
    with open(path, "w") as f:  # as save_pretrained: indent 2, sorted keys
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


# -------------------------------------------------------------------------------- the fixture
def train_tokenizer(dest: str):
    """LLaMA-style BPE (byte fallback, digits split, identity normalisation) of 512 pieces. It
    runs in a temp dir on links named like the corpus files, so the paths the model stores in
    its trainer_spec do not depend on the checkout: a rerun gives a byte-identical model."""
    with tempfile.TemporaryDirectory() as tmp:
        files = sorted(f for f in os.listdir(CORPUS) if f.endswith(".train.txt"))
        for f in files:
            os.symlink(os.path.join(CORPUS, f), os.path.join(tmp, f))
        flags = dict(input=",".join(files), model_prefix="tokenizer", model_type="bpe",
                     vocab_size=512, byte_fallback="true", split_digits="true",
                     normalization_rule_name="identity", add_dummy_prefix="true",
                     remove_extra_whitespaces="false", allow_whitespace_only_pieces="true",
                     character_coverage=0.99995, max_sentence_length=4192, unk_id=0,
                     bos_id=1, eos_id=2, pad_id=-1, num_threads=1, input_sentence_size=0,
                     shuffle_input_sentence="false", random_seed=1, minloglevel=1)
        subprocess.run(["spm_train"] + [f"--{k}={v}" for k, v in flags.items()], cwd=tmp,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.copyfile(os.path.join(tmp, "tokenizer.model"), dest)


def hf_config(vocab: int, decompose: str, kv_heads: int, tie: bool) -> dict:
    return {
        "architectures": ["MonetForCausalLM"], "model_type": "monet",
        "auto_map": {"AutoConfig": "modeling_monet.MonetConfig",
                     "AutoModelForCausalLM": "modeling_monet.MonetForCausalLM"},
        "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
        "num_key_value_heads": kv_heads, "intermediate_size": None, "vocab_size": vocab,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 128,
        "hidden_act": "relu2", "tie_word_embeddings": tie, "torch_dtype": "bfloat16",
        "bos_token_id": 1, "eos_token_id": 2, "moe_dim": 8, "moe_experts": 16, "moe_heads": 2,
        "moe_topk": 4, "moe_groups": 2, "moe_decompose": decompose, "initializer_range": 0.02,
        "attention_bias": False, "attention_dropout": 0.0, "mlp_bias": None,
        "pretraining_tp": 1, "rope_scaling": None, "use_cache": True,
        "output_router_probs": False,
    }


# The released VD sizes: the 1.4B config.json as published; 850M and 4.1B from the paper's
# Table 6 (850M checks against the released 1.71 GB bf16 file, 855M parameters).
RELEASED = {
    "850M": dict(hidden_size=1536, num_hidden_layers=24, num_attention_heads=12, moe_heads=6,
                 moe_dim=12),
    "1.4B": dict(hidden_size=2048, num_hidden_layers=24, num_attention_heads=16, moe_heads=8,
                 moe_dim=16),
}


def draw_weights(c: dict, seed: int) -> dict:
    """MonetForCausalLM's state dict, N(0, 1) scaled so the model is far from uniform:
    projections 1/sqrt(fan-in), V matrices 1/sqrt(columns of one expert), norms 1 +- 0.1,
    biases 0.1, BatchNorm running means 0.1, variances U(0.5, 1.5); embeddings 0.25, so that
    with tied weights a token's own embedding does not dominate its logits (greedy decoding
    would repeat the last prompt token)."""
    g = torch.Generator().manual_seed(seed)
    d, H, KV, E, m, nh = (c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"],
                          c["moe_experts"], c["moe_dim"], c["moe_heads"])
    hd = d // H

    def rnd(*shape, std=1.0, mean=0.0):
        return torch.randn(*shape, generator=g) * std + mean

    w = {"model.embed_tokens.weight": rnd(c["vocab_size"], d, std=0.25)}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = rnd(d, std=0.1, mean=1.0)
        w[p + "post_attention_layernorm.weight"] = rnd(d, std=0.1, mean=1.0)
        for name, rows, cols in (("q", H * hd, d), ("k", KV * hd, d), ("v", KV * hd, d),
                                 ("o", d, H * hd)):
            w[p + f"self_attn.{name}_proj.weight"] = rnd(rows, cols, std=cols ** -0.5)
        if i % c["moe_groups"] == 0:  # MonetRouter: w1, w2 and two BatchNorm1d(moe_heads)
            for k in "12":
                w[p + f"router.w{k}.weight"] = rnd(nh * E, d, std=d ** -0.5)
                w[p + f"router.norm{k}.running_mean"] = rnd(nh, std=0.1)
                w[p + f"router.norm{k}.running_var"] = torch.rand(nh, generator=g) + 0.5
                w[p + f"router.norm{k}.num_batches_tracked"] = torch.tensor(1000)
        if c["moe_decompose"] == "vertical":  # MonetMoVDE
            for k in "12":
                w[p + f"moe.u{k}.weight"] = rnd(E * m // 2, d, std=d ** -0.5)
                w[p + f"moe.u{k}.bias"] = rnd(E * m // 2, std=0.1)
            for k in ("11", "12", "21", "22"):
                w[p + f"moe.v{k}.weight"] = rnd(d // 2, E * m // 2, std=(m // 2) ** -0.5)
            w[p + "moe.b1"], w[p + "moe.b2"] = rnd(E, d // 2, std=0.1), rnd(E, d // 2, std=0.1)
        else:  # MonetMoHDE
            w[p + "moe.u.weight"] = rnd(E * m, d, std=d ** -0.5)
            w[p + "moe.u.bias"] = rnd(E * m, std=0.1)
            w[p + "moe.v.weight"] = rnd(d, E * m, std=m ** -0.5)
            w[p + "moe.b"] = rnd(E, d, std=0.1)
    w["model.norm.weight"] = rnd(d, std=0.1, mean=1.0)
    if not c["tie_word_embeddings"]:
        w["lm_head.weight"] = rnd(c["vocab_size"], d, std=d ** -0.5)
    # The checkpoint dtype: bf16 (round to nearest even); router buffers stay f32 / i64.
    return {n: t if "norm" in n and "router" in n else t.to(torch.bfloat16) for n, t in w.items()}


def make_fixture(a):
    import sentencepiece as spm
    os.makedirs(a.outdir, exist_ok=True)
    tok = os.path.join(a.outdir, "tokenizer.model")
    train_tokenizer(tok)
    vocab = spm.SentencePieceProcessor(model_file=tok).get_piece_size()
    c = hf_config(vocab, a.decompose, a.kv_heads, a.tie)
    if a.size:  # a released shape (random weights, for predicting memory and time), vocab 32000
        c.update(RELEASED[a.size], vocab_size=32000, max_position_embeddings=2048, moe_experts=512,
                 moe_topk=8, moe_groups=4)
        c["num_key_value_heads"] = c["num_attention_heads"]
    w = draw_weights(c, a.seed)
    if a.shards == 1:
        save_safetensors(os.path.join(a.outdir, "model.safetensors"), w)
    else:  # the embedding and the first half of the layers, then the rest
        half = c["num_hidden_layers"] // 2

        def first(n):
            return n.startswith("model.embed") or (
                n.startswith("model.layers.") and int(n.split(".")[2]) < half)
        total, wmap = 0, {}
        for k, part in enumerate(({n: t for n, t in w.items() if first(n)},
                                  {n: t for n, t in w.items() if not first(n)})):
            file = f"model-0000{k + 1}-of-00002.safetensors"
            total += save_safetensors(os.path.join(a.outdir, file), part)
            wmap.update({n: file for n in part})
        write_json(os.path.join(a.outdir, "model.safetensors.index.json"),
                   {"metadata": {"total_size": total}, "weight_map": wmap})
    write_json(os.path.join(a.outdir, "config.json"), c)
    write_json(os.path.join(a.outdir, "generation_config.json"),
               {"bos_token_id": 1, "eos_token_id": 2})
    flags = dict(lstrip=False, normalized=False, rstrip=False, single_word=False)
    special = {k: dict(content=v, **flags) for k, v in
               (("bos_token", "<s>"), ("eos_token", "</s>"), ("unk_token", "<unk>"))}
    write_json(os.path.join(a.outdir, "special_tokens_map.json"), special)
    for f in sorted(os.listdir(a.outdir)):
        print(f"  {f}: {os.path.getsize(os.path.join(a.outdir, f))} bytes")


# -------------------------------------------------------------------------------- the forward
def load_model(folder: str, dtype) -> tuple:
    with open(os.path.join(folder, "config.json")) as f:
        c = json.load(f)
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            wmap = json.load(f)["weight_map"]
        W = {}
        for file in sorted(set(wmap.values())):
            part = load_safetensors(os.path.join(folder, file))
            assert all(wmap.get(n) == file for n in part), f"{file}: a tensor mapped elsewhere"
            W.update(part)
        assert set(W) == set(wmap), "a tensor of the index is missing from its shard"
    else:
        W = load_safetensors(os.path.join(folder, "model.safetensors"))
    W = {n: t for n, t in W.items() if not n.endswith("num_batches_tracked")}  # unused in eval
    if "lm_head.weight" not in W:
        assert c.get("tie_word_embeddings"), "no lm_head.weight and the embeddings are not tied"
        W["lm_head.weight"] = W["model.embed_tokens.weight"]
    return c, {n: t.to(dtype) for n, t in W.items()}


def relu2(x):  # ACT2FN["relu2"]
    return torch.relu(x) ** 2


def rms_norm(x, w, eps):  # LlamaRMSNorm
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, theta):  # LLaMA's rotate-half RoPE; x [T, heads, hd], positions 0..T-1
    T, hd = x.shape[0], x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=x.dtype) / hd)
    ang = torch.arange(T, dtype=x.dtype)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], -1)[:, None, :]
    x1, x2 = x[..., :hd // 2], x[..., hd // 2:]
    return x * ang.cos() + torch.cat([-x2, x1], -1) * ang.sin()


def attention(x, W, p, c):  # LlamaAttention: grouped-query heads, causal, no biases
    T, H = x.shape[0], c["num_attention_heads"]
    KV, hd = c.get("num_key_value_heads") or H, c["hidden_size"] // H
    q = rope((x @ W[p + "q_proj.weight"].T).view(T, H, hd), c["rope_theta"])
    k = rope((x @ W[p + "k_proj.weight"].T).view(T, KV, hd), c["rope_theta"])
    v = (x @ W[p + "v_proj.weight"].T).view(T, KV, hd)
    k, v = (t.repeat_interleave(H // KV, dim=1) for t in (k, v))  # head h reads h // (H/KV)
    s = torch.einsum("thd,shd->hts", q, k) / math.sqrt(hd)
    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    o = torch.einsum("hts,shd->thd", s.softmax(-1), v).reshape(T, H * hd)
    return o @ W[p + "o_proj.weight"].T


def router(x, W, p, c, margins):  # MonetRouter in eval mode (running statistics, eps 1e-5)
    nh, E = c["moe_heads"], c["moe_experts"]
    sigma = torch.distributions.Normal(0.0, 1.0).icdf(
        torch.tensor(1 - c["moe_topk"] / E, dtype=torch.float64)).item()
    gs = []
    for k in "12":
        z = (x @ W[p + f"w{k}.weight"].T).view(-1, nh, E)
        mean, var = W[p + f"norm{k}.running_mean"], W[p + f"norm{k}.running_var"]
        n = (z - mean[None, :, None]) / torch.sqrt(var[None, :, None] + 1e-5)
        tau = n.amax(-1, keepdim=True).clamp(max=sigma)
        gap = torch.where(n == tau, torch.full_like(n, float("inf")), (n - tau).abs())
        margins.append(gap.min().item())
        gs.append(torch.where(n >= tau, z, torch.full_like(z, -1e10)).softmax(-1))
    return gs  # g1, g2: [T, heads, experts]


def moe_efficient(x, g1, g2, W, p, c):  # the einsum forms of MonetMoVDE / MonetMoHDE
    E = c["moe_experts"]
    if c["moe_decompose"] == "vertical":
        a1 = relu2(x @ W[p + "u1.weight"].T + W[p + "u1.bias"]).unflatten(-1, (E, -1))
        a2 = relu2(x @ W[p + "u2.weight"].T + W[p + "u2.bias"]).unflatten(-1, (E, -1))
        x11 = torch.einsum("tim,thi->tim", a1, g1).flatten(-2) @ W[p + "v11.weight"].T
        x12 = torch.einsum("tjm,thj,thi->tim", a2, g2, g1).flatten(-2) @ W[p + "v12.weight"].T
        x13 = torch.einsum("thi,id->td", g1, W[p + "b1"])
        x21 = torch.einsum("tim,thi,thj->tjm", a1, g1, g2).flatten(-2) @ W[p + "v21.weight"].T
        x22 = torch.einsum("tjm,thj->tjm", a2, g2).flatten(-2) @ W[p + "v22.weight"].T
        x23 = torch.einsum("thj,jd->td", g2, W[p + "b2"])
        return torch.cat([x11 + x12 + x13, x21 + x22 + x23], -1)
    a = relu2(x @ W[p + "u.weight"].T + W[p + "u.bias"]).unflatten(-1, (E, -1))
    y = torch.einsum("tim,thi,thj->tjm", a, g1, g2).flatten(-2) @ W[p + "v.weight"].T
    return y + torch.einsum("thj,jd->td", g2, W[p + "b"])


def moe_literal(x, g1, g2, W, p, c):
    """Every composed expert E_ij(x) built on its own; y = sum_h sum_ij g1_hi g2_hj E_ij(x).
    VD: E_ij = [V11_i a1_i + V12_i a2_j + b1_i ; V21_j a1_i + V22_j a2_j + b2_j];
    HD: E_ij = V_j relu2(U_i x + bu_i) + b_j. V.._i: the columns of v.. of sub-expert i."""
    vd = c["moe_decompose"] == "vertical"
    r = c["moe_dim"] // 2 if vd else c["moe_dim"]
    y = torch.zeros_like(x)

    def a(name, i):  # relu2 of sub-expert i's rows of u (u1, u2)
        return relu2(x @ W[p + name + ".weight"][i * r:(i + 1) * r].T
                     + W[p + name + ".bias"][i * r:(i + 1) * r])

    def V(name, i):  # sub-expert i's columns of v.. , transposed for x @ V
        return W[p + name + ".weight"][:, i * r:(i + 1) * r].T

    for i in range(c["moe_experts"]):
        for j in range(c["moe_experts"]):
            if vd:
                a1, a2 = a("u1", i), a("u2", j)
                e = torch.cat([a1 @ V("v11", i) + a2 @ V("v12", i) + W[p + "b1"][i],
                               a1 @ V("v21", j) + a2 @ V("v22", j) + W[p + "b2"][j]], -1)
            else:
                e = a("u", i) @ V("v", j) + W[p + "b"][j]
            y = y + (g1[:, :, i] * g2[:, :, j]).sum(-1, keepdim=True) * e
    return y


def forward(ids, c, W, margins, self_check=None):
    """MonetForCausalLM's logits [T, vocab] for one sequence. A layer without a router reuses
    the (g1, g2) of the last layer that had one (MonetModel's previous_router_probs)."""
    eps = c["rms_norm_eps"]
    h = W["model.embed_tokens.weight"][torch.tensor(ids)]
    for i in range(c["num_hidden_layers"]):  # MonetDecoderLayer
        p = f"model.layers.{i}."
        h = h + attention(rms_norm(h, W[p + "input_layernorm.weight"], eps), W, p + "self_attn.", c)
        x = rms_norm(h, W[p + "post_attention_layernorm.weight"], eps)
        if p + "router.w1.weight" in W:
            g1, g2 = router(x, W, p + "router.", c, margins)
        y = moe_efficient(x, g1, g2, W, p + "moe.", c)
        if self_check is not None:
            lit = moe_literal(x, g1, g2, W, p + "moe.", c)
            self_check.append(((lit - y).abs().max() / y.abs().max()).item())
        h = h + y
    return rms_norm(h, W["model.norm.weight"], eps) @ W["lm_head.weight"].T


def reference(a):
    c, W = load_model(a.modeldir, getattr(torch, a.dtype))
    if a.ids:
        ids = [int(s) for s in a.ids.split(",")]
    else:
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=os.path.join(a.modeldir, "tokenizer.model"))
        assert sp.get_piece_size() == c["vocab_size"], "tokenizer and config: different vocab"
        ids = [c.get("bos_token_id", 1)] + sp.encode(a.text)
    margins, rel = [], []
    logits = forward(ids, c, W, margins, self_check=rel)
    assert max(rel) <= SELF_CHECK_RTOL, f"literal vs einsum MoE: max relative diff {max(rel):.3e}"
    print(f"literal vs einsum MoE: max relative diff {max(rel):.3e} (<= {SELF_CHECK_RTOL})")
    seq, top2 = list(ids), []
    for _ in range(a.greedy):  # the full forward again at every step (no cache), no stop at EOS
        best = forward(seq, c, W, margins)[-1].topk(2)
        top2.append((best.values[0] - best.values[1]).item())
        seq.append(int(best.indices[0]))
    margin, gap = min(margins), min(top2, default=None)  # None (JSON null) without --greedy
    print(f"{len(ids)} ids, {a.greedy} greedy tokens; min router margin {margin:.3e} over "
          f"{1 + a.greedy} forwards, min greedy top-2 gap {gap if gap is None else f'{gap:.3e}'}")
    if margin < MASK_MARGIN:
        sys.exit(f"a router logit lies {margin:.2e} < {MASK_MARGIN} from its threshold tau: "
                 "float32 rounding could change a kept set; pick another seed or text")
    if gap is not None and gap < GREEDY_GAP:
        sys.exit(f"a greedy step's two best logits differ by {gap:.2e} < {GREEDY_GAP}: "
                 "pick another seed or text")
    out = {"ids": ids, "greedy_prompt_ids": ids, "greedy": seq[len(ids):], "dtype": a.dtype,
           "checks": {"min_router_margin": margin, "min_greedy_top2_gap": gap,
                      "literal_vs_einsum_max_rel_diff": max(rel)}}
    if not a.ids:
        out["text"] = a.text
    rows = ",\n".join(json.dumps([float("%.7g" % v) for v in row], separators=(",", ":"))
                      for row in logits.tolist())
    with open(a.out, "w") as f:  # one key a line, then one position's logits a line
        f.write("{\n" + "".join(f"{json.dumps(k)}: {json.dumps(v)},\n" for k, v in out.items())
                + '"logits": [\n' + rows + "\n]}\n")
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes); greedy {out['greedy']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-fixture", help="write a tiny HF-layout MONET folder")
    m.add_argument("outdir")
    m.add_argument("--decompose", choices=["vertical", "horizontal"], required=True)
    m.add_argument("--shards", type=int, choices=[1, 2], default=1)
    m.add_argument("--tie", action="store_true", help="tie_word_embeddings (no lm_head.weight)")
    m.add_argument("--kv-heads", type=int, default=4)
    m.add_argument("--seed", type=int, required=True)
    m.add_argument("--size", choices=sorted(RELEASED), help="a released shape instead of the tiny one")
    r = sub.add_parser("reference", help="logits and greedy tokens of an HF MONET folder")
    r.add_argument("modeldir")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="tokenized with the folder's tokenizer.model, BOS prepended")
    src.add_argument("--ids", help="comma-separated token ids, used as given (no BOS added)")
    r.add_argument("--greedy", type=int, default=0, help="greedy tokens to generate")
    r.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    r.add_argument("--out", required=True)
    a = ap.parse_args()
    make_fixture(a) if a.cmd == "make-fixture" else reference(a)


if __name__ == "__main__":
    main()
