// Collectives on tensors, as ops of the graph: what expert-parallel training exchanges (issue
// #19). The data moves through Communicator::all_to_all_v (core/comm.h); CUDA tensors are staged
// through host memory.
//
// all_to_all_rows is differentiable, and its backward is a collective too: the gradient of the
// received rows goes back to the ranks they came from, with the counts swapped (the transpose of
// a permutation is its inverse). Every rank therefore has to run backward through the same graph,
// with the same requires_grad flags, so that the backward all-to-alls meet in the same order —
// which they do when all ranks run one model on their own batch. The communicator must outlive
// the graph (the backward holds a pointer to it).
#pragma once
#include <cstdint>
#include <vector>

#include "core/comm.h"
#include "core/tensor.h"

namespace monet {

// x [Σ send_rows, d > 0] F32, its rows in consecutive blocks by destination rank: send_rows[q]
// rows go to rank q (send_rows has comm.size() entries). Returns the rows every rank sent to
// this one, [Σ recv, d], concatenated in source-rank order (each block in the order its sender
// had it), on x's device. recv_rows, when given, is set to the rows received from each rank.
// Backward: dx = all_to_all_rows(dy, recv_rows), i.e. each gradient row goes back to its sender.
// Single process: a copy.
Tensor all_to_all_rows(const Tensor& x, const std::vector<int64_t>& send_rows, Communicator& comm,
                       std::vector<int64_t>* recv_rows = nullptr);

// Every rank's `mine` (the same number of non-negative counts on every rank), as one matrix
// [size() × mine.size()], row q from rank q, on every rank. Summed as doubles over a zero-filled
// matrix (all_reduce_sum), so exact for counts below 2⁵³.
std::vector<int64_t> all_gather_counts(const std::vector<int64_t>& mine, Communicator& comm);

}  // namespace monet
