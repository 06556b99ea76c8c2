#include "train/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "util/fileio.h"
#include "util/json_value.h"

namespace monet {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors I/O copies raw memory and assumes a little-endian host");

using OrderedJson = nlohmann::ordered_json;
constexpr std::string_view kMetadataKey = "__metadata__";
constexpr uint64_t kMaxHeader = 100'000'000;  // the reference implementation's limit

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
  bool i64 = false;  // stored as I64, read as I32 (see safetensors.h)
};

bool parse_dtype(const std::string& s, DType& out, bool& i64) {
  i64 = s == "I64";
  if (i64) {
    out = DType::I32;
    return true;
  }
  for (DType t : {DType::F32, DType::F64, DType::I32, DType::BF16}) {
    if (dtype_name(t) == s) {
      out = t;
      return true;
    }
  }
  return false;
}

// One header entry, checked on its own (its place among the others is checked by the caller).
Entry parse_entry(const std::string& name, const OrderedJson& j, uint64_t data_size,
                  const std::string& where) {
  MONET_CHECK(j.is_object(), "{}: tensor '{}' is described by a {}, not an object", where, name,
              j.type_name());
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    MONET_CHECK(j.contains(key), "{}: tensor '{}' has no '{}'", where, name, key);
  }
  Entry e{name, DType::F32, {}, 0, 0};
  const OrderedJson& dt = j["dtype"];
  MONET_CHECK(dt.is_string() && parse_dtype(dt.get<std::string>(), e.dtype, e.i64),
              "{}: tensor '{}' has unsupported dtype {} (supported: F32, F64, I32, I64, BF16)",
              where, name, dt.dump());
  const OrderedJson& shape = j["shape"];
  MONET_CHECK(shape.is_array(), "{}: tensor '{}' shape must be a list, got {}", where, name,
              shape.dump());
  uint64_t numel = 1;
  bool overflow = false;
  for (const OrderedJson& d : shape) {
    MONET_CHECK(d.is_number_unsigned(), "{}: tensor '{}' shape {} must hold non-negative integers",
                where, name, shape.dump());
    const uint64_t n = d.get<uint64_t>();
    MONET_CHECK(n <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                "{}: tensor '{}' shape {} is too large", where, name, shape.dump());
    e.shape.push_back(static_cast<int64_t>(n));
    overflow = overflow || (n != 0 && numel > std::numeric_limits<uint64_t>::max() / n);
    numel = overflow ? 0 : numel * n;
  }
  const OrderedJson& off = j["data_offsets"];
  MONET_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() &&
                  off[1].is_number_unsigned() && off[0].get<uint64_t>() <= off[1].get<uint64_t>(),
              "{}: tensor '{}' data_offsets {} must be [begin, end] with 0 <= begin <= end", where,
              name, off.dump());
  e.begin = off[0].get<uint64_t>();
  e.end = off[1].get<uint64_t>();
  MONET_CHECK(e.end <= data_size,
              "{}: tensor '{}' data_offsets [{}, {}] lie outside the data region of {} bytes "
              "(truncated file?)",
              where, name, e.begin, e.end, data_size);
  const uint64_t item = e.i64 ? 8 : dtype_size(e.dtype);
  MONET_CHECK(!overflow && numel <= data_size / item && numel * item == e.end - e.begin,
              "{}: tensor '{}' shape mismatch: {} {} needs {} bytes but data_offsets [{}, {}] "
              "span {}",
              where, name, e.i64 ? "I64" : dtype_name(e.dtype), shape.dump(),
              overflow ? std::string("too many") : std::to_string(numel * item), e.begin, e.end,
              e.end - e.begin);
  return e;
}

Metadata parse_metadata(const OrderedJson& j, const std::string& where) {
  MONET_CHECK(j.is_object(), "{}: __metadata__ must be an object, got {}", where, j.type_name());
  Metadata m;
  for (const auto& [k, v] : j.items()) {
    MONET_CHECK(v.is_string(), "{}: __metadata__ value of '{}' must be a string, got {}", where, k,
                v.type_name());
    m[k] = v.get<std::string>();
  }
  return m;
}

}  // namespace

