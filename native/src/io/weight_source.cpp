#include "io/weight_source.h"

#include <ATen/ATen.h>

#include "core/check.h"

namespace ptune::io {

at::Tensor WeightSource::load(const std::string& name, const std::vector<int64_t>& expected,
                              at::ScalarType dtype) const {
  const std::vector<int64_t> stored = shape(name);
  PTUNE_CHECK(stored == expected, fileHolding(name), ": weight '", name, "' has shape ", at::IntArrayRef(stored),
              " but config.json implies ", at::IntArrayRef(expected), "; config.json and the weights disagree");
  return load(name, dtype);
}

std::string WeightSource::firstPresent(const std::vector<std::string>& names) const {
  for (const auto& n : names) {
    if (contains(n)) return n;
  }
  return "";
}

}  // namespace ptune::io
