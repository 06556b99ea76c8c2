#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/ops.h"
#include "core/random.h"
#include "test_train_util.h"
#include "train/safetensors.h"
#include "train/safetensors_index.h"
#include "util/fileio.h"

namespace monet {
namespace {

using testing::TempDir;
using testing::ThrowsWith;

// 8-byte little-endian length, the header text as given, then the data bytes.
std::string file_bytes(const std::string& header, const std::string& data) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xff));
  return out + header + data;
}

template <class T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

TEST(TrainSafetensors, RoundTripEveryDtypeWithMetadata) {
  TempDir dir("st_roundtrip");
  Generator g(3);
  NamedTensors in = {
      {"w.f32", randn({2, 3}, g)},
      {"b.f64", randn({4}, g, DType::F64)},
      {"ids.i32", from_vector<int32_t>({1, -2, 3, 2147483647, -2147483647, 0}, {3, 2})},
      {"scalar", scalar(3.25)},
      {"empty.f32", zeros({0, 5})},
      {"empty.i32", zeros({0}, DType::I32)},
      {"view.t", randn({3, 4}, g).transpose(0, 1)},  // non-contiguous: saved row-major
      {"scalar.i32", scalar(-7, DType::I32)},
      {"w.bf16", randn({3, 2}, g).to(DType::BF16)},  // storage only: 2 bytes an element
  };
  const Metadata meta = {{"format", "pt"}, {"step", "12"}};
  const auto path = dir / "m.safetensors";
  save_safetensors(path, in, meta);

  const std::string bytes = read_file(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);  // space-padded as the reference does
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(header["__metadata__"]["step"], "12");
  EXPECT_EQ(header["w.f32"]["data_offsets"], nlohmann::json({0, 24}));
  EXPECT_EQ(header["scalar"]["shape"], nlohmann::json::array());
  EXPECT_EQ(header["w.bf16"]["dtype"], "BF16");
  EXPECT_EQ(header["w.bf16"]["data_offsets"][1].get<int>() -
                header["w.bf16"]["data_offsets"][0].get<int>(),
            12);

  Safetensors out = load_safetensors(path);
  EXPECT_EQ(out.metadata, meta);
  ASSERT_EQ(out.tensors.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const auto& [name, t] = out.tensors[i];
    SCOPED_TRACE(name);
    EXPECT_EQ(name, in[i].first);  // the order given
    EXPECT_EQ(t.shape(), in[i].second.shape());
    EXPECT_EQ(t.dtype(), in[i].second.dtype());
    EXPECT_TRUE(t.device().is_cpu());
    if (t.dtype() == DType::I32) {
      EXPECT_EQ(t.to_vector<int32_t>(), in[i].second.to_vector<int32_t>());
    } else if (t.dtype() == DType::BF16) {
      EXPECT_EQ(t.to(DType::F32).to_vector<float>(),
                in[i].second.to(DType::F32).to_vector<float>());
    } else {
      EXPECT_EQ(t.to_vector<double>(), in[i].second.to_vector<double>());  // bit-exact
    }
  }
  EXPECT_EQ(out.tensors[3].second.item(), 3.25);
  // Encoding what was loaded gives the same bytes.
  EXPECT_EQ(encode_safetensors(out.tensors, out.metadata), bytes);
}

// bfloat16 bits as another writer (PyTorch's safetensors) stores them: the top half of a float32.
TEST(TrainSafetensors, ReadsBf16BitsWrittenByHand) {
  TempDir dir("st_bf16");
  const auto path = dir / "h.safetensors";
  const std::vector<uint16_t> bits = {0x3f80, 0xc020, 0x0000, 0x7f80};  // 1, -2.5, 0, +inf
  write_file_atomic(
      path, file_bytes(R"({"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}})", raw(bits)));
  Safetensors st = load_safetensors(path);
  ASSERT_EQ(st.tensors.size(), 1u);
  const Tensor& w = st.tensors[0].second;
  EXPECT_EQ(w.dtype(), DType::BF16);
  EXPECT_EQ(w.to(DType::F32).to_vector<float>(),
            (std::vector<float>{1.0f, -2.5f, 0.0f, std::numeric_limits<float>::infinity()}));
}

