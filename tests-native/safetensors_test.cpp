// Safetensors reader: files written here by hand (u64 LE header length + JSON header + data),
// read back through io::SafetensorsFile and io::WeightStore; every malformed file must fail with
// a ptune::Error that names the file and the problem.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/check.h"
#include "io/safetensors.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using ptune::io::SafetensorsFile;
using ptune::io::WeightStore;
using ptune_test::thrownMessage;

/// Raw little-endian bytes of a vector of trivially copyable values.
template <typename T>
std::string bytesOf(const std::vector<T>& values) {
  std::string out(values.size() * sizeof(T), '\0');
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

/// A safetensors file: 8-byte little-endian header length, the header text, the data bytes.
std::string safetensorsBytes(const std::string& header, const std::string& data) {
  const uint64_t len = header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((len >> (8 * i)) & 0xff);
  return out + header + data;
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "ptune-st-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  std::string write(const std::string& name, const std::string& bytes) {
    const fs::path path = fs::path(dir_) / name;
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path.string();
  }

  /// Message of the ptune::Error thrown when opening path.
  static std::string openError(const std::string& path) {
    return thrownMessage<ptune::Error>([&] { SafetensorsFile file(path); });
  }

  std::string dir_;
};

TEST_F(SafetensorsTest, ReadsF32F16Bf16Exactly) {
  // a: F32 (2, 3); h: F16 (5); b: BF16 (2, 2); header of 7 bytes mod 8 to test unaligned data.
  const std::vector<float> f32 = {1.5f, -2.25f, 3.0e-8f, 65504.0f, -0.0f, 1.0f / 3.0f};
  // 1, -2, 0.5, 65504 (max half), 2^-24 (smallest subnormal)
  const std::vector<uint16_t> f16 = {0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001};
  const std::vector<float> f16_expect = {1.0f, -2.0f, 0.5f, 65504.0f, 5.9604644775390625e-8f};
  // bf16 is the top half of an fp32: 1, -2, 3.140625, 0x3A83 -> 0x3A830000
  const std::vector<uint16_t> bf16 = {0x3F80, 0xC000, 0x4049, 0x3A83};
  std::vector<float> bf16_expect;
  for (uint16_t bits : bf16) {
    const uint32_t wide = static_cast<uint32_t>(bits) << 16;
    float value;
    std::memcpy(&value, &wide, 4);
    bf16_expect.push_back(value);
  }
  const std::string data = bytesOf(f32) + bytesOf(f16) + bytesOf(bf16);
  std::string header =
      R"({"__metadata__":{"format":"pt"},)"
      R"("a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("h":{"dtype":"F16","shape":[5],"data_offsets":[24,34]},)"
      R"("b":{"dtype":"BF16","shape":[2,2],"data_offsets":[34,42]}})";
  while (header.size() % 8 != 7) header += ' ';
  const std::string path = write("mixed.safetensors", safetensorsBytes(header, data));

  SafetensorsFile file(path);
  EXPECT_EQ(file.names(), (std::vector<std::string>{"a", "b", "h"}));  // __metadata__ skipped
  EXPECT_TRUE(file.contains("h"));
  EXPECT_FALSE(file.contains("__metadata__"));

  const at::Tensor a = file.tensor("a");
  EXPECT_EQ(a.scalar_type(), at::kFloat);
  EXPECT_EQ(a.sizes().vec(), (std::vector<int64_t>{2, 3}));
  const at::Tensor a_copy = a.contiguous().clone();  // unaligned view: read through a copy
  for (int i = 0; i < 6; ++i) {
    float got;
    std::memcpy(&got, static_cast<const char*>(a_copy.data_ptr()) + 4 * i, 4);
    EXPECT_EQ(std::memcmp(&got, &f32[static_cast<size_t>(i)], 4), 0) << "a[" << i << "]";
  }

  const at::Tensor h = file.tensor("h");
  EXPECT_EQ(h.scalar_type(), at::kHalf);
  const at::Tensor b = file.tensor("b");
  EXPECT_EQ(b.scalar_type(), at::kBFloat16);
  EXPECT_EQ(b.sizes().vec(), (std::vector<int64_t>{2, 2}));

  // The store converts to the requested dtype; every value must come out bit-exact.
  fs::rename(path, fs::path(dir_) / "model.safetensors");
  const WeightStore store(dir_);
  const at::Tensor a32 = store.load("a", {2, 3}, at::kFloat).contiguous();
  const at::Tensor h32 = store.load("h", {5}, at::kFloat).contiguous();
  const at::Tensor b32 = store.load("b", at::kFloat).contiguous();
  for (size_t i = 0; i < f32.size(); ++i) {
    EXPECT_EQ(std::memcmp(a32.data_ptr<float>() + i, &f32[i], 4), 0) << "a[" << i << "]";
  }
  for (size_t i = 0; i < f16_expect.size(); ++i) {
    EXPECT_EQ(h32.data_ptr<float>()[i], f16_expect[i]) << "h[" << i << "]";
  }
  for (size_t i = 0; i < bf16_expect.size(); ++i) {
    EXPECT_EQ(b32.data_ptr<float>()[i], bf16_expect[i]) << "b[" << i << "]";
  }
  EXPECT_EQ(bf16_expect[2], 3.140625f);
  const at::Tensor b64 = store.load("b", at::kDouble);
  EXPECT_EQ(b64.scalar_type(), at::kDouble);
  EXPECT_EQ(b64.view({-1})[1].item<double>(), -2.0);

  const std::string wrong_shape =
      thrownMessage<ptune::Error>([&] { store.load("a", {3, 2}, at::kFloat); });
  EXPECT_NE(wrong_shape.find("model.safetensors"), std::string::npos) << wrong_shape;
  EXPECT_NE(wrong_shape.find("'a' has shape"), std::string::npos) << wrong_shape;
}

