// libFuzzer target for the safetensors header parser (native/src/io/safetensors_header.cpp).
// Every input must end in a validated table or in a ptune::Error (the exception the façade passes
// to Java as a PtuneException); a crash, a sanitizer report, a leak, another exception type or a
// table that breaks the parser's promises is a bug. Built and run by toolchains/fuzz-native.sh.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "core/check.h"
#include "io/safetensors_header.h"

namespace {

[[noreturn]] void broken(const std::string& name, const char* promise) {
  std::fprintf(stderr, "safetensors_header_fuzz: tensor '%s' breaks the promise: %s\n",
               name.c_str(), promise);
  std::abort();
}

/// The guarantees SafetensorsFile relies on to view the mapping without further checks.
void checkTable(const ptune::io::SafetensorsHeader& header, size_t size) {
  if (header.data_start < 8 || header.data_start > size ||
      header.data_size != size - header.data_start) {
    broken("", "data section inside the file");
  }
  std::vector<std::pair<size_t, size_t>> spans;
  for (const auto& [name, t] : header.tensors) {
    if (!(t.begin <= t.end && t.end <= header.data_size)) broken(name, "offsets inside the data");
    uint64_t numel = 1;
    for (const int64_t dim : t.shape) {
      if (dim < 0) broken(name, "non-negative dimensions");
      if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(dim)) {
        broken(name, "element count without overflow");
      }
      numel *= static_cast<uint64_t>(dim);
    }
    if (numel * ptune::io::elementBytes(t.dtype) != t.end - t.begin) {
      broken(name, "byte count equal to shape x dtype size");
    }
    if (t.end > t.begin) spans.emplace_back(t.begin, t.end);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    if (spans[i].first < spans[i - 1].second) broken("", "no two tensors overlap");
  }
}

/// Parses one file image; returns normally on a table or a ptune::Error naming the file.
void parse(const uint8_t* data, size_t size) {
  try {
    const auto header = ptune::io::parseSafetensorsHeader(data, size, "fuzz.safetensors");
    checkTable(header, size);
  } catch (const ptune::Error& e) {
    if (std::string(e.what()).rfind("fuzz.safetensors: ", 0) != 0) {
      std::fprintf(stderr, "safetensors_header_fuzz: message without the file name: %s\n",
                   e.what());
      std::abort();
    }
  }
  // Any other exception escapes, and libFuzzer reports it as a crash.
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // 1. The input as a file: mostly exercises the length prefix (random lengths rarely fit).
  parse(data, size);
  // 2. The same bytes with the length prefix folded into the file (length mod (size - 7)), so
  //    that most inputs reach the JSON header and its validation.
  if (size >= 8) {
    std::vector<uint8_t> file(data, data + size);
    uint64_t declared = 0;
    for (int i = 7; i >= 0; --i) declared = (declared << 8) | file[static_cast<size_t>(i)];
    const uint64_t fitted = declared % (static_cast<uint64_t>(size) - 7);
    for (int i = 0; i < 8; ++i) file[static_cast<size_t>(i)] = static_cast<uint8_t>(fitted >> (8 * i));
    parse(file.data(), file.size());
  }
  return 0;
}
