// Writes the safetensors seeds of the fuzz corpus with the project's own writer, plus a few broken
// files made by hand from a header string:
//   build-asan/fuzz/fuzz_make_corpus fuzz/corpus/safetensors
// The files are committed; rerun this when the format changes.
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/tensor.h"
#include "train/safetensors.h"
#include "util/fileio.h"

namespace {

using namespace monet;
namespace fs = std::filesystem;

// A file from a literal header and data, for the layouts the writer refuses to produce.
std::string raw(std::string header, const std::string& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xff));
  return bytes + header + data;
}

void write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  write_file_atomic(dir / name, bytes);
  std::printf("%s: %zu bytes\n", (dir / name).c_str(), bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  try {
    const fs::path dir = argv[1];
    fs::create_directories(dir);
    const Tensor a = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
    const Tensor b = from_vector<double>({0.5, -1e300}, {1, 2});
    const Tensor c = from_vector<int32_t>({7, -8, 2147483647}, {3});
    const Tensor s = from_vector<float>({3.5f}, {});
    const Tensor z = empty({0, 4});
    write(dir, "valid_empty.safetensors", encode_safetensors({}));
    write(dir, "valid_f32.safetensors", encode_safetensors({{"embed.weight", a}}));
    const std::string mixed = encode_safetensors({{"w", a}, {"layers.0.x", b}, {"step.w", c}},
                                                 {{"format", "pt"}, {"step", "7"}});
    write(dir, "valid_mixed_metadata.safetensors", mixed);
    write(dir, "valid_scalar_and_empty.safetensors", encode_safetensors({{"s", s}, {"z", z}}));
    write(dir, "broken_truncated.safetensors", mixed.substr(0, mixed.size() - 4));
    std::string long_header = mixed;
    long_header[0] = static_cast<char>(0xff);
    write(dir, "broken_header_length.safetensors", long_header);
    const std::string data(24, '\1');
    write(dir, "broken_overlap.safetensors",
          raw(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
              R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
              data));
    write(dir, "broken_dtype_shape.safetensors",
          raw(R"({"a":{"dtype":"BF16","shape":[2,-3],"data_offsets":[0,24]},)"
              R"("__metadata__":{"n":1}})",
              data));
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
