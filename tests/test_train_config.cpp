#include <gtest/gtest.h>

#include "test_train_util.h"
#include "train/config.h"
#include "train/trainer.h"
#include "util/fileio.h"
#include "util/suggest.h"

namespace monet {
namespace {

using json = nlohmann::json;
using testing::TempDir;
using testing::ThrowsWith;

auto parse(const std::string& text) {
  return [text] { parse_config(json::parse(text)); };
}

TEST(TrainConfig, DefaultsFromAnEmptyObject) {
  Config c = parse_config(json::object());
  EXPECT_EQ(c.model.vocab, 256);
  EXPECT_EQ(c.model.d, 128);
  EXPECT_EQ(c.model.ffn.kind, &moe::dense_kind());
  EXPECT_EQ(c.model.ffn.params.at("activation").get<std::string>(), "relu2");
  EXPECT_EQ(c.model.ffn.params.at("hidden").get<int64_t>(), 4 * 128);
  EXPECT_EQ(c.optim.name, nn::OptimizerKind::AdamW);
  EXPECT_EQ(c.run.device, DeviceType::CPU);
  EXPECT_EQ(c.run.data, "third_party/corpora/toy4");
  EXPECT_EQ(c.run.gemm, std::nullopt);  // auto
  EXPECT_EQ(c.run.precision, Precision::F32);
  EXPECT_EQ(gemm_mode_of(c.run), (GemmMode{default_gemm_backend(), Precision::F32}));
  // Written by the names of their tables, and read back.
  const json j = to_json(c);
  EXPECT_EQ(j["run"]["gemm"], "auto");
  EXPECT_EQ(j["run"]["device"], "cpu");
  EXPECT_EQ(j["run"]["precision"], "fp32");
  EXPECT_EQ(j["optim"]["name"], "adamw");
  c.run.gemm = GemmBackend::OpenBLAS;
  c.run.precision = Precision::BF16;
  EXPECT_EQ(to_json(c)["run"]["gemm"], "openblas");
  EXPECT_EQ(parse_config(to_json(c)), c);
  EXPECT_EQ(gemm_mode_of(c.run), (GemmMode{GemmBackend::OpenBLAS, Precision::BF16}));
  // hidden follows d unless given
  EXPECT_EQ(parse_config(json::parse(R"({"model": {"d": 64}})"))
                .model.ffn.params.at("hidden")
                .get<int64_t>(),
            256);
  EXPECT_EQ(c.model.ffn.params.size(), 2u)
      << c.model.ffn.params.dump();  // dense: activation, hidden
}

TEST(TrainConfig, RoundTripsExactly) {
  json in = json::parse(R"({
    "model": {"d": 96, "heads": 3, "norm_eps": 1e-6,
              "ffn": {"activation": "swiglu", "hidden": 200}},
    "optim": {"name": "sgd", "lr": 0.1234567890123, "min_lr": 1e-5, "grad_clip": 0},
    "run": {"steps": 7, "seed": 18446744073709551615, "device": "cuda", "data": "/tmp/x y"}})");
  Config c = parse_config(in);
  EXPECT_EQ(c.optim.lr, 0.1234567890123);
  EXPECT_EQ(c.run.seed, 18446744073709551615ull);
  EXPECT_EQ(c.optim.grad_clip, 0.0);  // an integer where a number is expected is fine
  json out = to_json(c);
  Config again = parse_config(json::parse(out.dump()));
  EXPECT_EQ(again, c);
  EXPECT_EQ(to_json(again), out);
  EXPECT_EQ(out["model"]["ffn"],
            json::parse(R"({"kind":"dense","activation":"swiglu","hidden":200})"));

  TempDir dir("config");
  save_config(dir / "config.json", c);
  EXPECT_EQ(load_config(dir / "config.json"), c);
}

TEST(TrainConfig, UnknownKeysNameTheirPath) {
  EXPECT_TRUE(ThrowsWith(parse(R"({"modle": {}})"), {"unknown config key 'modle'"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"model": {"dd": 3}})"), {"unknown config key 'model.dd'"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"model": {"ffn": {"hiden": 3}}})"),
                         {"unknown config key 'model.ffn.hiden'"}));
  EXPECT_TRUE(
      ThrowsWith(parse(R"({"run": {"eval": {"x": 1}}})"), {"unknown config key 'run.eval'"}));
}

