#include "io/safetensors_header.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <limits>
#include <set>

#include "core/check.h"

namespace ptune::io {
namespace {

using nlohmann::json;

/// Text from the file as it may appear in a message: control and non-ASCII bytes escaped as
/// \xNN (a message is one printable line whatever the file holds), cut after `limit` bytes.
std::string shown(const std::string& text, size_t limit = 200) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < text.size() && i < limit; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > limit) out += "...";
  return out;
}

StoredDtype parseDtype(const json& value, const std::string& tensor, const std::string& path) {
  PTUNE_CHECK(value.is_string(), path, ": tensor '", tensor, "' has a dtype that is not a string (",
              value.type_name(), ")");
  const auto& name = value.get_ref<const std::string&>();
  if (name == "F32") return StoredDtype::F32;
  if (name == "F16") return StoredDtype::F16;
  if (name == "BF16") return StoredDtype::BF16;
  if (name == "F64") return StoredDtype::F64;
  if (name == "I64") return StoredDtype::I64;
  if (name == "I32") return StoredDtype::I32;
  throw Error(detail::concat(path, ": tensor '", tensor, "' has dtype ", shown(name),
                             ", which ptune does not read (supported: F32, F16, BF16, F64, I64, I32)"));
}

std::string shapeText(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? "," : "") + std::to_string(shape[i]);
  return out + "]";
}

/// The shape's dimensions; throws unless it is a list of non-negative integers whose product
/// (zero dimensions counted as 1, so every stride fits too) is at most INT64_MAX.
std::vector<int64_t> parseShape(const json& value, const std::string& tensor,
                                const std::string& path) {
  PTUNE_CHECK(value.is_array(), path, ": tensor '", tensor, "' has a shape that is not a list (",
              value.type_name(), ")");
  std::vector<int64_t> shape;
  shape.reserve(value.size());
  int64_t product = 1;
  for (size_t i = 0; i < value.size(); ++i) {
    const json& dim = value[i];
    const bool valid = dim.is_number_unsigned() &&
                       dim.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    PTUNE_CHECK(valid, path, ": tensor '", tensor, "' has an invalid shape: dimension ", i, " is ",
                dim.is_number() ? shown(dim.dump()) : std::string(dim.type_name()),
                ", not a non-negative integer");
    shape.push_back(dim.get<int64_t>());
    PTUNE_CHECK(!__builtin_mul_overflow(product, std::max<int64_t>(shape.back(), 1), &product),
                path, ": tensor '", tensor, "' has shape ", shapeText(shape),
                "... whose element count overflows 64-bit integers (corrupt file)");
  }
  return shape;
}

}  // namespace

size_t elementBytes(StoredDtype dtype) {
  switch (dtype) {
    case StoredDtype::F16:
    case StoredDtype::BF16:
      return 2;
    case StoredDtype::F32:
    case StoredDtype::I32:
      return 4;
    case StoredDtype::F64:
    case StoredDtype::I64:
      return 8;
  }
  throw Error("unknown safetensors dtype");  // unreachable: every enumerator is handled above
}