TEST_F(SafetensorsTest, AlignedF32LoadsWithoutCopyAndOutlivesStore) {
  const std::vector<float> values = {0.25f, -4.0f, 7.5f, 9.0f};
  std::string header = R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  while (header.size() % 8 != 0) header += ' ';
  write("model.safetensors", safetensorsBytes(header, bytesOf(values)));
  at::Tensor w;
  {
    const WeightStore store(dir_);
    w = store.load("w", at::kFloat);
  }
  // The mapping stays alive as long as the tensor does.
  ASSERT_EQ(w.numel(), 4);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(w[i].item<float>(), values[static_cast<size_t>(i)]);
}

TEST_F(SafetensorsTest, ShardedIndexWithTwoShards) {
  const std::vector<float> first = {1.0f, 2.0f, 3.0f, 4.0f};
  const std::vector<float> second = {-1.0f, -2.0f};
  const std::vector<uint16_t> half = {0x4000};  // 2.0
  write("model-00001-of-00002.safetensors",
        safetensorsBytes(R"({"layer.0.w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})",
                         bytesOf(first)));
  write("model-00002-of-00002.safetensors",
        safetensorsBytes(R"({"layer.1.w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("norm":{"dtype":"F16","shape":[1],"data_offsets":[8,10]}})",
                         bytesOf(second) + bytesOf(half)));
  write("model.safetensors.index.json",
        R"({"metadata":{"total_size":26},"weight_map":{)"
        R"("layer.0.w":"model-00001-of-00002.safetensors",)"
        R"("layer.1.w":"model-00002-of-00002.safetensors",)"
        R"("norm":"model-00002-of-00002.safetensors"}})");
  const WeightStore store(dir_);
  EXPECT_TRUE(store.contains("layer.0.w"));
  EXPECT_TRUE(store.contains("layer.1.w"));
  EXPECT_TRUE(store.contains("norm"));
  EXPECT_FALSE(store.contains("layer.2.w"));
  const at::Tensor w0 = store.load("layer.0.w", {2, 2}, at::kFloat);
  EXPECT_EQ(w0[1][0].item<float>(), 3.0f);
  EXPECT_EQ(w0[1][1].item<float>(), 4.0f);
  const at::Tensor w1 = store.load("layer.1.w", {2}, at::kFloat);
  EXPECT_EQ(w1[0].item<float>(), -1.0f);
  EXPECT_EQ(w1[1].item<float>(), -2.0f);
  EXPECT_EQ(store.load("norm", {1}, at::kFloat)[0].item<float>(), 2.0f);
}

TEST_F(SafetensorsTest, TruncatedFileShorterThanHeaderLength) {
  const std::string path = write("short.safetensors", std::string("\x10\x00\x00", 3));
  const std::string message = openError(path);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("3 bytes, too short"), std::string::npos) << message;
}

TEST_F(SafetensorsTest, HeaderLengthBeyondFileSize) {
  std::string bytes = safetensorsBytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                                       std::string(4, '\0'));
  bytes[0] = static_cast<char>(0xff);  // header length 255 + the real upper bytes > file size
  bytes[1] = static_cast<char>(0x7f);
  const std::string path = write("long_header.safetensors", bytes);
  const std::string message = openError(path);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("header length 32767 exceeds the file size"), std::string::npos) << message;
  // The largest u64 must not wrap around in the bounds check either.
  for (int i = 0; i < 8; ++i) bytes[static_cast<size_t>(i)] = static_cast<char>(0xff);
  const std::string huge = write("huge_header.safetensors", bytes);
  EXPECT_NE(openError(huge).find("exceeds the file size"), std::string::npos) << openError(huge);
}