TEST(TrainConfig, WrongTypesNameKeyAndType) {
  EXPECT_TRUE(ThrowsWith(parse(R"({"run": {"steps": "100"}})"),
                         {"config key 'run.steps' must be an integer, got string"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"run": {"steps": 1.5}})"),
                         {"config key 'run.steps' must be an integer, got number"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"optim": {"lr": "fast"}})"),
                         {"config key 'optim.lr' must be a number, got string"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"run": {"device": 0}})"),
                         {"config key 'run.device' must be a string, got integer"}));
  EXPECT_TRUE(
      ThrowsWith(parse(R"({"model": []})"), {"config key 'model' must be an object, got array"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"model": {"ffn": {"hidden": true}}})"),
                         {"config key 'model.ffn.hidden' must be an integer, got boolean"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"run": {"seed": -1}})"), {"'run.seed'", "non-negative"}));
  EXPECT_TRUE(ThrowsWith(parse("[]"), {"JSON object"}));
}

TEST(TrainConfig, InvalidValuesNameTheKey) {
  EXPECT_TRUE(ThrowsWith(parse(R"({"model": {"d": 130, "heads": 4}})"),
                         {"config key 'model.heads' must be a divisor of model.d = 130, got 4"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"model": {"heads": 0}})"), {"'model.heads'", "positive"}));
  EXPECT_TRUE(
      ThrowsWith(parse(R"({"model": {"layers": -2}})"), {"'model.layers'", "positive, got -2"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"model": {"ffn": {"hidden": 0}}})"),
                         {"'model.ffn.hidden'", "positive"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"model": {"ffn": {"activation": "tanh"}}})"),
                         {"'model.ffn.activation'", "relu2|gelu|swiglu", "'tanh'"}));
  EXPECT_TRUE(
      ThrowsWith(parse(R"({"model": {"ffn": {"kind": "moe"}}})"), {"'model.ffn.kind'", "'moe'"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"optim": {"name": "adam"}})"), {"'optim.name'", "adamw|sgd"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"optim": {"lr": 1e-3, "min_lr": 1e-2}})"), {"'optim.min_lr'"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"optim": {"beta2": 1}})"), {"'optim.beta2'", "[0, 1)"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"run": {"batch": 0}})"), {"'run.batch'", "positive"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"run": {"device": "tpu"}})"), {"'run.device'", "cpu|cuda"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"run": {"gemm": "mkl"}})"),
                         {"'run.gemm'", "auto|openblas|onednn", "'mkl'"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"run": {"precision": "fp16"}})"),
                         {"'run.precision'", "fp32|bf16", "'fp16'"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"run": {"precision": "bf16", "device": "cuda"}})"),
                         {"'run.precision' = 'bf16' runs on the CPU only", "run.precision=fp32"}));
#ifndef MONET_WITH_DNNL
  EXPECT_TRUE(
      ThrowsWith(parse(R"({"run": {"gemm": "onednn"}})"), {"'run.gemm'", "not in this build"}));
#endif
  // A width so large that the dense layer's default hidden = 4·d overflowed int64 (undefined
  // behaviour, reported by the sanitizer build).
  EXPECT_TRUE(ThrowsWith(parse(R"({"model": {"d": 4611686018427387904, "heads": 2}})"),
                         {"'model.d' must be at most 2305843009213693951", "4·d"}));
}

TEST(TrainConfig, Overrides) {
  json j = json::parse(R"({"run": {"steps": 5}})");
  apply_override(j, "run.steps=100");
  apply_override(j, "optim.lr=2e-3");
  apply_override(j, "run.device=cuda");  // not JSON: taken as a string
  apply_override(j, "model.ffn.activation=\"gelu\"");
  apply_override(j, "run.data=some/folder");
  Config c = parse_config(j);
  EXPECT_EQ(c.run.steps, 100);
  EXPECT_EQ(c.optim.lr, 2e-3);
  EXPECT_EQ(c.run.device, DeviceType::CUDA);
  EXPECT_EQ(c.model.ffn.params.at("activation").get<std::string>(), "gelu");
  EXPECT_EQ(c.run.data, "some/folder");
  apply_override(j, R"(model.ffn={"kind": "dense", "hidden": 64})");
  EXPECT_EQ(parse_config(j).model.ffn.params.at("hidden").get<int64_t>(), 64);

  EXPECT_TRUE(
      ThrowsWith([&] { apply_override(j, "model.dd=3"); }, {"unknown config key 'model.dd'"}));
  EXPECT_TRUE(ThrowsWith([&] { apply_override(j, "model.ffn.foo=3"); },
                         {"unknown config key 'model.ffn.foo'"}));
  EXPECT_TRUE(ThrowsWith([&] { apply_override(j, "run.steps"); }, {"'run.steps'", "key=value"}));
  apply_override(j, "run.steps=ten");  // accepted here, refused by the parser
  EXPECT_TRUE(ThrowsWith([&] { parse_config(j); }, {"'run.steps' must be an integer, got string"}));
  json bad = json::parse(R"({"model": 3})");
  EXPECT_TRUE(ThrowsWith([&] { apply_override(bad, "model.d=3"); }, {"'model' must be an object"}));
  // A value that is not JSON becomes a string, and JSON strings are UTF-8: a Latin-1 path used to
  // be accepted here and break save_config later.
  json path = json::object();
  EXPECT_TRUE(ThrowsWith([&] { apply_override(path, "run.data=/data/caf\xe9"); },
                         {"config key 'run.data' must be valid UTF-8"}));
  apply_override(path, "run.data=/data/caf\xc3\xa9");  // the same name in UTF-8
  const Config utf8 = parse_config(path);
  EXPECT_EQ(utf8.run.data, "/data/caf\xc3\xa9");
  TempDir dir("utf8");
  EXPECT_NO_THROW(save_config(dir / "config.json", utf8));
}

