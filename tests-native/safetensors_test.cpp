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

// Hostile files (tests-native/fuzz/ fuzzes the same parser): each must fail with one clear
// ptune::Error naming the file, never crash, allocate without bound or throw another type.

TEST_F(SafetensorsTest, HeaderLengthTwoToThe63) {
  std::string bytes = safetensorsBytes("{}", "");
  for (int i = 0; i < 7; ++i) bytes[static_cast<size_t>(i)] = '\0';
  bytes[7] = static_cast<char>(0x80);  // 2^63, little-endian
  const std::string path = write("two63.safetensors", bytes);
  const std::string message = openError(path);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("header length 9223372036854775808 exceeds the file size 10"),
            std::string::npos)
      << message;
}

TEST_F(SafetensorsTest, HeaderLengthOverTheFormatLimit) {
  // A sparse file of 100 MB + 16 bytes whose header length claims all of it: within the file, but
  // over the reference implementation's 100 MB limit, so it is refused before any parsing.
  const uint64_t len = ptune::io::kMaxSafetensorsHeaderBytes + 8;
  std::string prefix(8, '\0');
  for (int i = 0; i < 8; ++i) prefix[static_cast<size_t>(i)] = static_cast<char>((len >> (8 * i)) & 0xff);
  const std::string path = write("huge.safetensors", prefix);
  fs::resize_file(path, len + 8);
  const std::string message = openError(path);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("header length 100000008 is over the format's limit of 100000000 bytes"),
            std::string::npos)
      << message;
}

TEST_F(SafetensorsTest, OverlappingOffsets) {
  const std::string path = write(
      "overlap.safetensors",
      safetensorsBytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                       std::string(12, '\0')));
  const std::string message = openError(path);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("tensors 'a' [0, 8] and 'b' [4, 12] overlap in the data section"),
            std::string::npos)
      << message;
  // The same bytes twice under two names is an overlap too; empty tensors overlap nothing.
  const std::string same = write(
      "same.safetensors",
      safetensorsBytes(R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},)"
                       R"("e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                       R"("z":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                       std::string(4, '\0')));
  EXPECT_NE(openError(same).find("tensors 'a' [0, 4] and 'z' [0, 4] overlap"), std::string::npos)
      << openError(same);
}

TEST_F(SafetensorsTest, OffsetsPastTheEndOfTheFile) {
  // An end offset of 2^64 - 1 must not wrap around in any bounds arithmetic.
  const std::string path = write(
      "far.safetensors",
      safetensorsBytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551615]}})",
                       std::string(4, '\0')));
  const std::string message = openError(path);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("tensor 'w' data_offsets [18446744073709551612, 18446744073709551615] "
                         "fall outside the 4 data bytes"),
            std::string::npos)
      << message;
  for (const char* offsets : {"[0]", "[0,4,8]", "[-4,0]", "[0,4.0]", "{\"begin\":0}", "\"0,4\""}) {
    const std::string bad = write(
        "offsets.safetensors",
        safetensorsBytes(std::string(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":)") +
                             offsets + "}}",
                         std::string(4, '\0')));
    EXPECT_NE(openError(bad).find("tensor 'w' has invalid data_offsets: expected [begin, end]"),
              std::string::npos)
        << offsets << ": " << openError(bad);
  }
}

TEST_F(SafetensorsTest, DtypeThatIsNotADtype) {
  for (const char* dtype : {R"("f32")", R"("")", R"("F32 ")", R"("U8")"}) {
    const std::string path = write(
        "dtype.safetensors",
        safetensorsBytes(std::string(R"({"q":{"dtype":)") + dtype +
                             R"(,"shape":[4],"data_offsets":[0,4]}})",
                         std::string(4, '\0')));
    const std::string message = openError(path);
    EXPECT_NE(message.find(path + ": tensor 'q' has dtype "), std::string::npos) << message;
    EXPECT_NE(message.find("which ptune does not read"), std::string::npos) << message;
  }
  for (const char* dtype : {"7", "null", R"(["F32"])", R"({"F32":1})"}) {
    const std::string path = write(
        "dtype.safetensors",
        safetensorsBytes(std::string(R"({"q":{"dtype":)") + dtype +
                             R"(,"shape":[1],"data_offsets":[0,4]}})",
                         std::string(4, '\0')));
    EXPECT_NE(openError(path).find("tensor 'q' has a dtype that is not a string"),
              std::string::npos)
        << dtype << ": " << openError(path);
  }
}