TEST(TrainSafetensors, LoadsAFileWrittenByHand) {
  TempDir dir("st_hand");
  const std::string header =
      R"({"b":{"dtype":"I32","shape":[2],"data_offsets":[8,16]},)"
      R"("a":{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]},"__metadata__":{"k":"v"}})";
  const std::string data = raw(std::vector<float>{1.5f, -2.0f}) + raw(std::vector<int32_t>{7, -3});
  const auto path = dir / "hand.safetensors";
  {
    std::ofstream f(path, std::ios::binary);
    f << file_bytes(header, data);  // no padding: any header length must load
  }
  Safetensors st = load_safetensors(path);
  ASSERT_EQ(st.tensors.size(), 2u);
  EXPECT_EQ(st.tensors[0].first, "a");  // data order, not header order
  EXPECT_EQ(st.tensors[0].second.shape(), (Shape{2, 1}));
  EXPECT_EQ(st.tensors[0].second.to_vector<float>(), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(st.tensors[1].first, "b");
  EXPECT_EQ(st.tensors[1].second.to_vector<int32_t>(), (std::vector<int32_t>{7, -3}));
  EXPECT_EQ(st.metadata.at("k"), "v");
}

// PyTorch saves counters (BatchNorm's num_batches_tracked) as I64 scalars: read as I32, and a
// value outside its range is refused by name.
TEST(TrainSafetensors, ReadsI64AsI32AndRefusesWhatDoesNotFit) {
  const std::string h = R"({"n":{"dtype":"I64","shape":[],"data_offsets":[0,8]},)"
                        R"("m":{"dtype":"I64","shape":[2],"data_offsets":[8,24]}})";
  Safetensors st =
      decode_safetensors(file_bytes(h, raw(std::vector<int64_t>{1000, -7, 2147483647})), "f.st");
  ASSERT_EQ(st.tensors.size(), 2u);
  EXPECT_EQ(st.tensors[0].second.dtype(), DType::I32);
  EXPECT_EQ(st.tensors[0].second.shape(), Shape{});
  EXPECT_EQ(st.tensors[0].second.to_vector<int32_t>(), std::vector<int32_t>{1000});
  EXPECT_EQ(st.tensors[1].second.to_vector<int32_t>(), (std::vector<int32_t>{-7, 2147483647}));
  EXPECT_TRUE(ThrowsWith(
      [&] {
        decode_safetensors(file_bytes(h, raw(std::vector<int64_t>{1, 2, int64_t{1} << 40})),
                           "f.st");
      },
      {"f.st", "'m'", "I64 value 1099511627776", "element 1", "I32 range"}));
}

// A header of tensor entries.
std::string header(std::initializer_list<std::string> entries) {
  return fmt::format("{{{}}}", fmt::join(entries, ","));
}

// One tensor entry of a header.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  int begin, int end) {
  return fmt::format(R"("{}":{{"dtype":"{}","shape":{},"data_offsets":[{},{}]}})", name, dtype,
                     shape, begin, end);
}

