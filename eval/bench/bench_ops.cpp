// The hot ops of the `monet bench` training step (configs/bench_*.json: B·T = 16·128 = 2048
// tokens, d = 128 and 256), one at a time, through the library's ops:
//   Linear      x·Wᵀ for every weight shape of the configs (attention d→d, MLP d→4d and 4d→d,
//               LM head d→256), forward and forward + backward           GFLOP/s
//   Softmax     the attention probabilities [16, 4, 128, 128] and the logits [2048, 256]  GB/s
//   RMSNorm     [2048, d]                                                 GB/s
//   MonetRouter the MONET router of the configs (H 4, √N = d/2, k 8, training-mode BatchNorm),
//               forward and forward + backward                            GFLOP/s
//   MonetVdMix  monet_vd on a fixed routing (the experts and the six mixing terms), forward and
//               forward + backward                                        GFLOP/s
//   CausalAttention  q, k, v [16, 4, 128, hd] (hd 64: d 256, hd 32: d 128; v strided as attention
//               passes it): the fused causal_attention (fused 1) against the composition
//               matmul + causal_softmax + matmul (fused 0), forward and forward + backward. The
//               fused op counts only the FLOPs it does (the valid blocks), the composition the
//               full q·kᵀ: compare their times, not their GFLOP/s.
// FLOP rates use the ops' own count (core/flops.h) of one iteration; GB/s counts the bytes
// read and written once (input + output; + weight for RMSNorm). Run, e.g.:
//   build/eval/bench/bench_ops --benchmark_filter=Linear
// OPENBLAS_NUM_THREADS chooses the BLAS threads (this machine: 2 cores). Nothing here is a test.
#include <benchmark/benchmark.h>

#include <cmath>
#include <functional>

#include "core/autograd.h"
#include "core/flops.h"
#include "core/ops.h"
#include "core/random.h"
#include "monet/monet_layer.h"
#include "monet/monet_vd.h"
#include "monet/router.h"
#include "nn/linear.h"

using namespace monet;

