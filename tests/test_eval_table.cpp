// `monet table` (eval/table.h): the log-log fit, the per-kind measurements on a tiny sweep against
// hand counts, the memory budget that skips instead of crashing, meta-device counts against
// instantiated models, and the real binary's --quick run with every output written.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/table.h"
#include "test_train_util.h"
#include "train/config.h"
#include "train/model.h"
#include "util/fileio.h"

using namespace monet;
using monet::testing::TempDir;
using monet::testing::ThrowsWith;
namespace fs = std::filesystem;

namespace {

TableOptions tiny() {
  TableOptions o;
  o.d = 32;
  o.sqrt_n = {4, 8, 16};
  o.many_sqrt_n = {};
  o.batch = 2;
  o.context = 8;
  o.warmup = 0;
  o.repeats = 1;
  o.sets = {"peer.d_query=16", "peer.topk=4", "smoe.dim=8", "monet_hd.topk=2", "monet_vd.topk=2"};
  return o;
}

const TableRow& row(const TableResult& r, const std::string& kind, int64_t sqrt_n) {
  for (const TableRow& w : r.rows)
    if (w.kind->name == kind && w.sqrt_n == sqrt_n) return w;
  throw Error("no row " + kind);
}

}  // namespace

TEST(Table, LoglogSlopeOfExactPowerLaws) {
  std::vector<double> x = {16, 64, 256, 1024}, half, one, flat;
  for (double v : x) half.push_back(3 * std::sqrt(v)), one.push_back(0.5 * v), flat.push_back(7);
  EXPECT_NEAR(loglog_slope(x, half), 0.5, 1e-12);
  EXPECT_NEAR(loglog_slope(x, one), 1.0, 1e-12);
  EXPECT_NEAR(loglog_slope(x, flat), 0.0, 1e-12);
  EXPECT_TRUE(ThrowsWith([] { loglog_slope({4}, {2}); }, {"two points"}));
  EXPECT_TRUE(ThrowsWith([] { loglog_slope({4, 4}, {2, 3}); }, {"distinct"}));
}

TEST(Table, TinySweepMatchesHandCounts) {
  const TableOptions o = tiny();
  const TableResult r = run_table(o);
  ASSERT_EQ(r.rows.size(), 1u + 4 * o.sqrt_n.size());
  for (const TableRow& w : r.rows) {
    EXPECT_TRUE(w.measured) << w.kind->name << " " << w.note;
    EXPECT_GT(w.step_us, w.fwd_us) << w.kind->name;
    EXPECT_GT(w.step_flops_total, 2 * w.fwd_flops_total) << w.kind->name;  // backward ≈ 2× forward
    // The parts of the step's memory, each measured: the inputs hold x and the upstream gradient
    // w at least, the forward saves something for backward, backward leaves x's gradient at
    // least, and the peak is at least everything alive after the forward plus the gradients
    // (transient, the rest of the peak, is not negative). Their sum is the peak by definition.
    const int64_t act = o.batch * o.context * o.d * 4;  // one [B, T, d] float tensor
    EXPECT_EQ(w.mem_weights, 4 * w.params)
        << w.kind->name;  // float32, as counted on the meta device
    EXPECT_GE(w.mem_input, 2 * act) << w.kind->name;
    EXPECT_GT(w.mem_saved, 0) << w.kind->name;
    EXPECT_GE(w.mem_grads, act) << w.kind->name;
    EXPECT_GE(w.mem_transient, 0) << w.kind->name;
  }
  // Dense relu² MLP, hidden 4d: per token two matmuls 2·d·4d and relu² (1 FLOP per hidden unit);
  // no routing. Its gradients are exactly the weights' size plus x's.
  const TableRow& dense = row(r, "dense", 0);
  const int64_t d = o.d, h = 4 * o.d;
  EXPECT_EQ(dense.params, 2 * d * h);
  EXPECT_EQ(dense.mem_weights, 4 * 2 * d * h);
  EXPECT_DOUBLE_EQ(dense.flops("experts"), static_cast<double>(4 * d * h + h));
  EXPECT_DOUBLE_EQ(dense.flops("retrieval"), 0.0);
  EXPECT_EQ(dense.mem_grads, dense.param_bytes + o.batch * o.context * d * 4);
  EXPECT_GE(dense.mem_saved, o.batch * o.context * h * 4);  // the hidden activations at least
  // MONET-HD parameters (docs/math/monet.md §4.7): router 2·H·√N·d, u d·√N·m + √N·m, v √N·m·d, b
  // √N·d.
  for (int64_t s : o.sqrt_n) {
    const int64_t H = 4, m = 16;
    EXPECT_EQ(row(r, "monet_hd", s).params, 2 * H * s * d + d * s * m + s * m + s * m * d + s * d);
    EXPECT_EQ(row(r, "monet_hd", s).params, row(r, "monet_vd", s).params);
    // The router's forward FLOPs: two [d → H·√N] projections, then terms linear in H·√N.
    EXPECT_GE(row(r, "monet_vd", s).flops("retrieval"), 2.0 * 2 * d * H * s);
    EXPECT_LT(row(r, "monet_vd", s).flops("retrieval"), 2.0 * 2 * d * H * s + 100.0 * H * s);
    // SMoE: gate N·d, experts N·(2·m·d).
    EXPECT_EQ(row(r, "smoe", s).params, s * s * d + s * s * 2 * 8 * d);
    EXPECT_EQ(row(r, "smoe", s).expert_params, s * s * 2 * 8 * d);
    EXPECT_EQ(row(r, "peer", s).expert_params, 2 * s * s * d);
  }
  // The fitted exponents of Table 1 (params are exact; retrieval FLOPs here are pure √N or N terms
  // apart from PEER's k² and softmax terms).
  for (const TableSlope& sl : r.slopes) {
    if (sl.paper < 0) continue;
    EXPECT_NEAR(sl.measured, sl.paper,
                sl.kind == &moe::peer_kind() && sl.quantity == "retrieval FLOPs" ? 0.2 : 0.01)
        << sl.kind->name << " " << sl.quantity;
  }
}

