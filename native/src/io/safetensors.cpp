#include "io/safetensors.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/check.h"

namespace ptune::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

at::ScalarType scalarType(StoredDtype dtype) {
  switch (dtype) {
    case StoredDtype::F32: return at::kFloat;
    case StoredDtype::F16: return at::kHalf;
    case StoredDtype::BF16: return at::kBFloat16;
    case StoredDtype::F64: return at::kDouble;
    case StoredDtype::I64: return at::kLong;
    case StoredDtype::I32: return at::kInt;
  }
  throw Error("unknown safetensors dtype");  // unreachable: every enumerator is handled above
}

}  // namespace

MappedFile::MappedFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  PTUNE_CHECK(fd >= 0, path, ": cannot open (", std::strerror(errno), ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw Error(detail::concat(path, ": cannot stat (", std::strerror(errno), ")"));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* mapped = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    PTUNE_CHECK(mapped != MAP_FAILED, path, ": cannot memory-map (", std::strerror(errno), ")");
    data_ = static_cast<const uint8_t*>(mapped);
  } else {
    ::close(fd);
  }
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

SafetensorsFile::SafetensorsFile(const std::string& path)
    : file_(std::make_shared<MappedFile>(path)),
      header_(parseSafetensorsHeader(file_->data(), file_->size(), path)) {}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(header_.tensors.size());
  for (const auto& [name, record] : header_.tensors) out.push_back(name);
  return out;
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const auto it = header_.tensors.find(name);
  PTUNE_CHECK(it != header_.tensors.end(), file_->path(), ": no tensor named '", name, "'");
  const TensorRecord& e = it->second;
  const auto options = at::TensorOptions().dtype(scalarType(e.dtype));
  if (e.end == e.begin) return at::empty(e.shape, options);
  auto* ptr = const_cast<uint8_t*>(file_->data() + header_.data_start + e.begin);
  std::shared_ptr<MappedFile> keep_alive = file_;
  // The tensor shares ownership of the mapping; data is read-only (MAP_PRIVATE, PROT_READ).
  return at::from_blob(
      ptr, e.shape, [keep_alive](void*) mutable { keep_alive.reset(); },
      options);
}

WeightStore::WeightStore(const std::string& model_dir) : dir_(model_dir) {
  const fs::path dir(model_dir);
  PTUNE_CHECK(fs::is_directory(dir), model_dir,
              ": not a directory; pass a Hugging Face model directory (config.json, "
              "model.safetensors)");
  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(single)) {
    files_.emplace_back(single.string());
  } else if (fs::exists(index)) {
    json parsed;
    try {
      std::ifstream in(index);
      parsed = json::parse(in);
    } catch (const json::exception& e) {
      throw Error(detail::concat(index.string(), ": not valid JSON (", e.what(), ")"));
    }
    PTUNE_CHECK(parsed.contains("weight_map") && parsed["weight_map"].is_object(),
                index.string(), ": missing the 'weight_map' object");
    std::map<std::string, size_t> shard_index;
    for (const auto& [tensor, shard] : parsed["weight_map"].items()) {
      PTUNE_CHECK(shard.is_string(), index.string(), ": weight_map entry '", tensor,
                  "' must name a shard file (a string), not ", shard.type_name());
      const std::string shard_name = shard.get<std::string>();
      // Shards lie beside the index (as transformers writes them): a path would let a
      // downloaded index read any file on the machine.
      PTUNE_CHECK(!shard_name.empty() && shard_name != "." && shard_name != ".." &&
                      shard_name.find('/') == std::string::npos &&
                      shard_name.find('\\') == std::string::npos,
                  index.string(), ": shard '", shard_name, "' (holding '", tensor,
                  "') is not a file name in the model folder; shards must lie beside the index");
      auto found = shard_index.find(shard_name);
      if (found == shard_index.end()) {
        const fs::path shard_path = dir / shard_name;
        PTUNE_CHECK(fs::exists(shard_path), index.string(), ": shard '", shard_name,
                    "' (holding '", tensor, "') is missing from ", model_dir);
        files_.emplace_back(shard_path.string());
        found = shard_index.emplace(shard_name, files_.size() - 1).first;
      }
    }
  } else {
    throw Error(detail::concat(model_dir,
                               ": no model.safetensors or model.safetensors.index.json; ptune "
                               "reads safetensors weights (convert .bin checkpoints with "
                               "save_pretrained(safe_serialization=True))"));
  }
  for (size_t i = 0; i < files_.size(); ++i) {
    for (const auto& name : files_[i].names()) where_.emplace(name, i);
  }
}

bool WeightStore::contains(const std::string& name) const { return where_.count(name) != 0; }

const SafetensorsFile& WeightStore::fileOf(const std::string& name) const {
  const auto it = where_.find(name);
  PTUNE_CHECK(it != where_.end(), dir_, ": weight '", name,
              "' not found in the safetensors files; is this the right model family?");
  return files_[it->second];
}

at::Tensor WeightStore::load(const std::string& name, at::ScalarType dtype) const {
  at::Tensor stored = fileOf(name).tensor(name);
  const auto address = reinterpret_cast<uintptr_t>(stored.data_ptr());
  if (stored.scalar_type() == dtype && address % stored.element_size() == 0) {
    return stored;  // zero copy: frozen weights are never written, the mapping stays read-only
  }
  return stored.to(dtype, /*non_blocking=*/false, /*copy=*/true).contiguous();
}

std::vector<int64_t> WeightStore::shape(const std::string& name) const {
  return fileOf(name).tensor(name).sizes().vec();
}

}  // namespace ptune::io