namespace {

constexpr int64_t kB = 16, kT = 128, kTokens = kB * kT;

// The FLOPs of one call of `f`, as the ops count them.
int64_t counted_flops(const std::function<void()>& f) {
  FlopCounter c;
  f();
  return c.total();
}

void report_flops(benchmark::State& st, int64_t flops) {
  st.counters["GFLOP/s"] =
      benchmark::Counter(static_cast<double>(flops), benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
  st.counters["MFLOP"] = static_cast<double>(flops) / 1e6;
}

void report_bytes(benchmark::State& st, int64_t bytes) {
  st.counters["GB/s"] =
      benchmark::Counter(static_cast<double>(bytes), benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
}

// Runs `f` in the timing loop after counting its FLOPs once.
void time_flops(benchmark::State& st, const std::function<void()>& f) {
  const int64_t flops = counted_flops(f);
  for (auto _ : st) f();
  report_flops(st, flops);
}

// ---- Linear: y = x·Wᵀ, x [2048, in], W [out, in] ----

void BM_Linear(benchmark::State& st) {
  const int64_t in = st.range(0), out = st.range(1);
  const bool backward = st.range(2) != 0;
  Generator g(1);
  Tensor x = randn({kTokens, in}, g), w = mul(randn({out, in}, g), 0.02);
  if (backward) x.requires_grad_(), w.requires_grad_();
  time_flops(st, [&] {
    Tensor y = nn::linear(x, w);
    if (backward) {
      sum(y).backward();
      x.set_grad(Tensor());
      w.set_grad(Tensor());
    }
    benchmark::DoNotOptimize(y.data<float>());
  });
}
// {in, out, backward}: attention d→d, MLP d→4d, 4d→d, LM head d→vocab, at d = 128 and 256.
BENCHMARK(BM_Linear)
    ->ArgNames({"in", "out", "bwd"})
    ->ArgsProduct({{128}, {128, 512, 256}, {0, 1}})
    ->Args({512, 128, 0})
    ->Args({512, 128, 1})
    ->ArgsProduct({{256}, {256, 1024}, {0, 1}})
    ->Args({1024, 256, 0})
    ->Args({1024, 256, 1})
    ->UseRealTime();

// ---- Softmax over the last axis ----

void BM_Softmax(benchmark::State& st) {
  const int64_t rows = st.range(0), cols = st.range(1);
  Generator g(2);
  Tensor x = randn({rows, cols}, g);
  for (auto _ : st) {
    Tensor y = softmax(x, -1);
    benchmark::DoNotOptimize(y.data<float>());
  }
  report_bytes(st, 2 * rows * cols * static_cast<int64_t>(sizeof(float)));
}
// attention probabilities: B·heads·T rows of T; the LM logits: B·T rows of vocab 256.
BENCHMARK(BM_Softmax)
    ->ArgNames({"rows", "cols"})
    ->Args({kB * 4 * kT, kT})
    ->Args({kTokens, 256})
    ->UseRealTime();

// ---- RMSNorm over d ----

void BM_RmsNorm(benchmark::State& st) {
  const int64_t d = st.range(0);
  Generator g(3);
  Tensor x = randn({kTokens, d}, g), w = ones({d});
  for (auto _ : st) {
    Tensor y = rms_norm(x, w, 1e-5);
    benchmark::DoNotOptimize(y.data<float>());
  }
  report_bytes(st, (2 * kTokens * d + d) * static_cast<int64_t>(sizeof(float)));
}
BENCHMARK(BM_RmsNorm)->ArgName("d")->Arg(128)->Arg(256)->UseRealTime();

// ---- MONET: the router, and the VD experts with their mixing ----

moe::MonetOptions monet_options(int64_t d) {
  return moe::MonetOptions::defaults(d, /*vertical=*/true);  // H 4, √N d/2, m 8, k 8, G 4
}

void BM_MonetRouter(benchmark::State& st) {
  const int64_t d = st.range(0);
  const bool backward = st.range(1) != 0;
  Generator g(4);
  moe::MonetRouter router(monet_options(d), g, {DType::F32, Device::cpu(), 0.02});
  router.train();
  Tensor x = randn({kB, kT, d}, g);
  if (backward) x.requires_grad_();
  time_flops(st, [&] {
    moe::Routing r = router.forward(x);
    if (backward) {
      add(sum(mul(r.g1, r.g1)), sum(mul(r.g2, r.g2))).backward();
      x.set_grad(Tensor());
      for (auto& [name, p] : router.named_parameters()) p.set_grad(Tensor());
    }
    benchmark::DoNotOptimize(r.g1.data<float>());
  });
}
BENCHMARK(BM_MonetRouter)->ArgNames({"d", "bwd"})->ArgsProduct({{128, 256}, {0, 1}})->UseRealTime();

void BM_MonetVdMix(benchmark::State& st) {
  const int64_t d = st.range(0);
  const bool backward = st.range(1) != 0, fused = st.range(2) != 0;
  const moe::MonetOptions o = monet_options(d);
  Generator g(5);
  moe::MonetRouter router(o, g, {DType::F32, Device::cpu(), 0.02});
  router.train();
  Tensor x = randn({kB, kT, d}, g);
  moe::Routing r;
  {
    NoGradGuard ng;
    r = router.forward(x);  // a fixed routing: this benchmark is the experts and the mixing
  }
  const int64_t w = o.sqrt_n * o.dim / 2;
  auto param = [&](Shape s) { return mul(randn(s, g), 0.02).requires_grad_(); };
  moe::VdWeights vw{param({w, d}),
                    param({w}),
                    param({w, d}),
                    param({w}),
                    param({d / 2, w}),
                    param({d / 2, w}),
                    param({d / 2, w}),
                    param({d / 2, w}),
                    param({o.sqrt_n, d / 2}),
                    param({o.sqrt_n, d / 2})};
  if (backward) x.requires_grad_();
  time_flops(st, [&] {
    Tensor y = fused ? moe::monet_vd(x, vw, r) : moe::monet_vd_composed(x, vw, r);
    if (backward) {
      sum(y).backward();
      x.set_grad(Tensor());
      for (Tensor* p : {&vw.u1_weight, &vw.u1_bias, &vw.u2_weight, &vw.u2_bias, &vw.v11, &vw.v12,
                        &vw.v21, &vw.v22, &vw.b1, &vw.b2})
        p->set_grad(Tensor());
    }
    benchmark::DoNotOptimize(y.data<float>());
  });
}
// fused: 1 = monet_vd (the CPU path: vd_mix and one product per half), 0 = monet_vd_composed.
BENCHMARK(BM_MonetVdMix)
    ->ArgNames({"d", "bwd", "fused"})
    ->ArgsProduct({{128, 256}, {0, 1}, {0, 1}})
    ->UseRealTime();

// ---- causal attention: fused against the composition ----

void BM_CausalAttention(benchmark::State& st) {
  const int64_t hd = st.range(0), H = 4;
  const bool fused = st.range(1) != 0, backward = st.range(2) != 0;
  Generator g(6);
  Tensor q = randn({kB, H, kT, hd}, g), k = randn({kB, H, kT, hd}, g);
  Tensor vt = randn({kB, kT, H, hd}, g);  // v = its transpose, a strided view as in attention
  if (backward) q.requires_grad_(), k.requires_grad_(), vt.requires_grad_();
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  time_flops(st, [&] {
    Tensor v = transpose(vt, 1, 2);
    Tensor y = fused ? causal_attention(q, k, v, scale)
                     : matmul(causal_softmax(matmul(q, transpose(k, 2, 3)), scale), v);
    if (backward) {
      sum(y).backward();
      for (Tensor* t : {&q, &k, &vt}) t->set_grad(Tensor());
    }
    benchmark::DoNotOptimize(y.data<float>());
  });
}
BENCHMARK(BM_CausalAttention)
    ->ArgNames({"hd", "fused", "bwd"})
    ->ArgsProduct({{64, 32}, {0, 1}, {0, 1}})
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
