#include "io/onnx.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>

#include "core/check.h"
#include "io/safetensors.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "io/onnx.cpp reads little-endian raw_data in place; add byte swapping for this platform"
#endif

namespace ptune::io {
namespace {

// ---------------------------------------------------------------------------------------------
// Protobuf wire format (https://protobuf.dev/programming-guides/encoding/): a message is a
// sequence of fields, each a varint key (field_number << 3 | wire_type) and a value:
// 0 varint, 1 fixed64, 2 length-delimited (varint length, then bytes), 5 fixed32.
// 3/4 (groups) are deprecated and never used by ONNX.

constexpr uint32_t kVarint = 0;
constexpr uint32_t kFixed64 = 1;
constexpr uint32_t kLengthDelimited = 2;
constexpr uint32_t kFixed32 = 5;

/// A bounded cursor over one message, the bytes [pos, end) of the mapped file. Every read checks
/// its bounds against the end of the message, so nothing can run past the file.
class Wire {
 public:
  struct Field {
    uint32_t number;
    uint32_t wire_type;
    size_t at;  // file offset of the key, for messages
  };
  struct Span {
    size_t offset;  // file offset of the first byte
    size_t size;
  };

  Wire(const MappedFile& file, size_t begin, size_t end, std::string where)
      : file_(file), pos_(begin), end_(end), where_(std::move(where)) {}

  bool more() const { return pos_ < end_; }
  const std::string& where() const { return where_; }
  const MappedFile& file() const { return file_; }

  Field field() {
    const size_t at = pos_;
    const uint64_t key = varint();
    const auto number = static_cast<uint32_t>(key >> 3);
    const auto wire_type = static_cast<uint32_t>(key & 7);
    if (number == 0 || (key >> 3) > 0x1fffffffu) fail(at, "invalid field number 0 or > 2^29");
    return {number, wire_type, at};
  }

  uint64_t varint() {
    const size_t at = pos_;
    uint64_t value = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (pos_ >= end_) fail(at, "a varint runs past the end of its message");
      const uint8_t byte = file_.data()[pos_++];
      value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return value;
    }
    fail(at, "a varint is longer than 10 bytes");
  }

  uint32_t fixed32() {
    need(4, "a fixed32 value runs past the end of its message");
    uint32_t v = 0;
    std::memcpy(&v, file_.data() + pos_, 4);  // little-endian (checked at compile time)
    pos_ += 4;
    return v;
  }

  uint64_t fixed64() {
    need(8, "a fixed64 value runs past the end of its message");
    uint64_t v = 0;
    std::memcpy(&v, file_.data() + pos_, 8);
    pos_ += 8;
    return v;
  }

  Span bytes() {
    const size_t at = pos_;
    const uint64_t len = varint();
    if (len > end_ - pos_) {
      fail(at, detail::concat("a length-delimited field of ", len, " bytes runs past the end of ",
                              "its message (", end_ - pos_, " bytes left)"));
    }
    const Span span{pos_, static_cast<size_t>(len)};
    pos_ += span.size;
    return span;
  }

  std::string string() {
    const Span s = bytes();
    return std::string(reinterpret_cast<const char*>(file_.data() + s.offset), s.size);
  }

  /// A cursor over a length-delimited field's bytes (a nested message or a packed array).
  Wire nested(const std::string& where) {
    const Span s = bytes();
    return Wire(file_, s.offset, s.offset + s.size, where);
  }

  void skip(const Field& f) {
    switch (f.wire_type) {
      case kVarint: varint(); return;
      case kFixed64: need(8, "a fixed64 value runs past the end of its message"); pos_ += 8; return;
      case kLengthDelimited: bytes(); return;
      case kFixed32: need(4, "a fixed32 value runs past the end of its message"); pos_ += 4; return;
      default:
        fail(f.at, detail::concat("field ", f.number, " has wire type ", f.wire_type,
                                  ", which ONNX never writes (groups or invalid)"));
    }
  }

  /// Checks that a known field has the wire type the schema gives it.
  void expect(const Field& f, uint32_t wire_type, const char* field_name) const {
    if (f.wire_type != wire_type) {
      fail(f.at, detail::concat("field ", field_name, " (", f.number, ") has wire type ",
                                f.wire_type, " instead of ", wire_type));
    }
  }

  [[noreturn]] void fail(size_t at, const std::string& what) const {
    throw Error(detail::concat(file_.path(), ": corrupt ONNX file: ", what, " (", where_,
                               ", byte ", at, " of ", file_.size(),
                               "); the file is truncated or not an ONNX model, export or "
                               "download it again"));
  }

 private:
  void need(size_t n, const char* what) {
    if (end_ - pos_ < n) fail(pos_, what);
  }