TEST_F(SafetensorsTest, HeaderThatIsNotUtf8) {
  // 0xff never occurs in UTF-8; a lone surrogate escape is no character either.
  for (const std::string& name : {std::string("\xff\xfe"), std::string("a\xc3"), std::string("\\ud800")}) {
    const std::string path = write(
        "utf8.safetensors",
        safetensorsBytes("{\"" + name + R"(":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                         std::string(4, '\0')));
    const std::string message = openError(path);
    EXPECT_NE(message.find(path + ": header is not valid JSON"), std::string::npos) << message;
    // The message is printable ASCII whatever bytes the file holds.
    for (const char c : message) {
      EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "byte " << static_cast<int>(static_cast<unsigned char>(c))
                                         << " in: " << message;
    }
  }
  const std::string bad_byte = write(
      "utf8.safetensors",
      safetensorsBytes("{\"\xff\":{}}", std::string()));
  EXPECT_NE(openError(bad_byte).find("ill-formed UTF-8"), std::string::npos) << openError(bad_byte);
}

TEST_F(SafetensorsTest, HeaderThatIsNotAJsonObject) {
  for (const char* header : {"", "not json", "{\"a\":", "{} {}", "\x01\x02\x03"}) {
    const std::string path = write("json.safetensors", safetensorsBytes(header, ""));
    EXPECT_NE(openError(path).find(path + ": header is not valid JSON"), std::string::npos)
        << openError(path);
  }
  for (const auto& [header, type] : std::vector<std::pair<std::string, std::string>>{
           {"[1, 2]", "array"}, {"\"x\"", "string"}, {"42", "number"}, {"null", "null"}}) {
    const std::string path = write("json.safetensors", safetensorsBytes(header, ""));
    EXPECT_NE(openError(path).find("header must be a JSON object, not " + type), std::string::npos)
        << openError(path);
  }
  const std::string entry = write("entry.safetensors", safetensorsBytes(R"({"w":[1,2,3]})", ""));
  EXPECT_NE(openError(entry).find("tensor 'w' lacks dtype, shape or data_offsets"),
            std::string::npos)
      << openError(entry);
}

TEST_F(SafetensorsTest, DuplicatedTensorName) {
  const std::string path = write(
      "dup.safetensors",
      safetensorsBytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                       R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                       std::string(8, '\0')));
  EXPECT_NE(openError(path).find("tensor 'w' appears twice in the header"), std::string::npos)
      << openError(path);
  // Keys of the same name inside different tensors' entries are not duplicates.
  const std::string fine = write(
      "fine.safetensors",
      safetensorsBytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                       R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                       std::string(8, '\0')));
  EXPECT_EQ(SafetensorsFile(fine).names(), (std::vector<std::string>{"a", "b"}));
}

TEST_F(SafetensorsTest, ShapeThatIsNotAListOfSizes) {
  for (const auto& [shape, problem] : std::vector<std::pair<std::string, std::string>>{
           {"4", "has a shape that is not a list (number)"},
           {R"({"0":4})", "has a shape that is not a list (object)"},
           {"[-1]", "dimension 0 is -1, not a non-negative integer"},
           {"[2,2.5]", "dimension 1 is 2.5, not a non-negative integer"},
           {"[[4]]", "dimension 0 is array, not a non-negative integer"},
           {"[9223372036854775808]", "dimension 0 is 9223372036854775808, not a non-negative"}}) {
    const std::string path = write(
        "shape.safetensors",
        safetensorsBytes(R"({"w":{"dtype":"F32","shape":)" + shape + R"(,"data_offsets":[0,4]}})",
                         std::string(4, '\0')));
    EXPECT_EQ(openError(path).rfind(path + ": tensor 'w' ", 0), 0u) << openError(path);
    EXPECT_NE(openError(path).find(problem), std::string::npos) << shape << ": " << openError(path);
  }
}

