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

struct DtypeInfo {
  at::ScalarType type;
  size_t bytes;
};

DtypeInfo parseDtype(const std::string& name, const std::string& tensor, const std::string& path) {
  if (name == "F32") return {at::kFloat, 4};
  if (name == "F16") return {at::kHalf, 2};
  if (name == "BF16") return {at::kBFloat16, 2};
  if (name == "F64") return {at::kDouble, 8};
  if (name == "I64") return {at::kLong, 8};
  if (name == "I32") return {at::kInt, 4};
  throw Error(detail::concat(path, ": tensor '", tensor, "' has dtype ", name,
                             ", which ptune does not read (supported: F32, F16, BF16, F64, I64, I32)"));
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
    : file_(std::make_shared<MappedFile>(path)) {
  const size_t size = file_->size();
  PTUNE_CHECK(size >= 8, path, ": file is ", size,
              " bytes, too short for a safetensors header (truncated download?)");
  uint64_t header_len = 0;
  std::memcpy(&header_len, file_->data(), 8);  // little-endian on every platform we build for
  PTUNE_CHECK(header_len <= size - 8, path, ": header length ", header_len,
              " exceeds the file size ", size, " (corrupt or truncated file)");
  data_start_ = 8 + static_cast<size_t>(header_len);
  const size_t data_size = size - data_start_;

  json header;
  try {
    header = json::parse(file_->data() + 8, file_->data() + data_start_);
  } catch (const json::exception& e) {
    throw Error(detail::concat(path, ": header is not valid JSON (", e.what(),
                               "); the file is corrupt, download it again"));
  }
  PTUNE_CHECK(header.is_object(), path, ": header must be a JSON object");

  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") continue;
    PTUNE_CHECK(value.is_object() && value.contains("dtype") && value.contains("shape") &&
                    value.contains("data_offsets"),
                path, ": tensor '", name, "' lacks dtype, shape or data_offsets");
    Entry entry{};
    const DtypeInfo dtype = parseDtype(value["dtype"].get<std::string>(), name, path);
    entry.dtype = dtype.type;
    size_t numel = 1;
    for (const auto& dim : value["shape"]) {
      PTUNE_CHECK(dim.is_number_integer() && dim.get<int64_t>() >= 0, path, ": tensor '", name,
                  "' has an invalid shape ", value["shape"].dump());
      entry.shape.push_back(dim.get<int64_t>());
      numel *= static_cast<size_t>(dim.get<int64_t>());
    }
    const auto& offsets = value["data_offsets"];
    PTUNE_CHECK(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
                    offsets[1].is_number_unsigned(),
                path, ": tensor '", name, "' has invalid data_offsets ", offsets.dump());
    entry.begin = offsets[0].get<size_t>();
    entry.end = offsets[1].get<size_t>();
    PTUNE_CHECK(entry.begin <= entry.end && entry.end <= data_size, path, ": tensor '", name,
                "' data_offsets [", entry.begin, ", ", entry.end, "] fall outside the ",
                data_size, " data bytes (corrupt or truncated file)");
    PTUNE_CHECK(entry.end - entry.begin == numel * dtype.bytes, path, ": tensor '", name,
                "' has ", entry.end - entry.begin, " bytes but shape ", value["shape"].dump(),
                " needs ", numel * dtype.bytes);
    entries_.emplace(name, std::move(entry));
  }
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [name, entry] : entries_) out.push_back(name);
  return out;
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const auto it = entries_.find(name);
  PTUNE_CHECK(it != entries_.end(), file_->path(), ": no tensor named '", name, "'");
  const Entry& e = it->second;
  if (e.end == e.begin) return at::empty(e.shape, at::TensorOptions().dtype(e.dtype));
  auto* ptr = const_cast<uint8_t*>(file_->data() + data_start_ + e.begin);
  std::shared_ptr<MappedFile> keep_alive = file_;
  // The tensor shares ownership of the mapping; data is read-only (MAP_PRIVATE, PROT_READ).
  return at::from_blob(
      ptr, e.shape, [keep_alive](void*) mutable { keep_alive.reset(); },
      at::TensorOptions().dtype(e.dtype));
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
      const std::string shard_name = shard.get<std::string>();
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
