// Parameter counts of the paper's 1.4B models (MONET Table 6/8), built on the meta device (shapes
// only, no memory), against the paper's Table 8: MONET-VD with routing groups of 4 has 1.465B
// parameters, 1.767B with a router in every layer; the dense LLaMA counterpart 1.345B.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/memory.h"
#include "train/model.h"

using namespace monet;

namespace {

int64_t count_on_meta(const std::string& ffn) {
  Config c = parse_config(nlohmann::json::parse(R"({"model": {"vocab": 32000, "d": 2048,
      "layers": 24, "heads": 16, "context": 2048, "ffn": )" + ffn + "}}"));
  Generator gen(0);
  const int64_t cpu_before = memory::stats(DeviceType::CPU).current;
  auto model = build_model(c.model, gen, DType::F32, Device::meta());
  // Nothing of the ~6 GB of weights exists: only RoPE's small constant tables are on the CPU.
  EXPECT_LT(memory::stats(DeviceType::CPU).current - cpu_before, 64 << 20);
  return model->num_parameters();
}

}  // namespace

TEST(ParamCounts, PaperMonetVd1_4B) {
  // Table 6, 1.4B: d 2048, 24 layers, 16 attention heads, m 16, H 8, √N 512, k 8, vocab 32000.
  const std::string vd = R"({"kind": "monet_vd", "heads": 8, "sqrt_n": 512, "dim": 16, "topk": 8, "group": )";
  const int64_t g4 = count_on_meta(vd + "4}"), g1 = count_on_meta(vd + "1}");
  EXPECT_NEAR(g4 / 1e9, 1.465, 0.0005) << g4;
  EXPECT_NEAR(g1 / 1e9, 1.767, 0.0005) << g1;
  // HD has the same count as VD here (u: d·√N·m + √N·m, v: √N·m·d, b: √N·d = the VD totals).
  EXPECT_EQ(count_on_meta(R"({"kind": "monet_hd", "heads": 8, "sqrt_n": 512, "dim": 16, "topk": 8, "group": 4})"), g4);
}

TEST(ParamCounts, PaperDenseLlama1_3B) {
  // The dense counterpart: SwiGLU with hidden 5504 (LLaMA's 8d/3, rounded to a multiple of 128).
  const int64_t dense = count_on_meta(R"({"kind": "dense", "activation": "swiglu", "hidden": 5504})");
  EXPECT_NEAR(dense / 1e9, 1.345, 0.0005) << dense;
}