TEST_F(SafetensorsTest, ShapeProductOverflow) {
  // 2^62 x 4 elements wrap to 0 in 64 bits: a wrapped count would match the empty data_offsets,
  // and the file would then claim a tensor of 2^64 elements.
  const std::string path = write(
      "overflow.safetensors",
      safetensorsBytes(R"({"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}})",
                       ""));
  const std::string message = openError(path);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("tensor 'w' has shape [4611686018427387904,4]... whose element count "
                         "overflows 64-bit integers"),
            std::string::npos)
      << message;
  // A zero dimension does not excuse the others: the strides of [0, 2^62, 4] overflow as well.
  const std::string strides = write(
      "strides.safetensors",
      safetensorsBytes(R"({"w":{"dtype":"F32","shape":[0,4611686018427387904,4],"data_offsets":[0,0]}})",
                       ""));
  EXPECT_NE(openError(strides).find("overflows 64-bit integers"), std::string::npos)
      << openError(strides);
  // 2^61 F64 elements fit in int64, their 2^64 bytes do not.
  const std::string bytes = write(
      "bytes.safetensors",
      safetensorsBytes(R"({"w":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}})",
                       ""));
  EXPECT_NE(openError(bytes).find("tensor 'w' has shape [2305843009213693952] whose byte count "
                                  "overflows 64-bit integers"),
            std::string::npos)
      << openError(bytes);
  // Empty tensors with a zero dimension are fine and load as empty tensors.
  const std::string empty = write(
      "empty.safetensors",
      safetensorsBytes(R"({"e":{"dtype":"BF16","shape":[3,0,1000000],"data_offsets":[0,0]}})", ""));
  const at::Tensor e = SafetensorsFile(empty).tensor("e");
  EXPECT_EQ(e.sizes().vec(), (std::vector<int64_t>{3, 0, 1000000}));
  EXPECT_EQ(e.scalar_type(), at::kBFloat16);
}

TEST_F(SafetensorsTest, IndexWithAShardThatIsNotAFileName) {
  write("model.safetensors.index.json", R"({"weight_map":{"a":7}})");
  const std::string message = thrownMessage<ptune::Error>([&] { WeightStore store(dir_); });
  EXPECT_NE(message.find("model.safetensors.index.json: weight_map entry 'a' must name a shard "
                         "file (a string), not number"),
            std::string::npos)
      << message;
}

TEST_F(SafetensorsTest, IndexShardsMustLieBesideTheIndex) {
  // A real file outside the model folder: the index must not reach it.
  const std::string outside = write(
      "outside.safetensors",
      safetensorsBytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')));
  const fs::path model = fs::path(dir_) / "model";
  fs::create_directories(model);
  for (const std::string& shard : std::vector<std::string>{"../outside.safetensors", outside, ".."}) {
    std::ofstream(model / "model.safetensors.index.json")
        << R"({"weight_map":{"a":")" << shard << R"("}})";
    const std::string message =
        thrownMessage<ptune::Error>([&] { WeightStore store(model.string()); });
    EXPECT_NE(message.find("model.safetensors.index.json: shard '"), std::string::npos) << message;
    EXPECT_NE(message.find("is not a file name in the model folder"), std::string::npos) << message;
  }
}

TEST_F(SafetensorsTest, FuzzSeedCorpusParsesOrFailsClearly) {
  // The fuzzer's committed seeds (tests-native/fuzz/corpus/): valid-* open, bad-* fail with a
  // ptune::Error naming the file; crashes the fuzzer once found are added here as bad-* too.
  const fs::path corpus = fs::path(PTUNE_GOLDEN_DIR) / ".." / "fuzz" / "corpus";
  int valid = 0, bad = 0;
  for (const auto& entry : fs::directory_iterator(corpus)) {
    const std::string name = entry.path().filename().string();
    const std::string path = entry.path().string();
    if (name.rfind("valid-", 0) == 0) {
      EXPECT_NO_THROW(SafetensorsFile file(path)) << name;
      ++valid;
    } else {
      ASSERT_EQ(name.rfind("bad-", 0), 0u) << "seed names start with valid- or bad-: " << name;
      EXPECT_EQ(openError(path).rfind(path + ": ", 0), 0u) << name << ": " << openError(path);
      ++bad;
    }
  }
  EXPECT_GE(valid, 3);
  EXPECT_GE(bad, 10);
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