TEST(Table, OverBudgetConfigurationsArePredictedNotRun) {
  TableOptions o = tiny();
  o.kinds = {&moe::smoe_kind()};
  o.max_memory_gib = 1.0 / 4096;  // 256 KiB: N = 16 (70 KB) fits, N = 64 (557 KB) does not
  const TableResult r = run_table(o);
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_TRUE(r.rows[0].measured);
  for (size_t i = 1; i < 3; ++i) {
    EXPECT_FALSE(r.rows[i].measured);
    EXPECT_NE(r.rows[i].note.find("budget"), std::string::npos) << r.rows[i].note;
    EXPECT_DOUBLE_EQ(r.rows[i].predicted_bytes, 2.0 * 4 * r.rows[i].params);
  }
  EXPECT_NE(table_markdown(r).find("not run"), std::string::npos);
}

TEST(Table, LayerSettingsOverridesAreChecked) {
  TableOptions o;
  o.sets = {"smoe.dim=32", "peer.score=sigmoid"};
  EXPECT_EQ(layer_settings(o, moe::smoe_kind(), 16)["dim"], 32);
  EXPECT_EQ(layer_settings(o, moe::smoe_kind(), 16)["experts"], 256);
  EXPECT_EQ(layer_settings(o, moe::peer_kind(), 16)["score"], "sigmoid");
  EXPECT_FALSE(layer_settings(o, moe::monet_vd_kind(), 16).contains("score"));
  o.sets = {"foo.dim=3"};
  EXPECT_TRUE(ThrowsWith([&] { layer_settings(o, moe::smoe_kind(), 16); },
                         {"foo.dim=3", "must be one of", "got 'foo'"}));
  o.sets = {"smoe.experts=3"};
  EXPECT_TRUE(ThrowsWith([&] { layer_settings(o, moe::smoe_kind(), 16); }, {"sweep sets experts"}));
  o.sets = {"smoe.bogus=1"};
  o.kinds = {&moe::smoe_kind()};
  o.sqrt_n = {4};
  EXPECT_TRUE(ThrowsWith([&] { run_table(o); }, {"model.ffn.bogus"}));
}

