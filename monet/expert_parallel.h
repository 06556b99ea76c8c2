// Expert parallelism (issue #19): the E experts of a sparse MoE layer split over the R ranks of a
// communicator, E/R consecutive experts per rank (expert e lives on rank e / (E/R)), each rank
// with its own tokens. The dropless dispatch of dispatch.h (MegaBlocks, Gale et al. 2022,
// arXiv 2211.15841) with the token rows carried to their experts' ranks and back by two
// all-to-alls, as in GShard (Lepikhin et al. 2020, arXiv 2006.16668, §3: with the experts
// sharded over devices, dispatch and combine become AllToAll collectives; GShard exchanges
// buffers of a fixed capacity, here each rank sends exactly the rows its routing asks for, so
// nothing is dropped):
//
//   sort the (token, slot) pairs by global expert (sort_by_expert) and gather their rows: the
//     rows for rank 0's experts come first, then rank 1's, … ;
//   exchange the per-expert counts (every rank learns how many rows each rank sends each expert);
//   all-to-all the rows to the experts' ranks; they arrive source-major (source rank, then
//     local expert), and are regrouped expert-major (local expert, then source rank);
//   grouped_linear with w1, σ, grouped_linear with w2 (as moe_dropless);
//   permute back to source-major, all-to-all the rows back, in the order they were sent;
//   combine: un-permute and add the k slots of each token in slot order, scaled by the gates.
//
// Rank r's tokens being global tokens [r·n/R, (r+1)·n/R), expert e's rows arrive ordered by
// source rank and, within a rank, by pair — the order moe_dropless on all the tokens gives them —
// so each expert multiplies the same matrix as the one-process dispatch does.
//
// The backward runs the two all-to-alls again, in reverse (all_to_all_rows, core/comm_ops.h):
// every rank must call backward through the layer, as every rank must call the forward.
#pragma once
#include <cstdint>

#include "core/comm.h"
#include "monet/dispatch.h"

namespace monet::moe {

// The experts rank r holds: [first, first + count), first = r · E/R, count = E/R. An error unless
// R divides E.
struct ExpertShard {
  int64_t first = 0, count = 0;
};
ExpertShard expert_shard(int64_t experts, const Communicator& comm);
// The shard's rows [first, first + count) of a tensor over all experts (dim 0), copied so that the
// whole can be freed; not recorded for autograd.
Tensor shard_rows(const Tensor& whole, const ExpertShard& shard);

// x [n, d] F32 (n ≥ 0: a rank may have no tokens), idx [n, k] int32 global expert ids in [0, E)
// or −1 (contributes 0), gates [n, k]; local holds this rank's experts, w1 [E/R, m, d] and
// w2 [E/R, d, m]; experts = E. → y [n, d], this rank's tokens. Collective: every rank calls it,
// with the same E, d, m and k. stats: this rank's routing (counts over all E experts); the bytes
// the all-to-alls carry are the communicator's to count (Communicator::traffic).
// On one process it equals moe_dropless bit for bit, forward and backward.
Tensor moe_dropless_ep(const Tensor& x, const Tensor& idx, const Tensor& gates,
                       const ExpertWeights& local, int64_t experts, nn::Activation act,
                       Communicator& comm, DispatchStats* stats = nullptr);

}  // namespace monet::moe