TEST(TrainSafetensors, RefusesCorruptFiles) {
  const std::string d8(8, '\0'), d12(12, '\0');
  auto decode = [](const std::string& bytes) {
    return [bytes] { decode_safetensors(bytes, "f.st"); };
  };
  EXPECT_TRUE(ThrowsWith(decode("abc"), {"f.st", "shorter than the 8-byte"}));
  EXPECT_TRUE(ThrowsWith(decode(file_bytes("{}", "").substr(0, 8) + "{"), {"exceeds the file"}));
  std::string huge = file_bytes("{}", "");
  huge[7] = 1;  // length 2^56 + 2
  EXPECT_TRUE(ThrowsWith(decode(huge), {"header length", "exceeds"}));
  EXPECT_TRUE(ThrowsWith(decode(file_bytes("{not json", "")), {"not valid JSON"}));
  EXPECT_TRUE(ThrowsWith(decode(file_bytes("[1, 2]", "")), {"JSON object"}));
  EXPECT_TRUE(
      ThrowsWith(decode(file_bytes(header({entry("x", "F16", "[4]", 0, 8)}), d8)),
                 {"'x'", "unsupported dtype", "F16", "supported: F32, F64, I32, I64, BF16"}));
  EXPECT_TRUE(ThrowsWith(decode(file_bytes(header({entry("x", "F32", "[3]", 0, 8)}), d8)),
                         {"'x'", "shape mismatch", "needs 12 bytes"}));
  EXPECT_TRUE(ThrowsWith(decode(file_bytes(header({entry("x", "F32", "[-2]", 0, 8)}), d8)),
                         {"non-negative"}));
  EXPECT_TRUE(ThrowsWith(decode(file_bytes(header({entry("x", "F32", "[2]", 8, 16)}), d8)),
                         {"'x'", "outside the data region of 8 bytes"}));
  EXPECT_TRUE(ThrowsWith(decode(file_bytes(header({entry("x", "F32", "[2]", 8, 0)}), d8)),
                         {"data_offsets", "begin <= end"}));
  EXPECT_TRUE(ThrowsWith(
      decode(file_bytes(header({entry("a", "F32", "[2]", 0, 8), entry("b", "F32", "[2]", 4, 12)}),
                        d12)),
      {"'b'", "overlap"}));
  EXPECT_TRUE(ThrowsWith(
      decode(file_bytes(header({entry("a", "F32", "[1]", 0, 4), entry("b", "F32", "[1]", 8, 12)}),
                        d12)),
      {"gap of 4 bytes", "'b'"}));
  EXPECT_TRUE(ThrowsWith(decode(file_bytes(header({entry("x", "F32", "[2]", 0, 8)}), d12)),
                         {"4 trailing bytes"}));
  EXPECT_TRUE(ThrowsWith(decode(file_bytes(R"({"x":{"shape":[1],"data_offsets":[0,4]}})", d8)),
                         {"'x'", "no 'dtype'"}));
  EXPECT_TRUE(ThrowsWith(decode(file_bytes(R"({"__metadata__":{"k":1}})", "")),
                         {"__metadata__", "'k'", "string"}));
  const std::string huge_shape = "[4294967296, 4294967296, 4294967296]";
  EXPECT_TRUE(ThrowsWith(decode(file_bytes(header({entry("x", "F32", huge_shape, 0, 8)}), d8)),
                         {"shape mismatch"}));
  // A shape nested 10000 deep (a 20 KB header): the error message's dump of it recursed once per
  // level and overflowed the stack. Nesting is refused past 128 levels, at parse time.
  auto nested = [](int levels) { return std::string(levels, '[') + std::string(levels, ']'); };
  EXPECT_TRUE(ThrowsWith(decode(file_bytes(header({entry("x", "F32", nested(10000), 0, 8)}), d8)),
                         {"f.st", "not valid JSON", "nested more than 128 levels"}));
  EXPECT_TRUE(ThrowsWith(decode(file_bytes(header({entry("x", "F32", nested(100), 0, 8)}), d8)),
                         {"'x'", "non-negative integers"}));
}

TEST(TrainSafetensors, RefusesATruncatedFileNamingIt) {
  TempDir dir("st_trunc");
  const auto path = dir / "cut.safetensors";
  save_safetensors(path, {{"w", ones({4, 4})}});
  const std::string full = read_file(path);
  write_file_atomic(path, full.substr(0, full.size() - 4));
  EXPECT_TRUE(ThrowsWith([&] { load_safetensors(path); }, {path.string(), "'w'", "truncated"}));
  write_file_atomic(path, full.substr(0, 20));  // inside the header
  EXPECT_TRUE(ThrowsWith([&] { load_safetensors(path); }, {path.string(), "exceeds the file"}));
  EXPECT_TRUE(
      ThrowsWith([&] { load_safetensors(dir / "absent.safetensors"); }, {"absent.safetensors"}));
}

TEST(TrainSafetensors, RefusesBadInputsToSave) {
  EXPECT_TRUE(ThrowsWith(
      [] {
        encode_safetensors({{"a", ones({1})}, {"a", ones({1})}});
      },
      {"duplicate", "'a'"}));
  EXPECT_TRUE(ThrowsWith([] { encode_safetensors({{"__metadata__", ones({1})}}); }, {"reserved"}));
  EXPECT_TRUE(ThrowsWith([] { encode_safetensors({{"u", Tensor()}}); }, {"'u'", "undefined"}));
}

}  // namespace
}  // namespace monet