TEST(Table, MetaCountsEqualInstantiatedModels) {
  for (const char* ffn :
       {R"({"kind": "dense"})", R"({"kind": "monet_vd", "sqrt_n": 8, "topk": 2, "group": 2})",
        R"({"kind": "monet_hd", "sqrt_n": 8, "topk": 2, "group": 1})",
        R"({"kind": "peer", "sqrt_n": 8, "topk": 4, "d_query": 16})",
        R"({"kind": "smoe", "experts": 4, "gating": "noisy_topk", "topk": 2})"}) {
    Config c = parse_config(nlohmann::json::parse(
        std::string(R"({"model": {"d": 32, "layers": 3, "heads": 2, "context": 16, "ffn": )") +
        ffn + "}}"));
    Generator gen(1);
    EXPECT_EQ(count_parameters(c.model), build_model(c.model, gen)->num_parameters()) << ffn;
  }
}

TEST(Table, QuickRunOfTheBinaryWritesEveryOutput) {
  TempDir t("table_quick");
  const std::string cmd = std::string(MONET_BINARY_DIR) + "/monet table --quick --out " +
                          t.path().string() + " >" + (t / "stdout.md").string() + " 2>" +
                          (t / "stderr.txt").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_file(t / "stderr.txt");
  const std::string md = read_file(t / "table.md");
  EXPECT_EQ(md, read_file(t / "stdout.md"));
  EXPECT_NE(md.find("| monet_vd | 2^12 |"), std::string::npos);
  EXPECT_NE(md.find("1465157632"), std::string::npos);    // Table 8's 1.465B
  EXPECT_EQ(md.find("| NO |"), std::string::npos) << md;  // every exponent within ±0.1
  const auto j = nlohmann::json::parse(read_file(t / "table.json"));
  EXPECT_EQ(j["rows"].size(), 1u + 4 * 3);
  EXPECT_NE(read_file(t / "table.csv").find("kind,n,sqrt_n"), std::string::npos);
  for (const char* svg : {"time_vs_n.svg", "flops_vs_n.svg", "retrieval_flops_vs_n.svg",
                          "params_vs_n.svg", "memory_vs_n.svg"}) {
    const std::string plot = read_file(t / svg);
    EXPECT_EQ(plot.rfind("<svg", 0), 0u) << svg;
    // The x ticks (labels centred under the axis; the y axis's are right-aligned) sit at the
    // measured N (√N 16, 32, 64), not at round numbers between them.
    const std::string x = "text-anchor=\"middle\">";
    for (const char* n : {"256</text>", "1024</text>", "4096</text>"})
      EXPECT_NE(plot.find(x + n), std::string::npos) << svg << " has no x tick " << n;
    for (const char* n : {"500</text>", "1000</text>", "2000</text>"})
      EXPECT_EQ(plot.find(x + n), std::string::npos) << svg << " has a round x tick " << n;
  }
  // MONET-HD and -VD retrieve with the same FLOPs: one line named after both, not one hidden.
  EXPECT_NE(read_file(t / "retrieval_flops_vs_n.svg").find("MONET-HD = MONET-VD"),
            std::string::npos);
  EXPECT_NE(md.find("| fit R² |"), std::string::npos);
}

// A timing slope that is noise (negative, or a poor fit) is called so, in the table and on stderr;
// exact counts (FLOPs, parameters) never are.
TEST(Table, NoisyTimingSlopesAreFlagged) {
  const LogLogFit line = loglog_fit({1, 2, 4, 8}, {3, 6, 12, 24});
  EXPECT_NEAR(line.slope, 1.0, 1e-12);
  EXPECT_NEAR(line.r2, 1.0, 1e-12);
  const LogLogFit noise = loglog_fit({1, 2, 4, 8}, {5, 1, 6, 2});
  EXPECT_LT(noise.r2, 0.5);
  TableResult r;
  r.slopes = {{&moe::monet_vd_kind(), "fwd+bwd time", -0.362, 0.9, -1, 3},
              {&moe::smoe_kind(), "fwd+bwd time", 0.8, 0.3, -1, 3},
              {&moe::peer_kind(), "fwd+bwd time", 0.5, 0.97, -1, 3},
              {&moe::smoe_kind(), "retrieval FLOPs", -0.5, 0.1, 1.0, 3}};
  const std::vector<std::string> w = slope_warnings(r);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_NE(w[0].find("monet_vd fwd+bwd time: slope -0.362"), std::string::npos) << w[0];
  EXPECT_NE(w[1].find("R² 0.30"), std::string::npos) << w[1];
  EXPECT_NE(table_markdown(r).find("**Warning:** monet_vd fwd+bwd time"), std::string::npos);
}
