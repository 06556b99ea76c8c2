"""hf_monet.py make-fixture: a small random MonetForCausalLM folder as save_pretrained writes it
(config.json, BF16 safetensors in one file or two shards, a SentencePiece tokenizer)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import torch

from hf_safetensors import save_safetensors

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS = os.path.join(ROOT, "third_party", "corpora", "toy4")


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
