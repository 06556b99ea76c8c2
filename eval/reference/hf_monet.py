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
import os
import sys

import torch

# The parts live beside this file (outside the docstring, which is --help's text): hf_fixture.py
# (make-fixture: config, weights, tokenizer), hf_forward.py (the model's forward, read back from
# a folder) and hf_safetensors.py (the format).
from hf_fixture import RELEASED, make_fixture
from hf_forward import forward, load_model

torch.set_num_threads(1)
MASK_MARGIN = 1e-4  # every |n - tau| must exceed this, so F32 rounding cannot change a kept set
GREEDY_GAP = 1e-3   # nor a greedy step's argmax (its two best logits must differ by this)
SELF_CHECK_RTOL = 1e-5


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