std::string encode_safetensors(const NamedTensors& tensors, const Metadata& metadata) {
  OrderedJson header = OrderedJson::object();
  if (!metadata.empty()) header[std::string(kMetadataKey)] = metadata;
  std::vector<Tensor> dense;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    MONET_CHECK(name != kMetadataKey, "safetensors: '{}' is reserved, not a tensor name", name);
    MONET_CHECK(names.insert(name).second, "safetensors: duplicate tensor name '{}'", name);
    MONET_CHECK(t.defined(), "safetensors: tensor '{}' is undefined", name);
    MONET_CHECK(!t.device().is_meta(), "safetensors: tensor '{}' is a meta tensor (no data)", name);
    dense.push_back(t.detach().to(Device::cpu()).contiguous());
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype());
    header[name] = {{"dtype", dtype_name(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');

  std::string bytes;
  bytes.reserve(8 + json.size() + offset);
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((json.size() >> (8 * i)) & 0xff));
  bytes += json;
  for (const Tensor& t : dense) {
    const size_t n = static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
    if (n > 0) bytes.append(static_cast<const char*>(t.raw_data()), n);
  }
  return bytes;
}

Safetensors decode_safetensors(std::string_view bytes, const std::string& source) {
  const std::string where = fmt::format("safetensors '{}'", source);
  MONET_CHECK(bytes.size() >= 8, "{}: file is {} bytes, shorter than the 8-byte header length",
              where, bytes.size());
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i)
    n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  MONET_CHECK(n <= bytes.size() - 8, "{}: header length {} exceeds the file ({} bytes after it)",
              where, n, bytes.size() - 8);
  MONET_CHECK(n <= kMaxHeader, "{}: header length {} is over the {}-byte limit", where, n,
              kMaxHeader);
  OrderedJson header;
  try {
    header = parse_json<OrderedJson>(bytes.substr(8, n));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: header is not valid JSON: {}", where, e.what()));
  } catch (const Error& e) {  // nested too deep
    throw Error(fmt::format("{}: header is not valid JSON: {}", where, e.what()));
  }
  MONET_CHECK(header.is_object(), "{}: header must be a JSON object, got {}", where,
              header.type_name());

  const std::string_view data = bytes.substr(8 + n);
  Safetensors out;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      out.metadata = parse_metadata(value, where);
    } else {
      entries.push_back(parse_entry(key, value, data.size(), where));
    }
  }
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  for (const Entry& e : entries) {
    MONET_CHECK(e.begin >= covered, "{}: tensor '{}' data_offsets [{}, {}] overlap another tensor",
                where, e.name, e.begin, e.end);
    MONET_CHECK(e.begin == covered, "{}: gap of {} bytes before tensor '{}' at offset {}", where,
                e.begin - covered, e.name, e.begin);
    covered = e.end;
  }
  MONET_CHECK(covered == data.size(), "{}: {} trailing bytes after the last tensor", where,
              data.size() - covered);

  for (const Entry& e : entries) {
    Tensor t = empty(e.shape, e.dtype);
    if (e.i64) {  // narrowed to I32, every value checked
      int32_t* out = t.data<int32_t>();
      for (int64_t i = 0; i < t.numel(); ++i) {
        int64_t v = 0;
        std::memcpy(&v, data.data() + e.begin + 8 * i, 8);
        MONET_CHECK(
            v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max(),
            "{}: tensor '{}' holds the I64 value {} at element {}, outside the I32 range "
            "this library reads I64 into",
            where, e.name, v, i);
        out[i] = static_cast<int32_t>(v);
      }
    } else if (e.end > e.begin) {
      std::memcpy(t.raw_data(), data.data() + e.begin, e.end - e.begin);
    }
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                      const Metadata& metadata) {
  write_file_atomic(path, encode_safetensors(tensors, metadata));
}

Safetensors load_safetensors(const std::filesystem::path& path) {
  const MappedFile file(path);  // decoded straight from the mapping: no copy of the file's bytes
  return decode_safetensors(file.bytes(), path.string());
}

}  // namespace monet
