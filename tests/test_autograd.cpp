// The backward engine: reuse of a tensor, accumulation, no_grad, detach, views of leaves,
// broadcasting, graphs too long for recursion, and a harness that does fail on a wrong gradient.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include "gradcheck.h"

using namespace monet;

TEST(Autograd, TensorUsedSeveralTimesSumsItsGradients) {
  Tensor x = from_vector<double>({1.5, -2.0}, {2}).requires_grad_();
  Tensor y = sum(add(mul(x, x), mul(x, 3.0)));  // dy/dx = 2x + 3
  y.backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{6.0, -1.0}));
}

TEST(Autograd, GradientsAccumulateAcrossBackwardCalls) {
  Tensor x = from_vector<float>({2.f}, {1}).requires_grad_();
  sum(mul(x, 4.0)).backward();
  sum(mul(x, 4.0)).backward();
  EXPECT_EQ(x.grad().item(), 8.0);
  x.set_grad(Tensor());
  sum(x).backward();
  EXPECT_EQ(x.grad().item(), 1.0);
}

TEST(Autograd, NoGradAndDetachCutTheGraph) {
  Tensor x = ones({3}).requires_grad_();
  {
    NoGradGuard ng;
    Tensor y = mul(x, 2.0);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
  }
  EXPECT_TRUE(grad_enabled());
  Tensor d = mul(x, 2.0).detach();
  EXPECT_FALSE(d.requires_grad());
  Tensor z = sum(add(mul(d, x), x));  // d is a constant: dz/dx = d + 1 = 3
  z.backward();
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{3, 3, 3}));
}

TEST(Autograd, ViewsOfALeafRouteGradientsBack) {
  Tensor x = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}).requires_grad_();
  Tensor y = sum(mul(x.slice(1, 1, 3), x.transpose(0, 1).slice(0, 0, 2).transpose(0, 1)));
  y.backward();  // Σ x[:,1:3] ⊙ x[:,0:2]
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{2, 1 + 3, 2, 5, 4 + 6, 5}));
}

TEST(Autograd, BroadcastGradientsAreReducedToTheInputShape) {
  Tensor b = zeros({3}).requires_grad_();
  Tensor x = ones({4, 3});
  sum(add(x, b)).backward();
  EXPECT_EQ(b.grad().shape(), (Shape{3}));
  EXPECT_EQ(b.grad().to_vector<float>(), (std::vector<float>{4, 4, 4}));
}

TEST(Autograd, LongChainsDoNotOverflowTheStack) {
  Tensor x = scalar(1.0, DType::F64).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 100000; ++i) y = add(y, 1e-6);  // a 100k-node chain: recursion would crash
  y = mul(y, 2.0);
  y.backward();
  EXPECT_EQ(x.grad().item(), 2.0);
}

TEST(Autograd, BackwardOfANonScalarNeedsAGradient) {
  Tensor x = ones({2}).requires_grad_();
  Tensor y = mul(x, 2.0);
  EXPECT_THROW(y.backward(), Error);
  y.backward(from_vector<float>({1, 10}, {2}));
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{2, 20}));
  EXPECT_THROW(ones({2}).backward(), Error);  // no grad required
}

TEST(Autograd, IntegerTensorsCannotRequireGrad) {
  EXPECT_THROW(arange(3).requires_grad_(), Error);
}

// A deliberately wrong backward (d/dx x² claimed to be x) must make the harness fail.
TEST(Autograd, GradcheckHarnessCatchesAWrongBackward) {
  auto wrong_square = [](const std::vector<Tensor>& x) {
    Tensor out;
    {
      NoGradGuard ng;
      out = mul(x[0], x[0]);
    }
    record(out, "wrong_square", {x[0]}, [x0 = x[0].detach()](const Tensor& g) {
      return std::vector<Tensor>{mul(g, x0)};
    });
    return out;
  };
  Generator g(3);
  Tensor in = monet::testing::rnd({1}, g, 0.5, 1.0);  // one element: exactly one failure
  EXPECT_NONFATAL_FAILURE(monet::testing::expect_gradcheck("wrong_square", wrong_square, {in}),
                          "finite difference");
}