TEST(TrainConfig, ShippedConfigsLoad) {
  const std::string root = MONET_SOURCE_DIR;
  Config tiny = load_config(root + "/configs/tiny.json");
  EXPECT_EQ(tiny.model.d, 128);
  EXPECT_EQ(tiny.model.ffn.params.at("hidden").get<int64_t>(), 512);
  // "third_party/corpora/toy4", found from wherever the test runs (find_data).
  EXPECT_TRUE(std::filesystem::is_directory(tiny.run.data)) << tiny.run.data;
  EXPECT_EQ(std::filesystem::canonical(tiny.run.data),
            std::filesystem::canonical(root + "/third_party/corpora/toy4"));
  Config small = load_config(root + "/configs/small.json", {"run.steps=3", "optim.warmup_steps=1"});
  EXPECT_EQ(small.model.d, 256);
  EXPECT_EQ(small.model.context, 256);
  EXPECT_EQ(small.run.steps, 3);
  EXPECT_TRUE(ThrowsWith([&] { load_config(root + "/configs/tiny.json", {"model.heads=5"}); },
                         {"--set 'model.heads=5'", "'model.heads'"}));
  TempDir dir("config_file");
  write_file_atomic(dir / "bad.json", "{\"model\": ");
  EXPECT_TRUE(ThrowsWith([&] { load_config(dir / "bad.json"); }, {"bad.json", "invalid JSON"}));
}

// A relative run.data is looked up from the current directory, then from the config's folder up,
// then in the source tree; left as it is when none has it (its loader then names it).
TEST(TrainConfig, RelativeDataIsFoundNearTheConfig) {
  TempDir dir("config_find_data");
  std::filesystem::create_directories(dir / "corpora" / "mine");
  std::filesystem::create_directories(dir / "runs" / "a" / "checkpoint");
  write_file_atomic(dir / "runs" / "a" / "checkpoint" / "config.json",
                    R"({"run": {"data": "corpora/mine"}})");
  const Config c = load_config(dir / "runs" / "a" / "checkpoint" / "config.json");
  EXPECT_EQ(c.run.data, (dir / "corpora" / "mine").string());
  EXPECT_EQ(find_data("corpora/none", dir / "runs"), "corpora/none");
  EXPECT_EQ(find_data("/abs/none", dir.path()), "/abs/none");
  EXPECT_EQ(find_data("", dir.path()), "");
  // The bundled corpus from a folder that has none above it: the source tree's.
  EXPECT_EQ(
      std::filesystem::canonical(find_data("third_party/corpora/toy4", dir.path())),
      std::filesystem::canonical(std::string(MONET_SOURCE_DIR) + "/third_party/corpora/toy4"));
}

