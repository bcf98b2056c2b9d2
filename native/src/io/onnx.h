// ONNX reader (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto) without ONNX Runtime or
// libprotobuf: a hand-written decoder of the protobuf wire format for the parts of ModelProto
// ptune needs (graph nodes, attributes, initializers, input/output names), and a mapper from a
// BERT-family encoder export (sentence-embedding models) to Hugging Face BertModel weights.
//
// The file is memory-mapped; initializers stored as raw_data are at::Tensor views of the mapping
// when suitably aligned (zero copy; the mapping lives as long as any view), else copies.
// Any malformed, truncated or hostile file gives a ptune::Error naming the file and the problem.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/weight_source.h"

namespace ptune::io {

class MappedFile;

/// TensorProto.DataType values ptune knows by name (the rest of 1..23 parse but do not read).
enum class OnnxDataType : int32_t {
  kFloat = 1,
  kUint8 = 2,
  kInt8 = 3,
  kUint16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kDouble = 11,
  kUint32 = 12,
  kUint64 = 13,
  kBfloat16 = 16,
};

/// One TensorProto (an initializer, or the value of a Constant node). Metadata is public; the
/// data is read through OnnxFile::tensor().
struct OnnxTensor {
  std::string name;
  std::vector<int64_t> dims;  // empty for a scalar
  int32_t data_type = 0;      // TensorProto.DataType (OnnxDataType for the common ones)

  int64_t numel() const;

  // Where the data is: raw_data bytes inside the mapped file, or one of the typed fields.
  bool has_raw = false;
  size_t raw_offset = 0;  // byte offset in the file
  size_t raw_size = 0;
  std::vector<float> float_data;
  std::vector<int32_t> int32_data;  // also INT16/INT8/UINT8/BOOL values and FLOAT16 bits
  std::vector<int64_t> int64_data;
  std::vector<double> double_data;
  std::vector<uint64_t> uint64_data;
};

/// AttributeProto.AttributeType values.
enum class OnnxAttributeType : int32_t {
  kUndefined = 0,
  kFloat = 1,
  kInt = 2,
  kString = 3,
  kTensor = 4,
  kGraph = 5,
  kFloats = 6,
  kInts = 7,
  kStrings = 8,
};

/// One AttributeProto. Subgraphs (GRAPH/GRAPHS) are recognised by type and not decoded.
struct OnnxAttribute {
  std::string name;
  OnnxAttributeType type = OnnxAttributeType::kUndefined;
  float f = 0.0f;
  int64_t i = 0;
  std::string s;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::shared_ptr<const OnnxTensor> t;  // set when type is kTensor
};

/// One NodeProto.
struct OnnxNode {
  std::string name;
  std::string op_type;
  std::string domain;  // "" is the default ONNX domain
  std::vector<std::string> inputs;   // "" marks an omitted optional input
  std::vector<std::string> outputs;
  std::vector<OnnxAttribute> attributes;

  /// The named attribute, or nullptr.
  const OnnxAttribute* attribute(const std::string& attr_name) const;
};

/// One .onnx file: ModelProto -> GraphProto, decoded once when opened.
class OnnxFile {
 public:
  explicit OnnxFile(const std::string& path);

  const std::string& path() const;
  int64_t irVersion() const { return ir_version_; }
  const std::string& producerName() const { return producer_name_; }
  /// Operator set version of the default ONNX domain (0 when not declared).
  int64_t opsetVersion() const { return opset_version_; }

  /// Nodes in graph order (ONNX requires topological order).
  const std::vector<OnnxNode>& nodes() const { return nodes_; }
  /// Names of the graph's inputs and outputs (ValueInfoProto.name).
  const std::vector<std::string>& inputs() const { return inputs_; }
  const std::vector<std::string>& outputs() const { return outputs_; }

  /// Initializer names in file order.
  std::vector<std::string> initializerNames() const;
  bool hasInitializer(const std::string& name) const { return by_name_.count(name) != 0; }
  /// Metadata of an initializer; throws naming the file when absent.
  const OnnxTensor& initializerInfo(const std::string& name) const;
  /// The initializer as a tensor in its stored dtype: a read-only view of the mapping when stored
  /// as aligned raw_data, else a copy. Throws when absent or of a dtype ptune does not read.
  at::Tensor initializer(const std::string& name) const;
  /// Any tensor of this file (an initializer or a Constant node's value) as above.
  at::Tensor tensor(const OnnxTensor& t) const;

 private:
  std::shared_ptr<MappedFile> file_;
  int64_t ir_version_ = 0;
  int64_t opset_version_ = 0;
  std::string producer_name_;
  std::vector<OnnxNode> nodes_;
  std::vector<std::string> inputs_;
  std::vector<std::string> outputs_;
  std::vector<OnnxTensor> initializers_;
  std::map<std::string, size_t> by_name_;  // initializer name -> index in initializers_
};

/// The activation of a BERT feed-forward block, as Hugging Face names it in hidden_act.
enum class BertActivation {
  kGelu,      // exact GELU, x * (1 + erf(x / sqrt 2)) / 2: "gelu"
  kGeluTanh,  // tanh approximation: "gelu_new" (same function as "gelu_pytorch_tanh")
  kRelu,      // "relu"
};

/// "gelu", "gelu_new" or "relu".
const char* hfActivationName(BertActivation activation);

/// The config.json values of a Hugging Face BertModel, as implied by an ONNX graph.
struct BertDims {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t intermediate_size = 0;
  int64_t max_position_embeddings = 0;
  int64_t type_vocab_size = 0;
  /// The epsilon of every LayerNorm, as the shortest decimal that rounds to the stored fp32
  /// constant (an export of 1e-12 stores 9.99999996e-13 and reads back as 1e-12).
  double layer_norm_eps = 0.0;
  BertActivation hidden_act = BertActivation::kGelu;
  bool has_pooler = false;
};

/// Every weight of a Hugging Face BertModel under its state-dict name, in the stored dtype.
/// Linear weights are in torch layout (out, in); the rest are views of the file where possible.
struct OnnxBert {
  BertDims dims;
  std::map<std::string, at::Tensor> weights;
};

/// Maps a BERT-family encoder graph (embeddings, L x [self-attention, output, intermediate,
/// output], optional pooler) to HF names and infers its config. Anonymous MatMul weights are
/// named after the bias they are added to. Throws naming what is missing for other graphs.
OnnxBert mapBertOnnx(const OnnxFile& file);

/// The weights of a BERT-family ONNX export under Hugging Face BertModel names: the model
/// families read it like a safetensors folder.
class OnnxWeights final : public WeightSource {
 public:
  explicit OnnxWeights(const std::string& path);
  bool contains(const std::string& name) const override { return bert_.weights.count(name) != 0; }
  at::Tensor load(const std::string& name, at::ScalarType dtype) const override;
  using WeightSource::load;
  std::vector<int64_t> shape(const std::string& name) const override;
  const std::string& origin() const override { return path_; }
  const BertDims& dims() const { return bert_.dims; }

 private:
  std::string path_;
  OnnxBert bert_;
};

}  // namespace ptune::io
