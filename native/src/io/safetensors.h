// Memory-mapped safetensors reader (https://github.com/huggingface/safetensors format):
// u64 little-endian header size, JSON header {name: {dtype, shape, data_offsets}}, data.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors_header.h"
#include "io/weight_source.h"

namespace ptune::io {

/// A read-only mapping of one file; unmapped when the last tensor viewing it is gone.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

/// Tensors of one .safetensors file. Tensors alias the mapping (zero copy).
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return header_.tensors.count(name) != 0; }
  /// Zero-copy view in the stored dtype; throws naming the file when absent.
  at::Tensor tensor(const std::string& name) const;
  const std::string& path() const { return file_->path(); }

 private:
  std::shared_ptr<MappedFile> file_;
  SafetensorsHeader header_;  // validated: every tensor lies inside the mapping
};

/// All weights of a Hugging Face model directory: model.safetensors, or the shards named by
/// model.safetensors.index.json.
class WeightStore final : public WeightSource {
 public:
  explicit WeightStore(const std::string& model_dir);
  bool contains(const std::string& name) const override;
  at::Tensor load(const std::string& name, at::ScalarType dtype) const override;
  using WeightSource::load;
  std::vector<int64_t> shape(const std::string& name) const override;
  const std::string& origin() const override { return dir_; }
  std::string fileHolding(const std::string& name) const override { return fileOf(name).path(); }

 private:
  const SafetensorsFile& fileOf(const std::string& name) const;

  std::string dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index in files_
};

}  // namespace ptune::io
