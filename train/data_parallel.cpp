#include "train/data_parallel.h"

#include <fmt/format.h>

#include <cstring>
#include <numeric>

#include "core/autograd.h"
#include "core/ops.h"

namespace monet {

int64_t batch_share(int64_t batch, const Communicator& comm) {
  const int64_t R = comm.size();
  MONET_CHECK(batch % R == 0,
              "config key 'run.batch' = {}: data parallel training splits each batch evenly over "
              "the {} ranks; use a multiple of {}",
              batch, R, R);
  return batch / R;
}

Tensor rank_share(const Tensor& batch, const Communicator& comm) {
  if (comm.size() == 1) return batch;
  const int64_t share = batch_share(batch.size(0), comm);
  return slice(batch, 0, comm.rank() * share, (comm.rank() + 1) * share).contiguous();
}

namespace {

// One bucket: the gradients packed end to end in parameter order (zeros for an undefined one),
// summed over the ranks, unpacked into new gradient tensors (never written in place: two leaves
// may share one gradient tensor).
template <class T>
void reduce_bucket(const std::vector<Tensor>& params, Communicator& comm) {
  const int64_t n = std::accumulate(params.begin(), params.end(), int64_t{0},
                                    [](int64_t s, const Tensor& p) { return s + p.numel(); });
  std::vector<T> buf(static_cast<size_t>(n), T(0));
  int64_t at = 0;
  for (const Tensor& p : params) {
    const Tensor g = p.grad();
    if (g.defined()) {
      MONET_CHECK(g.dtype() == p.dtype() && g.shape() == p.shape(),
                  "all_reduce_gradients: gradient {} {} of a {} {} parameter",
                  dtype_name(g.dtype()), shape_str(g.shape()), dtype_name(p.dtype()),
                  shape_str(p.shape()));
      const Tensor host = g.contiguous().to(Device::cpu());
      std::memcpy(buf.data() + at, host.data<T>(), sizeof(T) * static_cast<size_t>(p.numel()));
    }
    at += p.numel();
  }
  comm.all_reduce_sum(buf.data(), n);
  at = 0;
  for (const Tensor& p : params) {
    Tensor g = empty(p.shape(), p.dtype(), Device::cpu());
    std::memcpy(g.data<T>(), buf.data() + at, sizeof(T) * static_cast<size_t>(p.numel()));
    p.set_grad(p.device().is_cpu() ? g : g.to(p.device()));
    at += p.numel();
  }
}

}  // namespace

void all_reduce_gradients(const nn::NamedTensors& params, Communicator& comm,
                          int64_t bucket_bytes) {
  if (comm.size() == 1) return;
  NoGradGuard ng;
  // Which gradients exist anywhere: a routed layer may leave a parameter untouched on one rank.
  std::vector<double> defined(params.size(), 0.0);
  for (size_t i = 0; i < params.size(); ++i) defined[i] = params[i].second.grad().defined();
  comm.all_reduce_sum(defined.data(), static_cast<int64_t>(defined.size()));

  std::vector<Tensor> bucket;
  int64_t bytes = 0;
  auto flush = [&] {
    if (bucket.empty()) return;
    if (bucket.front().dtype() == DType::F64)
      reduce_bucket<double>(bucket, comm);
    else
      reduce_bucket<float>(bucket, comm);
    bucket.clear();
    bytes = 0;
  };
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& [name, p] = params[i];
    if (defined[i] == 0) continue;
    MONET_CHECK(p.dtype() == DType::F32 || p.dtype() == DType::F64,
                "all_reduce_gradients: parameter '{}' is {}; F32 or F64 only", name,
                dtype_name(p.dtype()));
    if (!bucket.empty() && (bucket.front().dtype() != p.dtype() || bytes >= bucket_bytes)) flush();
    bucket.push_back(p);
    bytes += p.numel() * static_cast<int64_t>(dtype_size(p.dtype()));
  }
  flush();
}

void average_buffers(const nn::NamedTensors& buffers, Communicator& comm) {
  if (comm.size() == 1) return;
  NoGradGuard ng;
  for (const auto& [name, b] : buffers) {
    if (b.dtype() != DType::F32 && b.dtype() != DType::F64) continue;  // counters agree already
    MONET_CHECK(b.is_contiguous(), "average_buffers: buffer '{}' is not contiguous", name);
    comm.all_reduce_sum(b);
    copy_(b, mul(b, 1.0 / static_cast<double>(comm.size())));
  }
}

}  // namespace monet