SafetensorsHeader parseSafetensorsHeader(const uint8_t* bytes, size_t size,
                                         const std::string& path) {
  PTUNE_CHECK(size >= 8, path, ": file is ", size,
              " bytes, too short for a safetensors header (truncated download?)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];  // little-endian
  PTUNE_CHECK(header_len <= size - 8, path, ": header length ", header_len,
              " exceeds the file size ", size, " (corrupt or truncated file)");
  PTUNE_CHECK(header_len <= kMaxSafetensorsHeaderBytes, path, ": header length ", header_len,
              " is over the format's limit of ", kMaxSafetensorsHeaderBytes,
              " bytes (corrupt file)");
  SafetensorsHeader header;
  header.data_start = 8 + static_cast<size_t>(header_len);
  header.data_size = size - header.data_start;

  // Tensor names must be unique: JSON objects keep only the last of duplicated keys, which
  // would silently drop a tensor of the file.
  std::set<std::string> names;
  const json::parser_callback_t unique_names = [&](int depth, json::parse_event_t event,
                                                   json& parsed) {
    if (event == json::parse_event_t::key && depth == 1) {
      const auto& name = parsed.get_ref<const std::string&>();
      PTUNE_CHECK(names.insert(name).second, path, ": tensor '", shown(name),
                  "' appears twice in the header (corrupt file)");
    }
    return true;
  };
  json parsed;
  try {
    parsed = json::parse(bytes + 8, bytes + header.data_start, unique_names);
  } catch (const json::exception& e) {
    throw Error(detail::concat(path, ": header is not valid JSON (", shown(e.what(), 400),
                               "); the file is corrupt, download it again"));
  }
  PTUNE_CHECK(parsed.is_object(), path, ": header must be a JSON object, not ", parsed.type_name());

  for (const auto& [raw_name, value] : parsed.items()) {
    if (raw_name == "__metadata__") continue;
    const std::string name = shown(raw_name);
    PTUNE_CHECK(value.is_object() && value.contains("dtype") && value.contains("shape") &&
                    value.contains("data_offsets"),
                path, ": tensor '", name, "' lacks dtype, shape or data_offsets");
    TensorRecord record{};
    record.dtype = parseDtype(value["dtype"], name, path);
    record.shape = parseShape(value["shape"], name, path);
    const json& offsets = value["data_offsets"];
    PTUNE_CHECK(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
                    offsets[1].is_number_unsigned(),
                path, ": tensor '", name,
                "' has invalid data_offsets: expected [begin, end], two non-negative integers");
    const uint64_t begin = offsets[0].get<uint64_t>();
    const uint64_t end = offsets[1].get<uint64_t>();
    PTUNE_CHECK(begin <= end && end <= header.data_size, path, ": tensor '", name,
                "' data_offsets [", begin, ", ", end, "] fall outside the ", header.data_size,
                " data bytes (corrupt or truncated file)");
    record.begin = static_cast<size_t>(begin);
    record.end = static_cast<size_t>(end);
    // parseShape bounds the product by INT64_MAX; times at most 8 bytes it still fits in 128 bits.
    uint64_t numel = 1;
    for (const int64_t dim : record.shape) numel *= static_cast<uint64_t>(dim);
    uint64_t needed = 0;
    PTUNE_CHECK(!__builtin_mul_overflow(numel, elementBytes(record.dtype), &needed), path,
                ": tensor '", name, "' has shape ", shapeText(record.shape),
                " whose byte count overflows 64-bit integers (corrupt file)");
    PTUNE_CHECK(end - begin == needed, path, ": tensor '", name, "' has ", end - begin,
                " bytes but shape ", shapeText(record.shape), " needs ", needed);
    header.tensors.emplace(raw_name, std::move(record));
  }

  // No two tensors may share bytes (empty tensors occupy none).
  std::vector<std::pair<size_t, const std::string*>> starts;
  for (const auto& [name, record] : header.tensors) {
    if (record.end > record.begin) starts.emplace_back(record.begin, &name);
  }
  // By start, then by name: the message names the same pair on every run (not by address).
  std::sort(starts.begin(), starts.end(), [](const auto& x, const auto& y) {
    return x.first != y.first ? x.first < y.first : *x.second < *y.second;
  });
  for (size_t i = 1; i < starts.size(); ++i) {
    const TensorRecord& before = header.tensors.at(*starts[i - 1].second);
    const TensorRecord& after = header.tensors.at(*starts[i].second);
    PTUNE_CHECK(after.begin >= before.end, path, ": tensors '", shown(*starts[i - 1].second),
                "' [", before.begin, ", ", before.end, "] and '", shown(*starts[i].second), "' [",
                after.begin, ", ", after.end, "] overlap in the data section (corrupt file)");
  }
  return header;
}

}  // namespace ptune::io
