// The backward engine: reuse of a tensor, accumulation, no_grad, detach, views of leaves,
// broadcasting, graphs too long for recursion, and a harness that does fail on a wrong gradient.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <memory>

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

// Slices of one non-leaf tensor add into its gradient in place (Node::accumulate). The engine must
// copy a gradient it did not make before adding into it: here add's backward hands the same
// tensor to p and to q, and the slice of p must not change q's.
TEST(Autograd, SlicesOfANonLeafAccumulateInPlaceWithoutTouchingAliases) {
  const std::vector<double> w{1, -1, 2, 0.5, -3, 4}, w1{10, 20}, w3{-1, -2, -3, -4};
  for (bool slices_first : {true, false}) {  // both orders in which backward meets the consumers
    Tensor x = from_vector<double>({1, 2, 3, 4, 5, 6}, {3, 2}).requires_grad_();
    Tensor p = mul(x, 2.0), q = mul(x, 3.0);
    Tensor whole = sum(add(p, q) * from_vector<double>(w, {3, 2}));
    Tensor parts = add(sum(slice(p, 0, 0, 1) * from_vector<double>(w1, {1, 2})),
                       sum(slice(p, 0, 1, 3) * from_vector<double>(w3, {2, 2})));
    (slices_first ? add(parts, whole) : add(whole, parts)).backward();
    // d loss / dx = 2·(w + [w1; w3]) + 3·w, the slices covering p's rows 0 and 1..2.
    const std::vector<double> rows{10, 20, -1, -2, -3, -4};
    std::vector<double> want(6);
    for (size_t i = 0; i < 6; ++i) want[i] = 2 * (w[i] + rows[i]) + 3 * w[i];
    EXPECT_EQ(x.grad().to_vector<double>(), want) << "slices first: " << slices_first;
  }
  // A gradient that a closure returns as is (here a tensor the test holds) must not be added into.
  for (bool slices_first : {true, false}) {
    Tensor held = from_vector<double>({1, 1, 1, 1, 1, 1}, {3, 2});
    Tensor x = from_vector<double>({1, 2, 3, 4, 5, 6}, {3, 2}).requires_grad_();
    Tensor p = mul(x, 2.0);
    Tensor c = p.detach();
    record(c, "returns_held", {p}, [held](const Tensor&) { return std::vector<Tensor>{held}; });
    Tensor part = sum(slice(p, 0, 0, 2) * from_vector<double>({10, 20, 30, 40}, {2, 2}));
    (slices_first ? add(part, sum(c)) : add(sum(c), part)).backward();
    EXPECT_EQ(held.to_vector<double>(), std::vector<double>(6, 1.0)) << slices_first;
    EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{22, 42, 62, 82, 2, 2}))
        << "slices first: " << slices_first;
  }
  // Overlapping slices of one tensor, and that tensor also used whole.
  Tensor y = from_vector<double>({1, 2, 3, 4}, {4}).requires_grad_();
  Tensor b = mul(y, 1.0);
  sum(add(add(sum(slice(b, 0, 0, 3)), sum(slice(b, 0, 1, 4))), sum(mul(b, 5.0)))).backward();
  EXPECT_EQ(y.grad().to_vector<double>(), (std::vector<double>{6, 7, 7, 6}));
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

// Releasing a graph must not recurse once per node either. Each link holds the one before it
// through its inputs and through its closure, as the ops' closures capture their inputs. Before
// Node::~Node released a graph from a work list, the last reference's destructor recursed through
// every node (about 70 bytes of stack each): this chain overflowed the default 8 MiB stack of a
// Release build from 115k nodes on (it passed at 100k), and the 100k-node chain above overflowed
// under AddressSanitizer. A million nodes leaves a wide margin and takes a fraction of a second.
TEST(Autograd, ReleasingALongChainDoesNotOverflowTheStack) {
  constexpr int kChain = 1'000'000;
  std::weak_ptr<Node> first;
  {
    Tensor y = scalar(1.0).requires_grad_();
    for (int i = 0; i < kChain; ++i) {
      Tensor out = y.detach();  // a node without a kernel or an allocation: fast to build
      record(out, "link", {y}, [y](const Tensor& g) { return std::vector<Tensor>{g}; });
      if (i == 0) first = out.grad_fn();
      y = out;
    }
  }  // the last reference to the whole chain goes here
  EXPECT_TRUE(first.expired());
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
    record(out, "wrong_square", {x[0]},
           [x0 = x[0].detach()](const Tensor& g) { return std::vector<Tensor>{mul(g, x0)}; });
    return out;
  };
  Generator g(3);
  Tensor in = monet::testing::rnd({1}, g, 0.5, 1.0);  // one element: exactly one failure
  EXPECT_NONFATAL_FAILURE(monet::testing::expect_gradcheck("wrong_square", wrong_square, {in}),
                          "finite difference");
}
