// The dense baseline as a registry row: nn::MLP (docs/math/transformer.md §1), one always-on
// "expert" of width hidden. It has no experts to route to, so it is measured once by
// `monet table` and refused by the interpretability commands.
#include "monet/registry.h"
#include "nn/mlp.h"

namespace monet::moe {
namespace {

struct DenseOptions {
  int64_t d = 0;
  nn::Activation activation = nn::Activation::ReLU2;
  int64_t hidden = 0;
  void validate() const {}  // each field's rule is all there is
};

const std::vector<Field<DenseOptions>>& dense_fields() {
  using O = DenseOptions;
  static const std::vector<Field<O>> f = {
      choice_field("activation", &O::activation, nn::Activation::ReLU2,
                   {nn::Activation::ReLU2, nn::Activation::GELU, nn::Activation::SwiGLU},
                   nn::activation_name, "relu² (MONET), gelu (GPT-2) or swiglu (LLaMA)"),
      int_field("hidden", &O::hidden, d_times(4), 1, "hidden width"),
  };
  return f;
}

}  // namespace

const FfnKind& dense_kind() {
  static const FfnKind k = make_kind<DenseOptions>(
      "dense", "dense", "the dense MLP of a LLaMA-style block (the baseline)", dense_fields(),
      [](const DenseOptions& o, const BuildContext& c) -> FeedForwardFactory {
        return [o, c](int) {
          return std::make_shared<nn::MLP>(o.d, o.hidden, o.activation, *c.init, c.param);
        };
      });
  return k;
}

}  // namespace monet::moe
