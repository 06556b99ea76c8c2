// Data parallel training (issue #19): R processes (ranks, core/comm.h) train one model.
//
// Every rank draws the whole batch of B windows from the same batcher (same seed, same state, so
// the draws agree without any message) and keeps rows [r·B/R, (r+1)·B/R) of it: the union of the
// shares is exactly the single-process batch. Each rank runs forward and backward on its share with
// the loss scaled by 1/R (and 1/n for n micro-batches), then the gradients are summed over the
// ranks (all_reduce_gradients) and every rank takes the same optimizer step on the same weights.
//
// Equivalence. R ranks with batch B compute, bit for bit, what one process computes with batch
// B/R and R micro-batches (run.accumulate = R): the same windows in the same order, the same
// shapes through every kernel, the same gradient sum g₀ + g₁ + … in rank order (the communicator's
// all-reduce adds in rank order) — given the same threads per process (OMP_NUM_THREADS) and no
// random routing draws (noisy_topk's noise and Switch's jitter are drawn on every rank from the
// same generator, so each rank's share sees the same draws the first share would). Against one
// process with batch B in one micro-batch the result agrees up to float rounding: the weight
// gradients sum the rows of a batch in a different grouping; batch statistics (BatchNorm in
// MONET's router and PEER's query, the SMoE balance losses) see a rank's share, as they see a
// micro-batch.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/comm.h"
#include "nn/module.h"

namespace monet {

// B/R, the windows of each batch of B (run.batch) one rank trains on. Errors unless R divides B.
int64_t batch_share(int64_t batch, const Communicator& comm);
// Rows [r·B/R, (r+1)·B/R) of a [B, ...] batch for this rank.
Tensor rank_share(const Tensor& batch, const Communicator& comm);

// Sums the gradients of `params` over the ranks, in the parameters' order, packed into buckets
// of about bucket_bytes (one all-reduce each) so a model of many small tensors costs few messages.
// A gradient undefined on some ranks counts as zeros there; one undefined on every rank stays
// undefined (the optimizer then skips its parameter everywhere, as in one process).
void all_reduce_gradients(const nn::NamedTensors& params, Communicator& comm,
                          int64_t bucket_bytes = int64_t{8} << 20);

// Replaces each floating-point buffer (BatchNorm's running mean and variance) by its mean over the
// ranks, in place, after every step: each rank updated it from its own share, and the ranks must
// hold one model. The running mean then equals the one-process batch's; the variance misses the
// spread between the shares' means. (PyTorch's DDP instead copies rank 0's buffers to the others.)
// One process with micro-batches updates the buffers once per micro-batch, in turn; so buffers,
// and evaluations that use them, agree with it up to that difference, not bit for bit.
void average_buffers(const nn::NamedTensors& buffers, Communicator& comm);

}  // namespace monet