  const MappedFile& file_;
  size_t pos_;
  size_t end_;
  std::string where_;
};

int64_t toInt64(uint64_t v) { return static_cast<int64_t>(v); }
int32_t toInt32(uint64_t v) { return static_cast<int32_t>(static_cast<int64_t>(v)); }
float toFloat(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
double toDouble(uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}

/// A repeated varint field, packed (one length-delimited run) or not (one value per key).
template <typename T, typename Convert>
void readVarints(Wire& w, const Wire::Field& f, std::vector<T>& out, Convert convert) {
  if (f.wire_type == kLengthDelimited) {
    Wire packed = w.nested(w.where() + ", packed field " + std::to_string(f.number));
    while (packed.more()) out.push_back(convert(packed.varint()));
  } else {
    w.expect(f, kVarint, "of varints");
    out.push_back(convert(w.varint()));
  }
}

/// A repeated fixed32 (float) field, packed or not.
void readFloats(Wire& w, const Wire::Field& f, std::vector<float>& out) {
  if (f.wire_type == kLengthDelimited) {
    const Wire::Span s = w.bytes();
    if (s.size % 4 != 0) w.fail(f.at, "a packed float array's length is not a multiple of 4");
    out.reserve(out.size() + s.size / 4);  // bounded by the file size
    for (size_t i = 0; i < s.size; i += 4) {
      uint32_t bits;
      std::memcpy(&bits, w.file().data() + s.offset + i, 4);
      out.push_back(toFloat(bits));
    }
  } else {
    w.expect(f, kFixed32, "of floats");
    out.push_back(toFloat(w.fixed32()));
  }
}

/// A repeated fixed64 field (double or uint64), packed or not.
template <typename T, typename Convert>
void readFixed64s(Wire& w, const Wire::Field& f, std::vector<T>& out, Convert convert) {
  if (f.wire_type == kLengthDelimited) {
    const Wire::Span s = w.bytes();
    if (s.size % 8 != 0) w.fail(f.at, "a packed fixed64 array's length is not a multiple of 8");
    out.reserve(out.size() + s.size / 8);
    for (size_t i = 0; i < s.size; i += 8) {
      uint64_t bits;
      std::memcpy(&bits, w.file().data() + s.offset + i, 8);
      out.push_back(convert(bits));
    }
  } else {
    w.expect(f, kFixed64, "of fixed64 values");
    out.push_back(convert(w.fixed64()));
  }
}

// ---------------------------------------------------------------------------------------------
// ONNX messages (field numbers from onnx.proto).

/// Element type of the TensorProto data types ptune turns into at::Tensor.
struct OnnxDtype {
  at::ScalarType type;
  size_t bytes;
};

std::optional<OnnxDtype> readableDtype(int32_t data_type) {
  switch (static_cast<OnnxDataType>(data_type)) {
    case OnnxDataType::kFloat: return OnnxDtype{at::kFloat, 4};
    case OnnxDataType::kFloat16: return OnnxDtype{at::kHalf, 2};
    case OnnxDataType::kBfloat16: return OnnxDtype{at::kBFloat16, 2};
    case OnnxDataType::kDouble: return OnnxDtype{at::kDouble, 8};
    case OnnxDataType::kInt64: return OnnxDtype{at::kLong, 8};
    case OnnxDataType::kInt32: return OnnxDtype{at::kInt, 4};
    case OnnxDataType::kInt16: return OnnxDtype{at::kShort, 2};
    case OnnxDataType::kInt8: return OnnxDtype{at::kChar, 1};
    case OnnxDataType::kUint8: return OnnxDtype{at::kByte, 1};
    case OnnxDataType::kBool: return OnnxDtype{at::kBool, 1};
    default: return std::nullopt;
  }
}

const char* dataTypeName(int32_t data_type) {
  static const char* const kNames[] = {
      "UNDEFINED", "FLOAT",      "UINT8",     "INT8",           "UINT16",       "INT16",
      "INT32",     "INT64",      "STRING",    "BOOL",           "FLOAT16",      "DOUBLE",
      "UINT32",    "UINT64",     "COMPLEX64", "COMPLEX128",     "BFLOAT16",     "FLOAT8E4M3FN",
      "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4", "INT4", "FLOAT4E2M1"};
  constexpr int32_t kCount = static_cast<int32_t>(sizeof(kNames) / sizeof(kNames[0]));
  return data_type >= 0 && data_type < kCount ? kNames[data_type] : "unknown";
}
constexpr int32_t kLastKnownDataType = 23;  // FLOAT4E2M1 (onnx 1.17)

/// Decodes one TensorProto and checks that its data agrees with its dims and data_type.
OnnxTensor parseTensor(Wire w) {
  OnnxTensor t;
  bool external = false;
  while (w.more()) {
    const Wire::Field f = w.field();
    switch (f.number) {
      case 1: readVarints(w, f, t.dims, toInt64); break;  // dims
      case 2: w.expect(f, kVarint, "data_type"); t.data_type = toInt32(w.varint()); break;
      case 3: w.fail(f.at, "segmented tensors (TensorProto.segment) are not supported");
      case 4: readFloats(w, f, t.float_data); break;
      case 5: readVarints(w, f, t.int32_data, toInt32); break;
      case 7: readVarints(w, f, t.int64_data, toInt64); break;
      case 8: w.expect(f, kLengthDelimited, "name"); t.name = w.string(); break;
      case 9: {  // raw_data
        w.expect(f, kLengthDelimited, "raw_data");
        const Wire::Span s = w.bytes();
        t.has_raw = true;
        t.raw_offset = s.offset;
        t.raw_size = s.size;
        break;
      }
      case 10: readFixed64s(w, f, t.double_data, toDouble); break;
      case 11: readFixed64s(w, f, t.uint64_data, [](uint64_t v) { return v; }); break;
      case 13: external = true; w.skip(f); break;  // external_data
      case 14: w.expect(f, kVarint, "data_location"); external |= w.varint() == 1; break;
      default: w.skip(f); break;  // string_data, doc_string, metadata
    }
  }
  const std::string& path = w.file().path();
  const std::string label = t.name.empty() ? w.where() : "tensor '" + t.name + "'";
  PTUNE_CHECK(!external, path, ": ", label,
              " keeps its data in an external file (data_location EXTERNAL); ptune reads "
              "self-contained .onnx files only: save the model with all tensors inside "
              "(onnx.save_model(model, path, save_as_external_data=False), under 2 GB)");
  PTUNE_CHECK(t.data_type >= 1 && t.data_type <= kLastKnownDataType, path, ": ", label,
              " has unknown data_type ", t.data_type, " (ONNX defines 1 to ", kLastKnownDataType,
              "); the file is corrupt or from a newer ONNX version");
  PTUNE_CHECK(t.dims.size() <= 64, path, ": ", label, " has ", t.dims.size(),
              " dimensions (corrupt file)");
  int64_t numel = 1;
  for (const int64_t d : t.dims) {
    PTUNE_CHECK(d >= 0, path, ": ", label, " has a negative dimension ", d, " (corrupt file)");
    PTUNE_CHECK(!__builtin_mul_overflow(numel, d, &numel) && numel <= (int64_t{1} << 48), path,
                ": ", label, " has an impossibly large shape (corrupt file)");
  }
  const std::optional<OnnxDtype> dtype = readableDtype(t.data_type);
  if (!dtype) return t;  // parsed but never read: no size checks for types ptune cannot use
  if (t.has_raw) {
    PTUNE_CHECK(t.raw_size == static_cast<size_t>(numel) * dtype->bytes, path, ": ", label,
                " has ", t.raw_size, " bytes of raw_data but ", numel, " elements of ",
                dataTypeName(t.data_type), " need ", static_cast<size_t>(numel) * dtype->bytes,
                " (corrupt file)");
    return t;
  }
  size_t count = 0;
  const char* field = "";
  switch (static_cast<OnnxDataType>(t.data_type)) {
    case OnnxDataType::kFloat: count = t.float_data.size(); field = "float_data"; break;
    case OnnxDataType::kInt64: count = t.int64_data.size(); field = "int64_data"; break;
    case OnnxDataType::kDouble: count = t.double_data.size(); field = "double_data"; break;
    default: count = t.int32_data.size(); field = "int32_data"; break;
  }
  PTUNE_CHECK(count == static_cast<size_t>(numel), path, ": ", label, " of shape ",
              at::IntArrayRef(t.dims), " holds ", count, " values in ", field, " instead of ",
              numel, " (corrupt file)");
  return t;
}

OnnxAttribute parseAttribute(Wire w) {
  OnnxAttribute a;
  while (w.more()) {
    const Wire::Field f = w.field();
    switch (f.number) {
      case 1: w.expect(f, kLengthDelimited, "name"); a.name = w.string(); break;
      case 2: w.expect(f, kFixed32, "f"); a.f = toFloat(w.fixed32()); break;
      case 3: w.expect(f, kVarint, "i"); a.i = toInt64(w.varint()); break;
      case 4: w.expect(f, kLengthDelimited, "s"); a.s = w.string(); break;
      case 5:
        w.expect(f, kLengthDelimited, "t");
        a.t = std::make_shared<const OnnxTensor>(
            parseTensor(w.nested(w.where() + ", tensor value")));
        break;
      case 6: w.skip(f); break;  // g: subgraphs are not decoded
      case 7: readFloats(w, f, a.floats); break;
      case 8: readVarints(w, f, a.ints, toInt64); break;
      case 9: w.expect(f, kLengthDelimited, "strings"); a.strings.push_back(w.string()); break;
      case 20: {
        w.expect(f, kVarint, "type");
        a.type = static_cast<OnnxAttributeType>(toInt32(w.varint()));
        break;
      }
      default: w.skip(f); break;
    }
  }
  // IR version < 2 files may omit type; infer it from the one field that is set.
  if (a.type == OnnxAttributeType::kUndefined) {
    if (a.t) a.type = OnnxAttributeType::kTensor;
    else if (!a.ints.empty()) a.type = OnnxAttributeType::kInts;
    else if (!a.floats.empty()) a.type = OnnxAttributeType::kFloats;
  }
  PTUNE_CHECK(a.type != OnnxAttributeType::kTensor || a.t, w.file().path(),
              ": corrupt ONNX file: attribute '", a.name, "' (", w.where(),
              ") has type TENSOR but no tensor");
  return a;
}

OnnxNode parseNode(Wire w) {
  OnnxNode n;
  while (w.more()) {
    const Wire::Field f = w.field();
    switch (f.number) {
      case 1: w.expect(f, kLengthDelimited, "input"); n.inputs.push_back(w.string()); break;
      case 2: w.expect(f, kLengthDelimited, "output"); n.outputs.push_back(w.string()); break;
      case 3: w.expect(f, kLengthDelimited, "name"); n.name = w.string(); break;
      case 4: w.expect(f, kLengthDelimited, "op_type"); n.op_type = w.string(); break;
      case 5:
        w.expect(f, kLengthDelimited, "attribute");
        n.attributes.push_back(parseAttribute(w.nested(w.where() + ", attribute")));
        break;
      case 7: w.expect(f, kLengthDelimited, "domain"); n.domain = w.string(); break;
      default: w.skip(f); break;
    }
  }
  return n;
}

/// ValueInfoProto: only the name (field 1) is kept.
std::string parseValueInfoName(Wire w) {
  std::string name;
  while (w.more()) {
    const Wire::Field f = w.field();
    if (f.number == 1) {
      w.expect(f, kLengthDelimited, "name");
      name = w.string();
    } else {
      w.skip(f);
    }
  }
  return name;
}

/// OperatorSetIdProto: (domain, version).
std::pair<std::string, int64_t> parseOpset(Wire w) {
  std::pair<std::string, int64_t> out{"", 0};
  while (w.more()) {
    const Wire::Field f = w.field();
    if (f.number == 1) {
      w.expect(f, kLengthDelimited, "domain");
      out.first = w.string();
    } else if (f.number == 2) {
      w.expect(f, kVarint, "version");
      out.second = toInt64(w.varint());
    } else {
      w.skip(f);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Graph queries for the BERT mapper.

/// Producers and consumers of every value name, and constant values (initializers, Constant
/// nodes, and Identity of either).
class GraphIndex {
 public:
  explicit GraphIndex(const OnnxFile& file) : file_(file) {
    const auto& nodes = file.nodes();
    for (size_t i = 0; i < nodes.size(); ++i) {
      for (const auto& out : nodes[i].outputs) {
        if (!out.empty()) producer_.emplace(out, i);
      }
      for (const auto& in : nodes[i].inputs) {
        if (!in.empty()) consumers_[in].push_back(i);
      }
    }
  }

  const OnnxNode* producer(const std::string& value) const {
    const auto it = producer_.find(value);
    return it == producer_.end() ? nullptr : &file_.nodes()[it->second];
  }

  std::vector<const OnnxNode*> consumers(const std::string& value) const {
    std::vector<const OnnxNode*> out;
    const auto it = consumers_.find(value);
    if (it == consumers_.end()) return out;
    for (const size_t i : it->second) out.push_back(&file_.nodes()[i]);
    return out;
  }

  /// The value as a tensor when it is a constant of the graph.
  std::optional<at::Tensor> constant(const std::string& value) const {
    std::string name = value;
    for (int hops = 0; hops < 8; ++hops) {  // follow Identity chains
      if (file_.hasInitializer(name)) return file_.initializer(name);
      const OnnxNode* p = producer(name);
      if (p == nullptr) return std::nullopt;
      if (p->op_type == "Identity" && p->inputs.size() == 1) {
        name = p->inputs[0];
        continue;
      }
      if (p->op_type != "Constant") return std::nullopt;
      for (const auto& a : p->attributes) {
        if (a.name == "value" && a.t) return file_.tensor(*a.t);
        if (a.name == "value_float") return at::empty({}, at::kFloat).fill_(a.f);
        if (a.name == "value_int") return at::empty({}, at::kLong).fill_(a.i);
        if (a.name == "value_floats") {
          at::Tensor t = at::empty({static_cast<int64_t>(a.floats.size())}, at::kFloat);
          std::memcpy(t.data_ptr(), a.floats.data(), a.floats.size() * sizeof(float));
          return t;
        }
        if (a.name == "value_ints") {
          at::Tensor t = at::empty({static_cast<int64_t>(a.ints.size())}, at::kLong);
          std::memcpy(t.data_ptr(), a.ints.data(), a.ints.size() * sizeof(int64_t));
          return t;
        }
      }
      return std::nullopt;
    }
    return std::nullopt;
  }

  /// A one-element floating-point constant, widened to double.
  std::optional<double> scalar(const std::string& value) const {
    const std::optional<at::Tensor> c = constant(value);
    if (!c || c->numel() != 1 || !at::isFloatingType(c->scalar_type())) return std::nullopt;
    return c->to(at::kDouble).item<double>();
  }

  /// A constant integer vector (e.g. a Reshape shape).
  std::optional<std::vector<int64_t>> ints(const std::string& value) const {
    const std::optional<at::Tensor> c = constant(value);
    if (!c || c->dim() > 1 || at::isFloatingType(c->scalar_type()) ||
        c->scalar_type() == at::kBool) {
      return std::nullopt;
    }
    const at::Tensor v = c->to(at::kLong).contiguous();
    return std::vector<int64_t>(v.data_ptr<int64_t>(), v.data_ptr<int64_t>() + v.numel());
  }

 private:
  const OnnxFile& file_;
  std::unordered_map<std::string, size_t> producer_;
  std::unordered_map<std::string, std::vector<size_t>> consumers_;
};

/// The shortest decimal that rounds to f, as a double: 9.99999996e-13f -> 1e-12.
double shortestDecimal(float f) {
  char buf[32];
  for (int precision = 1; precision <= 9; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, static_cast<double>(f));
    if (std::strtof(buf, nullptr) == f) return std::strtod(buf, nullptr);
  }
  return static_cast<double>(f);
}

/// Integer index of "encoder.layer.<i>." names, or -1.
int64_t layerIndex(const std::string& name) {
  static const std::string kPrefix = "encoder.layer.";
  if (name.compare(0, kPrefix.size(), kPrefix) != 0) return -1;
  size_t pos = kPrefix.size();
  int64_t index = 0;
  const size_t start = pos;
  while (pos < name.size() && name[pos] >= '0' && name[pos] <= '9' && pos - start < 6) {
    index = index * 10 + (name[pos] - '0');
    ++pos;
  }
  if (pos == start || pos >= name.size() || name[pos] != '.') return -1;
  return index;
}

/// Maps a BERT encoder graph to HF names, one query at a time.
class BertMapper {
 public:
  explicit BertMapper(const OnnxFile& file) : file_(file), graph_(file) {}

  OnnxBert map() {
    OnnxBert out;
    BertDims& d = out.dims;

    // Embeddings: (V, C), (P, C), (T, C), LayerNorm (C).
    const at::Tensor word = matrix("embeddings.word_embeddings.weight");
    d.vocab_size = word.size(0);
    d.hidden_size = word.size(1);
    const int64_t C = d.hidden_size;
    const at::Tensor position = matrix("embeddings.position_embeddings.weight");
    const at::Tensor token_type = matrix("embeddings.token_type_embeddings.weight");
    checkShape("embeddings.position_embeddings.weight", position, {position.size(0), C});
    checkShape("embeddings.token_type_embeddings.weight", token_type, {token_type.size(0), C});
    d.max_position_embeddings = position.size(0);
    d.type_vocab_size = token_type.size(0);
    out.weights["embeddings.word_embeddings.weight"] = word;
    out.weights["embeddings.position_embeddings.weight"] = position;
    out.weights["embeddings.token_type_embeddings.weight"] = token_type;
    layerNorm("embeddings.LayerNorm", C, out.weights);

    // Layers: every "encoder.layer.<i>." name counts; all of 0..L-1 must then be complete.
    int64_t layers = 0;
    for (const auto& name : file_.initializerNames()) {
      layers = std::max(layers, layerIndex(name) + 1);
    }
    if (layers == 0) refuse("no initializer named encoder.layer.0.*");
    d.num_hidden_layers = layers;
    const std::string bias0 = "encoder.layer.0.intermediate.dense.bias";
    d.intermediate_size = vector(bias0).numel();
    const int64_t I = d.intermediate_size;

    std::optional<int64_t> heads;
    std::optional<BertActivation> activation;
    for (int64_t i = 0; i < layers; ++i) {
      const std::string p = "encoder.layer." + std::to_string(i) + ".";
      const Linear query = linear(p + "attention.self.query", C, C, out.weights);
      linear(p + "attention.self.key", C, C, out.weights);
      linear(p + "attention.self.value", C, C, out.weights);
      linear(p + "attention.output.dense", C, C, out.weights);
      layerNorm(p + "attention.output.LayerNorm", C, out.weights);
      const Linear intermediate = linear(p + "intermediate.dense", I, C, out.weights);
      linear(p + "output.dense", C, I, out.weights);
      layerNorm(p + "output.LayerNorm", C, out.weights);

      const int64_t h = attentionHeads(p, query.output, C);
      PTUNE_CHECK(!heads || *heads == h, file_.path(), ": ", p, "attention has ", h,
                  " heads but layer 0 has ", *heads, "; ptune needs one head count per model");
      heads = h;
      const BertActivation act = activationAfter(p, intermediate.output);
      PTUNE_CHECK(!activation || *activation == act, file_.path(), ": ", p,
                  "intermediate uses ", hfActivationName(act), " but layer 0 uses ",
                  hfActivationName(*activation), "; ptune needs one activation per model");
      activation = act;
    }
    d.num_attention_heads = *heads;
    d.hidden_act = *activation;
    d.layer_norm_eps = shortestDecimal(*eps_);

    if (file_.hasInitializer("pooler.dense.bias")) {
      linear("pooler.dense", C, C, out.weights);
      d.has_pooler = true;
    }
    return out;
  }

 private:
  struct Linear {
    at::Tensor weight;   // (out, in)
    std::string output;  // the value holding x W^T + b
  };

  [[noreturn]] void refuse(const std::string& what) const {
    throw Error(detail::concat(file_.path(), ": ", what,
                               "; is this a BERT-family encoder export (Hugging Face BertModel "
                               "through torch.onnx or optimum)?"));
  }

  at::Tensor weight(const std::string& name) const {
    if (!file_.hasInitializer(name)) refuse("no weight named " + name + " found");
    at::Tensor t = file_.initializer(name);
    PTUNE_CHECK(at::isFloatingType(t.scalar_type()), file_.path(), ": weight ", name,
                " has dtype ", t.scalar_type(), "; BERT weights are floating point");
    return t;
  }

  at::Tensor matrix(const std::string& name) const {
    at::Tensor t = weight(name);
    PTUNE_CHECK(t.dim() == 2, file_.path(), ": weight ", name, " has shape ", t.sizes(),
                "; expected a matrix");
    return t;
  }

  at::Tensor vector(const std::string& name) const {
    if (!file_.hasInitializer(name)) refuse("no bias named " + name + " found");
    at::Tensor t = weight(name);
    PTUNE_CHECK(t.dim() == 1, file_.path(), ": ", name, " has shape ", t.sizes(),
                "; expected a vector");
    return t;
  }

  void checkShape(const std::string& name, const at::Tensor& t,
                  const std::vector<int64_t>& shape) const {
    PTUNE_CHECK(t.sizes().vec() == shape, file_.path(), ": ", name, " has shape ", t.sizes(),
                " but a BERT encoder with these embeddings needs ", at::IntArrayRef(shape));
  }

  /// A constant 2-D weight feeding a MatMul (stored (in, out)) or reached through a 2-D
  /// Transpose (stored (out, in)); returned as (out, in).
  std::optional<at::Tensor> matmulWeight(const std::string& value) const {
    if (std::optional<at::Tensor> w = graph_.constant(value)) {
      if (w->dim() != 2) return std::nullopt;
      return w->t().contiguous();
    }
    const OnnxNode* p = graph_.producer(value);
    if (p != nullptr && p->op_type == "Transpose" && p->inputs.size() == 1) {
      const OnnxAttribute* perm = p->attribute("perm");
      if (perm == nullptr || perm->ints == std::vector<int64_t>{1, 0}) {
        std::optional<at::Tensor> w = graph_.constant(p->inputs[0]);
        if (w && w->dim() == 2) return w;
      }
    }
    return std::nullopt;
  }

  /// <prefix>.weight (out, in) and <prefix>.bias (out): the bias is found by name, the weight
  /// through the graph (the MatMul whose output the bias is added to, or a Gemm's B).
  Linear linear(const std::string& prefix, int64_t out_features, int64_t in_features,
                std::map<std::string, at::Tensor>& weights) const {
    const std::string bias_name = prefix + ".bias";
    const at::Tensor bias = vector(bias_name);
    PTUNE_CHECK(bias.size(0) == out_features, file_.path(), ": ", bias_name, " has ",
                bias.size(0), " elements but ", out_features, " are needed");
    std::optional<Linear> found;
    for (const OnnxNode* n : graph_.consumers(bias_name)) {
      if (n->op_type == "Add" && n->inputs.size() == 2 && n->outputs.size() == 1) {
        const std::string& other = n->inputs[0] == bias_name ? n->inputs[1] : n->inputs[0];
        const OnnxNode* mm = graph_.producer(other);
        if (mm == nullptr || mm->op_type != "MatMul" || mm->inputs.size() != 2) continue;
        if (std::optional<at::Tensor> w = matmulWeight(mm->inputs[1])) {
          found = Linear{*w, n->outputs[0]};
          break;
        }
      } else if (n->op_type == "Gemm" && n->inputs.size() == 3 && n->inputs[2] == bias_name) {
        const OnnxAttribute* trans_a = n->attribute("transA");
        const OnnxAttribute* trans_b = n->attribute("transB");
        const OnnxAttribute* alpha = n->attribute("alpha");
        const OnnxAttribute* beta = n->attribute("beta");
        if ((trans_a && trans_a->i != 0) || (alpha && alpha->f != 1.0f) ||
            (beta && beta->f != 1.0f)) {
          continue;
        }
        std::optional<at::Tensor> w = graph_.constant(n->inputs[1]);
        if (!w || w->dim() != 2) continue;
        // Gemm computes A B + C, or A B^T + C with transB: B^T is (out, in) when transB is set.
        found = Linear{trans_b && trans_b->i != 0 ? *w : w->t().contiguous(), n->outputs[0]};
        break;
      }
    }
    if (!found) {
      refuse("bias " + bias_name + " is not added to the output of a MatMul with a constant "
             "weight (nor used as a Gemm's C), so its weight cannot be found");
    }
    const std::string weight_name = prefix + ".weight";
    PTUNE_CHECK(found->weight.sizes().vec() == (std::vector<int64_t>{out_features, in_features}),
                file_.path(), ": the weight of ", bias_name, " has shape ",
                found->weight.sizes(), " in (out, in) layout but BERT needs [", out_features,
                ", ", in_features, "]");
    PTUNE_CHECK(at::isFloatingType(found->weight.scalar_type()), file_.path(), ": ", weight_name,
                " has dtype ", found->weight.scalar_type(), "; BERT weights are floating point");
    weights[weight_name] = found->weight;
    weights[bias_name] = bias;
    return *found;
  }

  /// <prefix>.weight and .bias (C), and the epsilon of the normalisation they scale and shift.
  void layerNorm(const std::string& prefix, int64_t C,
                 std::map<std::string, at::Tensor>& weights) {
    for (const char* part : {".weight", ".bias"}) {
      const std::string name = prefix + part;
      if (!file_.hasInitializer(name)) refuse("no LayerNorm parameter named " + name + " found");
      const at::Tensor t = weight(name);
      PTUNE_CHECK(t.dim() == 1 && t.size(0) == C, file_.path(), ": ", name, " has shape ",
                  t.sizes(), " but the hidden size is ", C);
      weights[name] = t;
    }
    const std::optional<float> eps = layerNormEps(prefix + ".weight");
    if (!eps) {
      refuse("cannot find the epsilon of " + prefix + " (no LayerNormalization node, nor " +
             "Sqrt(variance + eps) before the Mul by " + prefix + ".weight)");
    }
    PTUNE_CHECK(!eps_ || *eps_ == *eps, file_.path(), ": ", prefix, " has epsilon ", *eps,
                " but an earlier LayerNorm has ", *eps_,
                "; ptune needs one layer_norm_eps per model");
    eps_ = *eps;
  }

  /// LayerNormalization(x, gamma, beta, epsilon), or the decomposition torch.onnx writes before
  /// opset 17: (x - mean) / Sqrt(ReduceMean((x - mean)^2) + eps) * gamma + beta.
  std::optional<float> layerNormEps(const std::string& gamma) const {
    for (const OnnxNode* n : graph_.consumers(gamma)) {
      if (n->op_type == "LayerNormalization" && n->inputs.size() >= 2 && n->inputs[1] == gamma) {
        const OnnxAttribute* eps = n->attribute("epsilon");
        return eps != nullptr ? eps->f : 1e-5f;  // the operator's default
      }
      if (n->op_type != "Mul") continue;
      // Walk back from the Mul (a few nodes: Div or Mul by Reciprocal) to the Sqrt.
      std::deque<std::pair<const OnnxNode*, int>> todo{{n, 0}};
      std::set<const OnnxNode*> seen;
      while (!todo.empty()) {
        const auto [node, depth] = todo.front();
        todo.pop_front();
        if (!seen.insert(node).second) continue;
        if (node->op_type == "Sqrt" && node->inputs.size() == 1) {
          const OnnxNode* add = graph_.producer(node->inputs[0]);
          if (add != nullptr && add->op_type == "Add" && add->inputs.size() == 2) {
            for (const auto& in : add->inputs) {
              if (const std::optional<double> eps = graph_.scalar(in)) {
                return static_cast<float>(*eps);
              }
            }
          }
        }
        if (depth >= 4) continue;
        for (const auto& in : node->inputs) {
          if (const OnnxNode* p = graph_.producer(in)) todo.emplace_back(p, depth + 1);
        }
      }
    }
    return std::nullopt;
  }

  /// Heads from the Reshape of the query to (B, T, H, D): the last two entries of its shape, a
  /// constant or a Concat ending in constants ([0, 0, 12, 32] or Concat(B, T, [12], [32])).
  /// Cross-checked against the scores' scale 1/sqrt(D) where that is found.
  int64_t attentionHeads(const std::string& layer, const std::string& query, int64_t C) const {
    std::optional<int64_t> heads;
    for (const OnnxNode* n : graph_.consumers(query)) {
      if (n->op_type != "Reshape" || n->inputs.size() < 2 || n->inputs[0] != query) continue;
      const std::optional<std::vector<int64_t>> tail = shapeTail(n->inputs[1]);
      if (!tail) continue;
      const int64_t h = (*tail)[0];
      const int64_t hd = (*tail)[1];
      if (h > 0 && hd > 0 && h * hd == C) heads = h;
      else if (h > 0 && hd == -1 && C % h == 0) heads = h;
      else if (h == -1 && hd > 0 && C % hd == 0) heads = C / hd;
      if (heads) break;
    }
    const std::optional<int64_t> scale_dim = headDimFromScale(query);
    if (heads && scale_dim) {
      PTUNE_CHECK(*heads * *scale_dim == C, file_.path(), ": ", layer, "attention reshapes the "
                  "query into ", *heads, " heads but scales the scores by 1/sqrt(", *scale_dim,
                  "); the graph is not a standard BERT attention");
    }
    if (heads) return *heads;
    if (scale_dim && *scale_dim > 0 && C % *scale_dim == 0) return C / *scale_dim;
    refuse("cannot tell the number of attention heads of " + layer +
           "attention (no Reshape of the query to (batch, seq, heads, head_dim) with a "
           "constant shape, and no scaling of the scores by 1/sqrt(head_dim))");
  }

  /// The last two entries of a shape that is a constant, or a Concat whose last inputs are.
  std::optional<std::vector<int64_t>> shapeTail(const std::string& shape) const {
    std::vector<int64_t> values;
    if (std::optional<std::vector<int64_t>> c = graph_.ints(shape)) {
      values = *c;
    } else if (const OnnxNode* p = graph_.producer(shape); p != nullptr && p->op_type == "Concat") {
      for (auto in = p->inputs.rbegin(); in != p->inputs.rend() && values.size() < 2; ++in) {
        const std::optional<std::vector<int64_t>> c = graph_.ints(*in);
        if (!c) break;
        values.insert(values.begin(), c->begin(), c->end());
      }
    }
    if (values.size() < 2) return std::nullopt;
    return std::vector<int64_t>(values.end() - 2, values.end());
  }

  /// D from the scores' scaling, a few nodes after the query: MatMul(q, k^T) then Div by
  /// sqrt(D) or Mul by 1/sqrt(D).
  std::optional<int64_t> headDimFromScale(const std::string& query) const {
    std::deque<std::pair<std::string, int>> todo{{query, 0}};
    std::set<std::string> seen;
    while (!todo.empty()) {
      const auto [value, depth] = todo.front();
      todo.pop_front();
      if (!seen.insert(value).second || depth > 5) continue;
      for (const OnnxNode* n : graph_.consumers(value)) {
        const OnnxNode* scores = graph_.producer(value);
        if ((n->op_type == "Div" || n->op_type == "Mul") && n->inputs.size() == 2 &&
            scores != nullptr && scores->op_type == "MatMul" && n->inputs[0] == value) {
          if (const std::optional<double> c = graph_.scalar(n->inputs[1]); c && *c > 0) {
            const double d = n->op_type == "Div" ? *c * *c : 1.0 / (*c * *c);
            const auto rounded = static_cast<int64_t>(std::llround(d));
            if (rounded > 0 && std::fabs(d - static_cast<double>(rounded)) < 1e-3 * d) {
              return rounded;
            }
          }
        }
        if (n->op_type == "MatMul" || n->op_type == "Reshape" || n->op_type == "Transpose") {
          for (const auto& out : n->outputs) todo.emplace_back(out, depth + 1);
        }
      }
    }
    return std::nullopt;
  }

  /// The nonlinearity between intermediate.dense and output.dense.
  BertActivation activationAfter(const std::string& layer, const std::string& value) const {
    std::deque<std::pair<std::string, int>> todo{{value, 0}};
    std::set<std::string> seen;
    while (!todo.empty()) {
      const auto [v, depth] = todo.front();
      todo.pop_front();
      if (!seen.insert(v).second || depth > 8) continue;
      for (const OnnxNode* n : graph_.consumers(v)) {
        if (n->op_type == "Erf") return BertActivation::kGelu;
        if (n->op_type == "Tanh") return BertActivation::kGeluTanh;
        if (n->op_type == "Relu") return BertActivation::kRelu;
        if (n->op_type == "Gelu") {
          const OnnxAttribute* approximate = n->attribute("approximate");
          return approximate != nullptr && approximate->s == "tanh" ? BertActivation::kGeluTanh
                                                                    : BertActivation::kGelu;
        }
        if (n->op_type == "MatMul" || n->op_type == "Gemm") continue;  // output.dense
        for (const auto& out : n->outputs) todo.emplace_back(out, depth + 1);
      }
    }
    refuse("cannot tell the activation of " + layer +
           "intermediate (no Erf, Tanh, Gelu or Relu node after intermediate.dense)");
  }

  const OnnxFile& file_;
  GraphIndex graph_;
  std::optional<float> eps_;  // of the LayerNorms seen so far
};

}  // namespace

int64_t OnnxTensor::numel() const {
  int64_t n = 1;
  for (const int64_t d : dims) n *= d;  // validated when parsed
  return n;
}

const OnnxAttribute* OnnxNode::attribute(const std::string& attr_name) const {
  for (const auto& a : attributes) {
    if (a.name == attr_name) return &a;
  }
  return nullptr;
}

OnnxFile::OnnxFile(const std::string& path) : file_(std::make_shared<MappedFile>(path)) {
  PTUNE_CHECK(file_->size() > 0, path, ": file is empty; export or download the model again");
  Wire model(*file_, 0, file_->size(), "ModelProto");
  bool has_graph = false;
  while (model.more()) {
    const Wire::Field f = model.field();
    switch (f.number) {
      case 1: model.expect(f, kVarint, "ir_version"); ir_version_ = toInt64(model.varint()); break;
      case 2:
        model.expect(f, kLengthDelimited, "producer_name");
        producer_name_ = model.string();
        break;
      case 7: {
        model.expect(f, kLengthDelimited, "graph");
        PTUNE_CHECK(!has_graph, path, ": corrupt ONNX file: the ModelProto has two graphs");
        has_graph = true;
        Wire graph = model.nested("GraphProto");
        while (graph.more()) {
          const Wire::Field g = graph.field();
          switch (g.number) {
            case 1:
              graph.expect(g, kLengthDelimited, "node");
              nodes_.push_back(parseNode(
                  graph.nested("GraphProto.node[" + std::to_string(nodes_.size()) + "]")));
              break;
            case 5:
              graph.expect(g, kLengthDelimited, "initializer");
              initializers_.push_back(parseTensor(graph.nested(
                  "GraphProto.initializer[" + std::to_string(initializers_.size()) + "]")));
              break;
            case 11:
              graph.expect(g, kLengthDelimited, "input");
              inputs_.push_back(parseValueInfoName(graph.nested("GraphProto.input")));
              break;
            case 12:
              graph.expect(g, kLengthDelimited, "output");
              outputs_.push_back(parseValueInfoName(graph.nested("GraphProto.output")));
              break;
            case 15:
              graph.fail(g.at, "sparse initializers are not supported; densify them with "
                               "onnx before importing");
            default: graph.skip(g); break;
          }
        }
        break;
      }
      case 8: {
        model.expect(f, kLengthDelimited, "opset_import");
        const auto [domain, version] = parseOpset(model.nested("OperatorSetIdProto"));
        if (domain.empty() || domain == "ai.onnx") opset_version_ = version;
        break;
      }
      default: model.skip(f); break;
    }
  }
  PTUNE_CHECK(has_graph, path, ": no graph in the file (ModelProto field 7); is this an ONNX "
              "model? Export it with torch.onnx.export or optimum-cli export onnx");
  for (size_t i = 0; i < initializers_.size(); ++i) {
    const std::string& name = initializers_[i].name;
    PTUNE_CHECK(!name.empty(), path, ": initializer ", i, " has no name (corrupt file)");
    PTUNE_CHECK(by_name_.emplace(name, i).second, path, ": two initializers are named '", name,
                "' (corrupt file)");
  }
}

const std::string& OnnxFile::path() const { return file_->path(); }

std::vector<std::string> OnnxFile::initializerNames() const {
  std::vector<std::string> out;
  out.reserve(initializers_.size());
  for (const auto& t : initializers_) out.push_back(t.name);
  return out;
}

const OnnxTensor& OnnxFile::initializerInfo(const std::string& name) const {
  const auto it = by_name_.find(name);
  PTUNE_CHECK(it != by_name_.end(), file_->path(), ": no initializer named '", name, "'");
  return initializers_[it->second];
}

at::Tensor OnnxFile::initializer(const std::string& name) const {
  return tensor(initializerInfo(name));
}

at::Tensor OnnxFile::tensor(const OnnxTensor& t) const {
  const std::optional<OnnxDtype> dtype = readableDtype(t.data_type);
  PTUNE_CHECK(dtype.has_value(), file_->path(), ": tensor '", t.name, "' has data_type ",
              dataTypeName(t.data_type), " (", t.data_type,
              "), which ptune does not read (supported: FLOAT, FLOAT16, BFLOAT16, DOUBLE, "
              "INT64, INT32, INT16, INT8, UINT8, BOOL)");
  const auto options = at::TensorOptions().dtype(dtype->type);
  if (t.has_raw) {
    if (t.raw_size == 0) return at::empty(t.dims, options);
    const uint8_t* ptr = file_->data() + t.raw_offset;
    if (reinterpret_cast<uintptr_t>(ptr) % dtype->bytes == 0) {
      std::shared_ptr<MappedFile> keep_alive = file_;
      // The tensor shares ownership of the mapping; data is read-only (MAP_PRIVATE, PROT_READ).
      return at::from_blob(
          const_cast<uint8_t*>(ptr), t.dims, [keep_alive](void*) mutable { keep_alive.reset(); },
          options);
    }
    // Protobuf does not align raw_data; a misaligned view would break vectorised kernels.
    at::Tensor copy = at::empty(t.dims, options);
    std::memcpy(copy.data_ptr(), ptr, t.raw_size);
    return copy;
  }
  at::Tensor out = at::empty(t.dims, options);
  const auto n = static_cast<size_t>(t.numel());
  switch (static_cast<OnnxDataType>(t.data_type)) {
    case OnnxDataType::kFloat: std::memcpy(out.data_ptr(), t.float_data.data(), n * 4); break;
    case OnnxDataType::kInt64: std::memcpy(out.data_ptr(), t.int64_data.data(), n * 8); break;
    case OnnxDataType::kDouble: std::memcpy(out.data_ptr(), t.double_data.data(), n * 8); break;
    case OnnxDataType::kInt32: std::memcpy(out.data_ptr(), t.int32_data.data(), n * 4); break;
    case OnnxDataType::kFloat16:
    case OnnxDataType::kBfloat16:
    case OnnxDataType::kInt16: {  // the low 16 bits of each int32_data entry
      auto* dst = static_cast<uint16_t*>(out.data_ptr());
      for (size_t i = 0; i < n; ++i) dst[i] = static_cast<uint16_t>(t.int32_data[i]);
      break;
    }
    default: {  // INT8, UINT8, BOOL: one byte per int32_data entry
      auto* dst = static_cast<uint8_t*>(out.data_ptr());
      for (size_t i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(t.int32_data[i]);
      break;
    }
  }
  return out;
}

const char* hfActivationName(BertActivation activation) {
  switch (activation) {
    case BertActivation::kGelu: return "gelu";
    case BertActivation::kGeluTanh: return "gelu_new";
    case BertActivation::kRelu: return "relu";
  }
  return "gelu";
}

OnnxBert mapBertOnnx(const OnnxFile& file) { return BertMapper(file).map(); }

OnnxWeights::OnnxWeights(const std::string& path) : path_(path), bert_(mapBertOnnx(OnnxFile(path))) {}

at::Tensor OnnxWeights::load(const std::string& name, at::ScalarType dtype) const {
  const auto it = bert_.weights.find(name);
  PTUNE_CHECK(it != bert_.weights.end(), path_, ": the graph has no weight that maps to '", name,
              "'; is this a BERT-family encoder export?");
  return it->second.scalar_type() == dtype ? it->second : it->second.to(dtype);
}

std::vector<int64_t> OnnxWeights::shape(const std::string& name) const {
  const auto it = bert_.weights.find(name);
  PTUNE_CHECK(it != bert_.weights.end(), path_, ": the graph has no weight that maps to '", name, "'");
  return it->second.sizes().vec();
}

}  // namespace ptune::io
