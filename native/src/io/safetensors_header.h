// The header of a safetensors file (https://github.com/huggingface/safetensors format), parsed and
// validated without libtorch: u64 little-endian header length N, N bytes of UTF-8 JSON
// {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then the data section.
// io::SafetensorsFile maps the file and views tensors through this table; the libFuzzer target
// (tests-native/fuzz/) feeds it arbitrary bytes, so every input ends in a table or a ptune::Error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ptune::io {

/// Element types ptune reads (the format's dtype strings F32, F16, BF16, F64, I64, I32).
enum class StoredDtype { F32, F16, BF16, F64, I64, I32 };

/// Bytes per element of dtype.
size_t elementBytes(StoredDtype dtype);

/// One tensor of the header: [begin, end) are byte offsets into the data section, and
/// end - begin == product(shape) * elementBytes(dtype).
struct TensorRecord {
  StoredDtype dtype;
  std::vector<int64_t> shape;
  size_t begin;
  size_t end;
};

/// A validated header: every tensor lies inside the data section, no two overlap, and the
/// product of each shape (zero dimensions counted as 1) fits in int64_t.
struct SafetensorsHeader {
  size_t data_start = 0;  // 8 + header length: where the data section starts in the file
  size_t data_size = 0;   // bytes from data_start to the end of the file
  std::map<std::string, TensorRecord> tensors;
};

/// Largest header accepted: the reference implementation's limit (100 MB).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

/// Parses the header of the file whose bytes are [bytes, bytes + size). Throws ptune::Error,
/// naming `path` and the problem, for anything that is not a valid safetensors file of the dtypes
/// above: too short, a header length past the end of the file or over the limit, a header that
/// is not UTF-8 JSON or not an object, a duplicated tensor name, a dtype that is not one of the
/// above, a shape that is not a list of non-negative integers or whose product overflows, offsets
/// outside the data section or overlapping another tensor's, or a byte count that does not
/// match the shape.
SafetensorsHeader parseSafetensorsHeader(const uint8_t* bytes, size_t size,
                                         const std::string& path);

}  // namespace ptune::io
