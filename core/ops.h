// Every op of the tensor library. Each is defined, with its shape rule, kernels, FLOP count and
// backward, in one file of core/ops/ named after its family.
#pragma once
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace monet {

// ---- shape and views (ops/shape.cpp) ----
Tensor reshape(const Tensor& a, Shape s);  // one axis may be -1; copies only when it must
Tensor permute(const Tensor& a, const Shape& order);
Tensor transpose(const Tensor& a, int64_t ax0, int64_t ax1);
Tensor slice(const Tensor& a, int64_t axis, int64_t start, int64_t end);  // [start, end)
Tensor expand(const Tensor& a, const Shape& s);                           // broadcast view
Tensor unsqueeze(const Tensor& a, int64_t axis);
Tensor squeeze(const Tensor& a, int64_t axis);
Tensor contiguous(const Tensor& a);
Tensor cast(const Tensor& a, DType t);
Tensor to_device(const Tensor& a, Device d);
Tensor concat(const std::vector<Tensor>& xs, int64_t axis);
std::vector<Tensor> split(const Tensor& a, const std::vector<int64_t>& sizes, int64_t axis);
// In-place, never recorded: copy `src` (broadcast to dst's shape) into the view `dst`.
void copy_(const Tensor& dst, const Tensor& src);
void add_(const Tensor& dst, const Tensor& src);  // dst += src (broadcast), in place, not recorded
void fill_(const Tensor& dst, double value);

// ---- elementwise (ops/elementwise.cpp); binary ops broadcast numpy-style ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor pow(const Tensor& a, double p);
Tensor relu(const Tensor& a);
Tensor relu2(const Tensor& a);  // max(x, 0)^2, MONET's activation
Tensor gelu(const Tensor& a);   // tanh approximation, as GPT-2
Tensor silu(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor softplus(const Tensor& a);
// cond ? a : b, with broadcasting; cond is any dtype, non-zero = true. No gradient to cond.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor masked_fill(const Tensor& a, const Tensor& mask, double value);
// Comparisons give 0/1 in a's dtype; never differentiable.
Tensor greater(const Tensor& a, const Tensor& b);
Tensor greater_equal(const Tensor& a, const Tensor& b);
Tensor equal(const Tensor& a, const Tensor& b);

inline Tensor operator+(const Tensor& a, const Tensor& b) {
  return add(a, b);
}
inline Tensor operator-(const Tensor& a, const Tensor& b) {
  return sub(a, b);
}
inline Tensor operator*(const Tensor& a, const Tensor& b) {
  return mul(a, b);
}
inline Tensor operator/(const Tensor& a, const Tensor& b) {
  return div(a, b);
}
inline Tensor operator-(const Tensor& a) {
  return neg(a);
}
inline Tensor operator+(const Tensor& a, double s) {
  return add(a, s);
}
inline Tensor operator-(const Tensor& a, double s) {
  return add(a, -s);
}
inline Tensor operator*(const Tensor& a, double s) {
  return mul(a, s);
}
inline Tensor operator*(double s, const Tensor& a) {
  return mul(a, s);
}
inline Tensor operator/(const Tensor& a, double s) {
  return mul(a, 1.0 / s);
}

// ---- reductions (ops/reduce.cpp) ----
Tensor sum(const Tensor& a, std::vector<int64_t> axes, bool keepdim = false);
Tensor sum(const Tensor& a);  // all elements, shape []
Tensor mean(const Tensor& a, std::vector<int64_t> axes, bool keepdim = false);
Tensor mean(const Tensor& a);
// Max over one axis: values and int32 indices (the first maximum wins).
std::pair<Tensor, Tensor> max(const Tensor& a, int64_t axis, bool keepdim = false);
// Sum a broadcast result back to `shape` (the gradient of expand).
Tensor sum_to(const Tensor& a, const Shape& shape);

// ---- matmul (ops/matmul.cpp) ----
// a [..., M, K] @ b [..., K, N]; batch axes broadcast. Transposed views go to sgemm as flags.
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- softmax family and loss (ops/softmax.cpp) ----
Tensor softmax(const Tensor& a, int64_t axis = -1);
Tensor log_softmax(const Tensor& a, int64_t axis = -1);
Tensor logsumexp(const Tensor& a, int64_t axis = -1, bool keepdim = false);
// Softmax over the last axis taken over the entries where `keep` (x's shape, any dtype, non-zero =
// kept) is set; the others are 0. Every row must keep at least one finite entry. No gradient to
// keep.
Tensor masked_softmax(const Tensor& x, const Tensor& keep);
// Mean over the rows whose target is not `ignore_index` of -log softmax(logits)[target].
// logits [N, C] (or [..., C]), targets int32 [N] (or [...]).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int32_t ignore_index = -100);

// ---- normalisation (ops/norm.cpp) ----
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps = 1e-6);  // over the last axis
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
// BatchNorm without affine parameters: one mean/variance per index of `axis`, pooled over every
// other axis. In training, batch statistics are used and the running buffers (shape [size(axis)])
// are updated in place with `momentum`; in eval, the running statistics are used.
inline constexpr double kBatchNormMomentum = 0.1, kBatchNormEps = 1e-5;  // torch's defaults
Tensor batch_norm(const Tensor& x, int64_t axis, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum = kBatchNormMomentum,
                  double eps = kBatchNormEps);
// batch_norm's update of the running statistics (shape [C]) from a batch's mean and biased
// variance over `count` values: r ← (1 − momentum)·r + momentum·batch, the variance made unbiased
// as PyTorch does. In place, not recorded.
void update_running_stats(const Tensor& running_mean, const Tensor& running_var, const Tensor& mean,
                          const Tensor& var, int64_t count, double momentum);

// ---- indexing (ops/index.cpp) ----
Tensor embedding(const Tensor& weight, const Tensor& ids);  // [V,d], int [...] -> [..., d]
Tensor index_select(const Tensor& a, int64_t axis, const Tensor& index);  // index int32 1-D
Tensor gather(const Tensor& a, int64_t axis,
              const Tensor& index);  // out[..i..] = a[..index[..i..]..]
// out = a, then out[..index[..i..]..] += src[..i..] along `axis` (index has src's shape).
Tensor scatter_add(const Tensor& a, int64_t axis, const Tensor& index, const Tensor& src);
// The k largest values along the last axis, sorted descending, and their int32 indices.
std::pair<Tensor, Tensor> topk(const Tensor& a, int64_t k);

// ---- scalar special functions (ops/special.cpp) ----
// Φ⁻¹(p): the standard normal quantile, |error| < 1e-12 on (0, 1).
double normal_icdf(double p);
double normal_cdf(double x);

}  // namespace monet

namespace monet {
// ---- attention (ops/attention.cpp) ----
// softmax_j(scale·S_ij) over keys j ≤ (Tk − T) + i, zero after: causal attention's row operation.
Tensor causal_softmax(const Tensor& scores, double scale);
// causal_softmax(q·kᵀ, scale)·v without computing the masked half: q [..., T, hd], k and v
// [..., Tk, hd] (Tk >= T). A 4-D [B, H, T, hd] result lies in memory as [B, T, H, hd].
Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale);
// Rotary position embedding, fused (RoFormer, rotate-half layout): x [..., T, hd], cos/sin
// [T, hd/2] constants; y = (x₁cos − x₂sin, x₂cos + x₁sin) per row, contiguous.
Tensor rotary(const Tensor& x, const Tensor& cos, const Tensor& sin);
}  // namespace monet