TEST_F(SafetensorsTest, InvalidJson) {
  const std::string path =
      write("bad_json.safetensors",
            safetensorsBytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})",  // no '}'
                             std::string(4, '\0')));
  const std::string message = openError(path);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("header is not valid JSON"), std::string::npos) << message;
}

TEST_F(SafetensorsTest, OffsetsOutOfRange) {
  const std::string path =
      write("offsets.safetensors",
            safetensorsBytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                             std::string(8, '\0')));
  const std::string message = openError(path);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("tensor 'w' data_offsets [4, 12] fall outside the 8 data bytes"),
            std::string::npos)
      << message;
  // begin > end is rejected as well
  const std::string reversed =
      write("reversed.safetensors",
            safetensorsBytes(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})",
                             std::string(8, '\0')));
  EXPECT_NE(openError(reversed).find("fall outside"), std::string::npos) << openError(reversed);
}

TEST_F(SafetensorsTest, ByteSizeNotMatchingShape) {
  const std::string path =
      write("size.safetensors",
            safetensorsBytes(R"({"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,8]}})",
                             std::string(8, '\0')));
  const std::string message = openError(path);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("tensor 'w' has 8 bytes but shape [2,3] needs 12"), std::string::npos)
      << message;
}

TEST_F(SafetensorsTest, UnknownDtype) {
  const std::string path =
      write("dtype.safetensors",
            safetensorsBytes(R"({"q":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})",
                             std::string(4, '\0')));
  const std::string message = openError(path);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("tensor 'q' has dtype F8_E4M3"), std::string::npos) << message;
  EXPECT_NE(message.find("supported: F32, F16, BF16"), std::string::npos) << message;
}

TEST_F(SafetensorsTest, MissingShard) {
  write("model-00001-of-00002.safetensors",
        safetensorsBytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                         std::string(4, '\0')));
  write("model.safetensors.index.json",
        R"({"weight_map":{"a":"model-00001-of-00002.safetensors",)"
        R"("b":"model-00002-of-00002.safetensors"}})");
  const std::string message = thrownMessage<ptune::Error>([&] { WeightStore store(dir_); });
  EXPECT_NE(message.find("model.safetensors.index.json"), std::string::npos) << message;
  EXPECT_NE(message.find("shard 'model-00002-of-00002.safetensors' (holding 'b') is missing"),
            std::string::npos)
      << message;
}

TEST_F(SafetensorsTest, MissingWeightAndMissingFiles) {
  write("model.safetensors",
        safetensorsBytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                         std::string(4, '\0')));
  const WeightStore store(dir_);
  const std::string message = thrownMessage<ptune::Error>([&] { store.load("lm_head.weight", at::kFloat); });
  EXPECT_NE(message.find(dir_), std::string::npos) << message;
  EXPECT_NE(message.find("weight 'lm_head.weight' not found"), std::string::npos) << message;
  const std::string shaped =
      thrownMessage<ptune::Error>([&] { store.load("lm_head.weight", {1}, at::kFloat); });
  EXPECT_NE(shaped.find("weight 'lm_head.weight' not found"), std::string::npos) << shaped;

  const std::string in_file =
      thrownMessage<ptune::Error>([&] { SafetensorsFile(dir_ + "/model.safetensors").tensor("b"); });
  EXPECT_NE(in_file.find("model.safetensors: no tensor named 'b'"), std::string::npos) << in_file;

  const fs::path empty = fs::path(dir_) / "empty";
  fs::create_directories(empty);
  const std::string no_files = thrownMessage<ptune::Error>([&] { WeightStore s(empty.string()); });
  EXPECT_NE(no_files.find("no model.safetensors or model.safetensors.index.json"),
            std::string::npos)
      << no_files;
  const std::string not_dir =
      thrownMessage<ptune::Error>([&] { WeightStore s(dir_ + "/does-not-exist"); });
  EXPECT_NE(not_dir.find("not a directory"), std::string::npos) << not_dir;
}

TEST_F(SafetensorsTest, RealStoriesCheckpointHasAllWeights) {
  const WeightStore store(ptune_test::kStoriesDir);
  EXPECT_TRUE(store.contains("model.embed_tokens.weight"));
  EXPECT_TRUE(store.contains("model.layers.4.mlp.down_proj.weight"));
  EXPECT_FALSE(store.contains("lm_head.weight"));  // tied
  const at::Tensor e = store.load("model.embed_tokens.weight", {512, 64}, at::kFloat);
  EXPECT_TRUE(std::isfinite(e.abs().max().item<float>()));
  EXPECT_GT(e.abs().max().item<float>(), 0.1f);
}

}  // namespace
