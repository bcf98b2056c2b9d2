// Where a model's frozen weights come from, under their Hugging Face checkpoint names: a
// safetensors folder (io/safetensors.h) or an ONNX export mapped to those names (io/onnx.h).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ptune::io {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual bool contains(const std::string& name) const = 0;
  /// The named weight in dtype (a read-only view of the file when stored so, else a copy);
  /// throws naming the source when absent.
  virtual at::Tensor load(const std::string& name, at::ScalarType dtype) const = 0;
  /// The stored shape of a weight (throws when absent).
  virtual std::vector<int64_t> shape(const std::string& name) const = 0;
  /// The file or folder, for messages.
  virtual const std::string& origin() const = 0;
  /// The file holding a weight, for messages (origin() unless the source has several files).
  virtual std::string fileHolding(const std::string& name) const { return origin(); }

  /// Checks the stored shape against the one config.json implies, then loads.
  at::Tensor load(const std::string& name, const std::vector<int64_t>& expected, at::ScalarType dtype) const;
  /// The first of `names` that exists ("" when none): checkpoints name some weights two ways.
  std::string firstPresent(const std::vector<std::string>& names) const;
};

}  // namespace ptune::io
