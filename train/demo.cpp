#include "train/demo.h"

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"

namespace monet {

DemoResult run_xor_demo(int steps, uint64_t seed, const std::function<void(int, double)>& on_step) {
  Generator gen(seed);
  // Data: 512 points uniform in [-1, 1]², label 1 when the two coordinates have the same sign.
  const int64_t n = 512, hidden = 32;
  Tensor x = uniform({n, 2}, -1.0, 1.0, gen);
  std::vector<float> xs = x.to_vector<float>();
  std::vector<int32_t> ys(n);
  for (int64_t i = 0; i < n; ++i) ys[i] = (xs[2 * i] > 0) == (xs[2 * i + 1] > 0) ? 1 : 0;
  Tensor y = from_vector(ys, {n});

  Tensor w1 = normal({2, hidden}, 0.0, 1.0, gen).requires_grad_();
  Tensor b1 = zeros({hidden}).requires_grad_();
  Tensor w2 = normal({hidden, 2}, 0.0, 0.3, gen).requires_grad_();
  Tensor b2 = zeros({2}).requires_grad_();
  std::vector<Tensor> params{w1, b1, w2, b2};
  const double lr = 0.5;

  DemoResult r;
  Tensor logits;
  for (int step = 0; step < steps; ++step) {
    logits = add(matmul(gelu(add(matmul(x, w1), b1)), w2), b2);
    Tensor loss = cross_entropy(logits, y);
    for (Tensor& p : params) p.set_grad(Tensor());
    loss.backward();
    {
      NoGradGuard ng;
      for (Tensor& p : params) copy_(p, sub(p, mul(p.grad(), lr)));  // p ← p − lr·∂L/∂p
    }
    const double l = loss.item();
    if (step == 0) r.first_loss = l;
    r.final_loss = l;
    if (on_step) on_step(step, l);
  }
  NoGradGuard ng;
  Tensor pred = max(logits, -1).second;
  std::vector<int32_t> p = pred.to_vector<int32_t>();
  int64_t right = 0;
  for (int64_t i = 0; i < n; ++i) right += p[i] == ys[i];
  r.accuracy = static_cast<double>(right) / static_cast<double>(n);
  return r;
}

}  // namespace monet
