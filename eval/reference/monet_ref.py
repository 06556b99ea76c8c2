"""A reference twin of monet-cpp in PyTorch, written from the papers, not from the C++.

Sources (see ../../docs/math/ for the project's math pages):
  * MONET: Park et al. 2024, "Monet: Mixture of Monosemantic Experts for Transformers",
    arXiv 2412.04139 — §3 (adaptive routing with BatchNorm), Eq. 6–15 (horizontal and vertical
    expert decomposition), App. A.1 (the memory-efficient einsum forms), Eq. 16–18 (aux losses).
  * LLaMA (Touvron et al. 2023): pre-norm RMSNorm blocks, rotary embeddings (Su et al. 2021) in
    the "rotate half" layout, causal multi-head attention, untied LM head, no biases.
  * Squared ReLU (So et al. 2021, "Primer"): relu²(x) = max(x, 0)².
  * Sparse MoE (docs/math/smoe.md §2): Shazeer et al. 2017 (arXiv 1701.06538) softmax and noisy top-k
    gating with the importance and load losses (Eq. 1–11, App. A); Switch (Fedus et al. 2021,
    arXiv 2101.03961 §2) top-1, capacity and balance loss; GShard (Lepikhin et al. 2020, arXiv
    2006.16668 Alg. 1) top-2; ST-MoE's router z-loss (Zoph et al. 2022, arXiv 2202.08906 Eq. 5).
  * PEER (He 2024, arXiv 2407.04153 §2, docs/math/peer.md §3): product-key retrieval, h heads, query
    BatchNorm, singleton experts σ(u_iᵀx)v_i.

Every layer exists here in two forms where the paper gives two: the literal definition, which
builds every composed expert E_ij(x) and sums Σ_h Σ_ij ĝ1_hi ĝ2_hj E_ij(x), and the paper's
memory-efficient reformulation (App. A.1). gen_golden.py checks that both agree before it dumps
anything, so the golden files do not rest on one formulation alone. SMoE and PEER have the same
pair: per-token loops with Python sorts (SMoE) or scoring all N keys (PEER) against the
vectorised / product-key forms.

Weight layouts follow PyTorch's nn.Linear ([out, in], y = x Wᵀ + b) and the authors' checkpoint
names: router w1, w2 [H·√N, d] with row h·√N + i; HD u [√N·m, d] (row i·m + r), v [d, √N·m],
b [√N, d]; VD u1, u2 [√N·m/2, d], v11, v12, v21, v22 [d/2, √N·m/2], b1, b2 [√N, d/2].

The twin is split by idea into modules beside this file; this one gathers their names, so
`import monet_ref as ref` gives gen_golden.py and torch_bench.py every function as before:
  * twin_ops.py          relu2, nn.Linear, the routing threshold σ
  * twin_monet.py        the MONET router (§3), MONET-HD / -VD (Eq. 6–15, App. A.1), aux losses
  * twin_transformer.py  the dense LLaMA-style transformer, MonetFFN, transformer_forward
  * twin_smoe.py         the sparse MoE layer (Shazeer, Switch, GShard, ST-MoE)
  * twin_peer.py         PEER (product keys, singleton experts)
  * twin_safetensors.py  the safetensors format, written and read by hand

Run with Debian's interpreter (/usr/bin/python3, python3-torch 1.13). Pure torch: no numpy, no
scipy, no safetensors package needed.
"""
from __future__ import annotations

from twin_ops import linear, relu2, routing_threshold  # noqa: F401
from twin_monet import (adaptive_route, ambiguity_loss, hd_efficient, hd_literal,  # noqa: F401
                        router_logits, uniformity_loss, vd_efficient, vd_literal, vd_staged)
from twin_transformer import (MonetFFN, apply_rope, causal_attention, dense_ffn,  # noqa: F401
                              dense_mlp, rms_norm, rope_cos_sin, rotate_half,
                              transformer_forward)
from twin_smoe import (SMOE_AUX, activation, capacity_keep, capacity_keep_literal,  # noqa: F401
                       cv_squared, expert_capacity, smoe_aux_loss, smoe_combine,
                       smoe_combine_literal, smoe_forward, smoe_forward_sparse, smoe_route,
                       smoe_route_literal, std_normal_cdf)
from twin_peer import (peer_experts, peer_experts_literal, peer_forward, peer_gates,  # noqa: F401
                       peer_query, peer_retrieve, peer_retrieve_brute, product_keys)
from twin_safetensors import load_safetensors, save_safetensors  # noqa: F401