// What json::parse accepts silently is refused, a value from --set is blamed on the --set, and a
// mistyped key is answered with the nearest real one.
TEST(TrainConfig, NullDuplicatesSetsAndTyposAreNamed) {
  TempDir dir("config_strict");
  write_file_atomic(dir / "null.json", "null");
  EXPECT_TRUE(ThrowsWith([&] { load_config(dir / "null.json"); },
                         {"null.json", "must be a JSON object, got null"}));
  EXPECT_TRUE(ThrowsWith([&] { load_config(dir / "null.json", {"run.steps=3"}); },
                         {"must be a JSON object, got null"}));
  write_file_atomic(dir / "dup.json", R"({"run": {"steps": 2, "batch": 4, "steps": 3}})");
  EXPECT_TRUE(ThrowsWith([&] { load_config(dir / "dup.json"); },
                         {"dup.json", "duplicated key 'run.steps'"}));
  write_file_atomic(dir / "dup2.json", R"({"run": {}, "run": {}})");
  EXPECT_TRUE(ThrowsWith([&] { load_config(dir / "dup2.json"); }, {"duplicated key 'run'"}));
  write_file_atomic(dir / "ok.json",
                    R"({"model": {"ffn": {"kind": "peer"}}, "run": {"steps": 9}})");
  EXPECT_EQ(load_config(dir / "ok.json").run.steps, 9);  // same names in other objects are fine
  EXPECT_TRUE(ThrowsWith([&] { load_config(dir / "ok.json", {"run.steps=-3"}); },
                         {"--set 'run.steps=-3'", "'run.steps' must be positive"}));
  EXPECT_TRUE(ThrowsWith([&] { load_config(dir / "ok.json", {"model.ffn.topk=0"}); },
                         {"--set 'model.ffn.topk=0'", "'model.ffn.topk' must be positive"}));
  EXPECT_TRUE(ThrowsWith([&] { load_config(dir / "ok.json", {"model.dd=3"}); },
                         {"--set 'model.dd=3'", "(did you mean 'model.d'?)"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"optim": {"lrr": 1}})"), {"(did you mean 'optim.lr'?)"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"model": {"ffn": {"kind": "peer", "topkk": 2}}})"),
                         {"(did you mean 'model.ffn.topk'?)"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"model": {"ffn": {"kind": "monet-vd"}}})"),
                         {"(did you mean 'monet_vd'?)"}));
  EXPECT_TRUE(ThrowsWith(parse(R"({"zzzz": 1})"), {"unknown config key 'zzzz'"}));
  EXPECT_FALSE(ThrowsWith(parse(R"({"zzzz": 1})"), {"did you mean"}));  // nothing near
}

// A short run of a long run's config (warm-up 50, 10 steps) warms up over a tenth of the run
// instead of failing: the first thing nearly every new user tries (--set run.steps=50).
TEST(TrainConfig, WarmupLongerThanTheRunIsScaledToATenth) {
  Config c = parse_config(
      nlohmann::json::parse(R"({"run": {"steps": 10}, "optim": {"warmup_steps": 50}})"));
  EXPECT_EQ(c.optim.warmup_steps, 50);  // the config keeps what was written
  EXPECT_EQ(warmup_for(c), 1);
  c.run.steps = 50;
  EXPECT_EQ(warmup_for(c), 5);  // equal is too long as well
  c.run.steps = 51;
  EXPECT_EQ(warmup_for(c), 50);
  c.run.steps = 5;
  EXPECT_EQ(warmup_for(c), 0);  // no warm-up at all for a run shorter than 10 steps
}

TEST(Suggest, EditDistanceAndNearestName) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("same", "same"), 0u);
  EXPECT_EQ(edit_distance("trian", "train"), 1u);  // a swap of neighbours
  EXPECT_EQ(nearest_name("trian", {"train", "eval", "table"}), "train");
  EXPECT_EQ(nearest_name("xyz", {"train", "eval"}), "");
}

// Values nested thousands deep (a 20 KB file or one --set argument) overflowed the stack when
// copied; nesting is refused past 128 levels.
TEST(TrainConfig, DeeplyNestedJsonIsAnErrorNotACrash) {
  const std::string deep = std::string(10000, '[') + std::string(10000, ']');
  EXPECT_TRUE(ThrowsWith(
      [&] {
        parse_config_text(R"({"model": {"ffn": {"kind": "dense", "hidden": )" + deep + "}}}");
      },
      {"nested more than 128 levels"}));
  EXPECT_TRUE(ThrowsWith([&] { parse_config_text("{}", {"model.ffn.hidden=" + deep}); },
                         {"'model.ffn.hidden'", "nested more than 128 levels"}));
  const std::string ok = std::string(100, '[') + std::string(100, ']');
  EXPECT_TRUE(ThrowsWith([&] { parse_config_text("{}", {"model.ffn.hidden=" + ok}); },
                         {"'model.ffn.hidden' must be an integer, got array"}));
}

TEST(TrainConfig, ParsesTextWithOverridesAsTheFileLoaderDoes) {
  const Config c = parse_config_text(R"({"run": {"steps": 7}})", {"model.d=64", "model.heads=2"});
  EXPECT_EQ(c.run.steps, 7);
  EXPECT_EQ(c.model.d, 64);
  EXPECT_EQ(c, parse_config(to_json(c)));
  EXPECT_TRUE(ThrowsWith([] { parse_config_text("[1,", {}, "inline"); },
                         {"config 'inline': invalid JSON"}));
  EXPECT_TRUE(ThrowsWith([] { parse_config_text("{}", {"run.steps=0"}, "inline"); },
                         {"--set 'run.steps=0'", "'run.steps'"}));
}

}  // namespace
}  // namespace monet