namespace monet {
namespace {

// Two shards and their index, as Hugging Face writes a large checkpoint.
void write_shards(const std::filesystem::path& dir, Generator& g) {
  save_safetensors(dir / "model-00001-of-00002.safetensors",
                   {{"a.weight", randn({2, 3}, g)}, {"b.weight", randn({4}, g).to(DType::BF16)}});
  save_safetensors(dir / "model-00002-of-00002.safetensors", {{"c.bias", randn({3}, g)}});
  write_file_atomic(dir / "model.safetensors.index.json",
                    R"({"metadata": {"total_size": 44}, "weight_map": {
                         "c.bias": "model-00002-of-00002.safetensors",
                         "a.weight": "model-00001-of-00002.safetensors",
                         "b.weight": "model-00001-of-00002.safetensors"}})");
}

TEST(TrainSafetensors, ShardedCheckpointLoadsEveryTensorOfItsIndex) {
  TempDir dir("st_sharded");
  Generator g(5);
  write_shards(dir.path(), g);
  const Safetensors st = load_model_safetensors(dir.path());
  ASSERT_EQ(st.tensors.size(), 3u);
  EXPECT_EQ(st.tensors[0].first, "a.weight");  // name order
  EXPECT_EQ(st.tensors[1].second.dtype(), DType::BF16);
  EXPECT_EQ(st.tensors[2].first, "c.bias");
  EXPECT_EQ(st.tensors[2].second.shape(), (Shape{3}));
  EXPECT_EQ(st.metadata.at("total_size"), "44");
  // The same tensors as each shard holds them.
  const Safetensors one = load_safetensors(dir / "model-00002-of-00002.safetensors");
  EXPECT_EQ(st.tensors[2].second.to_vector<float>(), one.tensors[0].second.to_vector<float>());
  // Shard by shard (in the order the index, read with sorted keys, first names each), each with
  // its own tensors only.
  std::vector<std::vector<std::string>> visits;
  for_each_model_shard(dir.path(), [&](NamedTensors&& shard) {
    visits.emplace_back();
    for (const auto& [name, t] : shard) visits.back().push_back(name);
  });
  EXPECT_EQ(visits, (std::vector<std::vector<std::string>>{{"a.weight", "b.weight"}, {"c.bias"}}));
}

TEST(TrainSafetensors, ShardedCheckpointErrorsNameTheIndexShardAndTensor) {
  TempDir dir("st_sharded_bad");
  Generator g(6);
  write_shards(dir.path(), g);
  const auto index = dir / "model.safetensors.index.json";
  auto with_map = [&](const std::string& map) {
    write_file_atomic(index, R"({"weight_map": )" + map + "}");
    return [&] { load_model_safetensors(dir.path()); };
  };
  const std::string s1 = "model-00001-of-00002.safetensors",
                    s2 = "model-00002-of-00002.safetensors";
  EXPECT_TRUE(
      ThrowsWith(with_map(R"({"a.weight": ")" + s1 + R"(", "b.weight": ")" + s1 +
                          R"(", "c.bias": "model-00009.safetensors"})"),
                 {"index.json", "shard 'model-00009.safetensors'", "'c.bias'", "does not exist"}));
  EXPECT_TRUE(ThrowsWith(with_map(R"({"a.weight": ")" + s1 + R"(", "b.weight": ")" + s1 +
                                  R"(", "c.bias": ")" + s2 + R"(", "d.weight": ")" + s2 + R"("})"),
                         {"tensor 'd.weight' is not in its shard", s2}));
  EXPECT_TRUE(ThrowsWith(with_map(R"({"a.weight": ")" + s1 + R"(", "c.bias": ")" + s2 + R"("})"),
                         {"shard '" + s1 + "' holds tensor 'b.weight'", "does not map"}));
  EXPECT_TRUE(ThrowsWith(with_map(R"({"a.weight": "../x.safetensors"})"),
                         {"'../x.safetensors'", "not a file name"}));
  EXPECT_TRUE(ThrowsWith(with_map(R"({"a.weight": ")" + s1 + R"(", "a.weight": ")" + s1 + R"("})"),
                         {"duplicated key 'weight_map.a.weight'"}));
  EXPECT_TRUE(ThrowsWith(with_map("[]"), {"no \"weight_map\" object"}));
  std::filesystem::remove(index);
  EXPECT_TRUE(ThrowsWith([&] { load_model_safetensors(dir.path()); },
                         {"neither model.safetensors nor model.safetensors.index.json"}));
}

}  // namespace
}  // namespace monet
