// Implementation of the façade (native/include/ptune/ptune.h): raw pointers in, tensors inside.
#include "ptune/ptune.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not pulled in by ATen.h in libtorch 2.x)

#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "api/translate.h"
#include "core/check.h"
#include "core/dtypes.h"
#include "generate/decode_session.h"
#include "generate/generation.h"
#include "generate/mixed_batch.h"
#include "io/onnx.h"
#include "io/safetensors.h"
#include "heads/classifier.h"
#include "loss/classification_loss.h"
#include "loss/linear_cross_entropy.h"
#include "models/backbone.h"
#include "optim/adamw.h"
#include "optim/loss_scaler.h"
#include "prompt/prompt_method.h"
#include "prompt/prompted_input.h"

namespace ptune {
namespace {

const auto kLong = at::TensorOptions().dtype(at::kLong);

/// Caller memory (rows, cols) on the model's device: on CPU a read-only view, valid for the
/// duration of the call; elsewhere one host-to-device copy (the only kind the core makes).
at::Tensor view(const at::Device& device, const int64_t* data, int64_t rows, int64_t cols, const char* name) {
  PTUNE_CHECK(data != nullptr, name, " is null");
  PTUNE_CHECK(rows > 0 && cols > 0, name, " must be non-empty, got (", rows, ", ", cols, ")");
  return at::from_blob(const_cast<int64_t*>(data), {rows, cols}, kLong).to(device);
}

/// Like view(), for an optional input (null = undefined tensor).
at::Tensor optionalView(const at::Device& device, const int64_t* data, int64_t rows, int64_t cols, const char* name) {
  return data == nullptr ? at::Tensor() : view(device, data, rows, cols, name);
}

/// Copies n elements; with n = 0 the buffers may be null (an empty std::vector's data()), which
/// std::memcpy does not allow.
template <typename T>
void copyElements(T* dst, const T* src, size_t n) {
  if (n > 0) {
    std::memcpy(dst, src, n * sizeof(T));
  }
}

/// t (any device and dtype) as fp32 host memory: out holds t.numel() floats.
void copyOut(const at::Tensor& t, float* out) {
  PTUNE_CHECK(out != nullptr, "output buffer is null");
  const at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
  std::memcpy(out, c.data_ptr<float>(), static_cast<size_t>(c.numel()) * sizeof(float));
}

/// Token ids (any device) as host memory: out holds t.numel() int64.
void copyTokens(const at::Tensor& t, int64_t* out) {
  const at::Tensor c = t.to(at::kCPU).contiguous();
  copyElements(out, c.data_ptr<int64_t>(), static_cast<size_t>(c.numel()));
}

/// The device of LoadOptions; throws one line naming --device when it does not exist here.
at::Device loadDevice(const LoadOptions& o) {
  if (o.device_type == static_cast<int32_t>(DeviceType::kCpu)) {
    PTUNE_CHECK(o.device_index == 0, "--device cpu takes no device index (got cpu:", o.device_index, ")");
    return at::Device(at::kCPU);
  }
  PTUNE_CHECK(o.device_type == static_cast<int32_t>(DeviceType::kCuda), "--device: unknown device type ",
              o.device_type, " (expected cpu or cuda[:N])");
  const int32_t count = cudaDeviceCount();
  PTUNE_CHECK(count > 0, "--device cuda: no CUDA device is available (",
              at::hasCUDA() ? "torch reports 0 GPUs" : "this ptune build is CPU-only", "); use --device cpu");
  PTUNE_CHECK(o.device_index >= 0 && o.device_index < count, "--device cuda:", o.device_index, ": torch reports ",
              count, " CUDA device(s), cuda:0 to cuda:", count - 1);
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(o.device_index));
}

/// The compute dtype of LoadOptions on `device`; throws one line naming --dtype when unsupported.
at::ScalarType loadDtype(const LoadOptions& o, const at::Device& device) {
  switch (static_cast<DType>(o.dtype)) {
    case DType::kFp32: return at::kFloat;
    case DType::kBf16: return at::kBFloat16;
    case DType::kFp16:
      // libtorch 1.13's CPU kernels have no fp16 matrix products (addmm / bmm) nor layer norm.
      PTUNE_CHECK(!device.is_cpu(), "--dtype fp16 needs --device cuda; use bf16 on CPU");
      return at::kHalf;
  }
  throw Error(detail::concat("--dtype: unknown dtype ", o.dtype, " (expected fp32, bf16 or fp16)"));
}

/// The causal-LM objective's model: a decoder with its LM head.
const heads::LmHead& causalHead(const models::Backbone& model) {
  PTUNE_CHECK(model.causal(), "training with the causal-LM objective needs a decoder; this ",
              models::familyName(model.family()), " model is an encoder");
  return model.requireHead();
}

/// Sum of the shifted cross-entropy: hidden (B, S, C) predicts labels (B, S) one step later.
at::Tensor shiftedLossSum(const models::Backbone& model, const at::Tensor& hidden,
                          const at::Tensor& labels, int64_t& label_tokens) {
  const heads::LmHead& head = causalHead(model);
  const int64_t C = hidden.size(2), S = hidden.size(1);
  const at::Tensor h = head.transform(hidden.narrow(1, 0, S - 1)).reshape({-1, C});  // (B*(S-1), C)
  const at::Tensor y = labels.narrow(1, 1, S - 1).reshape({-1});                    // (B*(S-1))
  label_tokens = y.ne(prompt::kIgnoreIndex).sum().item<int64_t>();
  return loss::linearCrossEntropySum(h, head.weight(), y, 0, head.bias());
}

/// Final hidden states (B, Pin+T, C) of a (possibly prompted) batch; method may be null.
at::Tensor finalHidden(const models::Backbone& model, const prompt::PromptMethodImpl* method,
                       const at::Tensor& ids, const at::Tensor& mask, bool training,
                       int64_t& input_virtual_tokens, const at::Tensor& token_types = at::Tensor()) {
  prompt::PreparedInput in = prompt::prepareInput(model, method, ids, mask, training, token_types);
  input_virtual_tokens = in.input_virtual_tokens;
  return model.forward(in.input, &in.cache);
}

}  // namespace

// ---------------------------------------------------------------------------------------
struct Model::Impl {
  std::unique_ptr<models::Backbone> model;
  LoadOptions options;
};

struct PromptModel::Impl {
  std::shared_ptr<const Model::Impl> owner;  // keeps the base model alive
  const models::Backbone& base;
  PromptMethod kind;
  std::unique_ptr<prompt::PromptMethodImpl> method;
  std::unique_ptr<models::Backbone> tuned;     // two-stage: base with trainable top layers
  std::vector<prompt::NamedParameter> layers;  // the unfrozen layers' weights

  const models::Backbone& model() const { return tuned ? *tuned : base; }

  std::vector<prompt::NamedParameter*> all() {
    std::vector<prompt::NamedParameter*> out;
    for (auto& p : method->parameters()) out.push_back(&p);
    for (auto& p : layers) out.push_back(&p);
    return out;
  }

  /// Drops any accumulated gradient (a diverged or replaced accumulation cycle).
  void discardGradients() {
    for (auto* p : all()) {
      if (p->tensor.grad().defined()) p->tensor.mutable_grad().zero_();
    }
  }

  prompt::NamedParameter& find(const char* name) {
    PTUNE_CHECK(name != nullptr, "parameter name is null");
    for (auto& p : layers) {
      if (p.name == name) return p;
    }
    return method->parameter(name);
  }

  /// Forward pass to the final hidden states of the text-and-virtual positions.
  at::Tensor hidden(const at::Tensor& ids, const at::Tensor& mask, bool training,
                    int64_t& input_virtual_tokens) const {
    return finalHidden(model(), method.get(), ids, mask, training, input_virtual_tokens);
  }
};

// ---------------------------------------------------------------------------------------
namespace {
bool isOnnxFile(const std::string& path) {
  return path.size() > 5 && path.compare(path.size() - 5, 5, ".onnx") == 0;
}
}  // namespace

int32_t cudaDeviceCount() {
  return api::translated("counting CUDA devices",
                         [] { return at::hasCUDA() ? static_cast<int32_t>(at::getNumGPUs()) : int32_t{0}; });
}

Model::Model(const char* path, const ModelSpec& spec)
    : Model(path, spec, LoadOptions{static_cast<int32_t>(DeviceType::kCpu), 0, static_cast<int32_t>(DType::kFp32)}) {}

Model::Model(const char* path, const ModelSpec& spec, const LoadOptions& options) {
  impl_ = api::translated("loading the model", [&] {
    // Device and dtype first: a machine without the device fails before any weight is read.
    const at::Device device = loadDevice(options);
    const at::ScalarType dtype = loadDtype(options, device);
    PTUNE_CHECK(path != nullptr, "model path is null");
    if (isOnnxFile(path)) {
      const io::OnnxWeights weights(path);
      return std::make_shared<Impl>(Impl{models::loadBackbone(weights, spec, dtype, device), options});
    }
    const io::WeightStore weights(path);
    return std::make_shared<Impl>(Impl{models::loadBackbone(weights, spec, dtype, device), options});
  });
}

ModelSpec describeOnnxEncoder(const char* onnx_path) {
  return api::translated("reading the ONNX model", [&] {
    PTUNE_CHECK(onnx_path != nullptr, "ONNX path is null");
    const io::BertDims d = io::mapBertOnnx(io::OnnxFile(onnx_path)).dims;
    ModelSpec spec{};
    spec.family = static_cast<int32_t>(ModelFamily::kBert);
    spec.vocab_size = d.vocab_size;
    spec.hidden_size = d.hidden_size;
    spec.intermediate_size = d.intermediate_size;
    spec.num_hidden_layers = d.num_hidden_layers;
    spec.num_attention_heads = d.num_attention_heads;
    spec.num_key_value_heads = d.num_attention_heads;
    spec.head_dim = d.hidden_size / d.num_attention_heads;
    spec.max_position_embeddings = d.max_position_embeddings;
    spec.norm_eps = d.layer_norm_eps;
    spec.activation = static_cast<int32_t>(d.hidden_act == io::BertActivation::kGelu       ? Activation::kGeluExact
                                           : d.hidden_act == io::BertActivation::kGeluTanh ? Activation::kGeluTanh
                                                                                           : Activation::kRelu);
    spec.tie_word_embeddings = true;
    spec.rope_theta = 10000.0;
    spec.type_vocab_size = d.type_vocab_size;
    return spec;
  });
}

Model::~Model() = default;

int32_t Model::family() const { return impl_->model->spec().family; }
bool Model::isCausal() const { return impl_->model->causal(); }
bool Model::hasLmHead() const { return impl_->model->head() != nullptr; }
int64_t Model::vocabSize() const { return impl_->model->vocab(); }
int64_t Model::hiddenSize() const { return impl_->model->hidden(); }
int64_t Model::numLayers() const { return impl_->model->layers(); }
int64_t Model::numKeyValueHeads() const { return impl_->model->kvHeads(); }
int64_t Model::headDim() const { return impl_->model->headDim(); }
LoadOptions Model::loadOptions() const { return impl_->options; }

void Model::embed(const int64_t* ids, int64_t n, float* out) const {
  api::translated("embedding tokens", [&] {
    at::NoGradGuard no_grad;
    const at::Tensor t = view(impl_->model->device(), ids, 1, n, "ids");
    prompt::checkTokenIds(*impl_->model, t);
    copyOut(impl_->model->embed(t).squeeze(0), out);
  });
}

int64_t Model::inputVirtualTokens(const PromptModel* prompt) const {
  if (prompt == nullptr) return 0;
  return prompt->method() == static_cast<int32_t>(PromptMethod::kPrefixTuning)
             ? 0
             : prompt->numVirtualTokens();
}

namespace {
/// The model a prompt runs on (its two-stage copy, if any) and its method; checks ownership.
/// (A template so that it never names the private PromptModel::Impl.)
template <typename PromptImpl>
std::pair<const models::Backbone*, const prompt::PromptMethodImpl*> resolve(const models::Backbone& model,
                                                                           const PromptImpl* prompt) {
  PTUNE_CHECK(prompt == nullptr || &prompt->base == &model, "the prompt belongs to another model");
  if (prompt == nullptr) return {&model, nullptr};
  return {&prompt->model(), prompt->method.get()};
}
}  // namespace

void Model::logits(const PromptModel* prompt, const int64_t* ids, const int64_t* mask,
                   const int64_t* token_types, int64_t B, int64_t T, float* out) const {
  api::translated("computing logits", [&] {
    at::NoGradGuard no_grad;
    const auto [model, method] = resolve(*impl_->model, prompt != nullptr ? prompt->impl_.get() : nullptr);
    const heads::LmHead& head = model->requireHead();
    int64_t virtual_tokens = 0;
    const at::Device dev = model->device();
    const at::Tensor hidden = finalHidden(*model, method, view(dev, ids, B, T, "ids"), view(dev, mask, B, T, "mask"),
                                          false, virtual_tokens, optionalView(dev, token_types, B, T, "token_types"));
    copyOut(head.logits(hidden), out);
  });
}

void Model::hiddenStates(const PromptModel* prompt, const int64_t* ids, const int64_t* mask,
                         const int64_t* token_types, int64_t B, int64_t T, float* out) const {
  api::translated("computing hidden states", [&] {
    at::NoGradGuard no_grad;
    const auto [model, method] = resolve(*impl_->model, prompt != nullptr ? prompt->impl_.get() : nullptr);
    int64_t virtual_tokens = 0;
    const at::Device dev = model->device();
    copyOut(finalHidden(*model, method, view(dev, ids, B, T, "ids"), view(dev, mask, B, T, "mask"), false,
                        virtual_tokens, optionalView(dev, token_types, B, T, "token_types")),
            out);
  });
}

void Model::generate(const PromptModel* prompt, const int64_t* ids, const int64_t* mask,
                     int64_t B, int64_t T, const int64_t* eos_ids, int64_t E,
                     const GenerateOptions& options, int64_t* out_tokens,
                     int64_t* out_lengths) const {
  api::translated("generating", [&] {
    at::NoGradGuard no_grad;
    const auto [model, method] = resolve(*impl_->model, prompt != nullptr ? prompt->impl_.get() : nullptr);
    std::vector<int64_t> eos(eos_ids, eos_ids + (eos_ids != nullptr ? E : 0));
    std::vector<int64_t> lengths;
    const at::Tensor tokens = generate::generate(*model, method, view(model->device(), ids, B, T, "ids"),
                                                 view(model->device(), mask, B, T, "mask"), eos, options, lengths);
    copyTokens(tokens, out_tokens);
    copyElements(out_lengths, lengths.data(), lengths.size());
  });
}

// ---------------------------------------------------------------------------------------
struct MixedBatch::Impl {
  std::shared_ptr<const Model::Impl> model;                 // keeps the weights alive
  std::vector<std::shared_ptr<PromptModel::Impl>> prompts;  // per row (null: none), kept alive
  std::vector<generate::MixedRow> rows;
};

MixedBatch::MixedBatch(const Model& model) {
  impl_ = api::translated("creating a mixed batch", [&] {
    auto impl = std::make_unique<Impl>();
    impl->model = model.impl_;
    return impl;
  });
}

MixedBatch::~MixedBatch() = default;

void MixedBatch::addRow(const PromptModel* prompt, const int64_t* ids, int64_t T, const GenerateOptions& options) {
  api::translated("adding a row to the mixed batch", [&] {
    const std::string row = "row " + std::to_string(impl_->rows.size());
    PTUNE_CHECK(ids != nullptr && T > 0, row, ": ids must be non-empty, got ", T, " tokens");
    generate::checkOptions(options, row.c_str());
    std::shared_ptr<PromptModel::Impl> p = prompt != nullptr ? prompt->impl_ : nullptr;
    PTUNE_CHECK(p == nullptr || &p->base == impl_->model->model.get(), row, ": the prompt belongs to another model");
    PTUNE_CHECK(p == nullptr || p->tuned == nullptr, row, ": the prompt has unfrozen transformer layers (two-stage ",
                "training), which run on their own copy of the model; generate with it alone");
    generate::MixedRow r;
    r.method = p != nullptr ? p->method.get() : nullptr;
    r.ids.assign(ids, ids + T);
    r.options = options;
    impl_->rows.push_back(std::move(r));
    impl_->prompts.push_back(std::move(p));
  });
}

int64_t MixedBatch::size() const { return static_cast<int64_t>(impl_->rows.size()); }

int64_t MixedBatch::maxTokens() const {
  int64_t T = 0;
  for (const auto& r : impl_->rows) T = std::max<int64_t>(T, static_cast<int64_t>(r.ids.size()));
  return T;
}

int64_t MixedBatch::maxNewTokens() const {
  int64_t N = 0;
  for (const auto& r : impl_->rows) N = std::max<int64_t>(N, r.options.max_new_tokens);
  return N;
}

void MixedBatch::logits(float* out) const {
  api::translated("computing logits of the mixed batch", [&] {
    at::NoGradGuard no_grad;
    copyOut(generate::mixedLogits(*impl_->model->model, impl_->rows), out);
  });
}

void MixedBatch::generate(const int64_t* eos_ids, int64_t E, int64_t* out_tokens, int64_t* out_lengths) const {
  api::translated("generating a mixed batch", [&] {
    at::NoGradGuard no_grad;
    PTUNE_CHECK(out_tokens != nullptr && out_lengths != nullptr, "output buffers are null");
    std::vector<int64_t> eos(eos_ids, eos_ids + (eos_ids != nullptr ? E : 0));
    std::vector<int64_t> lengths;
    const at::Tensor tokens = generate::mixedGenerate(*impl_->model->model, impl_->rows, eos, lengths);
    copyTokens(tokens, out_tokens);
    copyElements(out_lengths, lengths.data(), lengths.size());
  });
}

// ---------------------------------------------------------------------------------------
struct DecodeSession::Impl {
  std::shared_ptr<const Model::Impl> model;  // keeps the weights alive
  std::optional<generate::DecodeSession> session;
};

DecodeSession::DecodeSession(const Model& model, const int64_t* eos_ids, int64_t E) {
  impl_ = api::translated("creating a decoding session", [&] {
    PTUNE_CHECK(E >= 0 && (E == 0 || eos_ids != nullptr), "eos_ids: ", E, " ids but no array");
    auto impl = std::make_unique<Impl>();
    impl->model = model.impl_;
    impl->session.emplace(*impl->model->model, std::vector<int64_t>(eos_ids, eos_ids + E));
    return impl;
  });
}

DecodeSession::~DecodeSession() = default;

int64_t DecodeSession::add(const PromptModel* prompt, const int64_t* ids, int64_t T, const GenerateOptions& options) {
  return api::translated("adding a row to the decoding session", [&] {
    at::NoGradGuard no_grad;
    PTUNE_CHECK(ids != nullptr && T > 0, "ids must be non-empty, got ", T, " tokens");
    const PromptModel::Impl* p = prompt != nullptr ? prompt->impl_.get() : nullptr;
    PTUNE_CHECK(p == nullptr || &p->base == impl_->model->model.get(), "the prompt belongs to another model");
    PTUNE_CHECK(p == nullptr || p->tuned == nullptr, "the prompt has unfrozen transformer layers (two-stage ",
                "training), which run on their own copy of the model; generate with it alone");
    generate::MixedRow row;
    row.method = p != nullptr ? p->method.get() : nullptr;
    row.ids.assign(ids, ids + T);
    row.options = options;
    return impl_->session->add(row);
  });
}

bool DecodeSession::cancel(int64_t id) {
  return api::translated("cancelling a row of the decoding session", [&] {
    at::NoGradGuard no_grad;
    return impl_->session->cancel(id);
  });
}

int64_t DecodeSession::size() const { return impl_->session->size(); }

int64_t DecodeSession::step(int64_t* out_ids, int64_t* out_tokens, int64_t* out_done) {
  return api::translated("stepping the decoding session", [&] {
    at::NoGradGuard no_grad;
    PTUNE_CHECK(out_ids != nullptr && out_tokens != nullptr && out_done != nullptr, "output buffers are null");
    const std::vector<generate::SessionToken> tokens = impl_->session->step();
    for (size_t i = 0; i < tokens.size(); ++i) {
      out_ids[i] = tokens[i].id;
      out_tokens[i] = tokens[i].token;
      out_done[i] = tokens[i].done ? 1 : 0;
    }
    return static_cast<int64_t>(tokens.size());
  });
}

// ---------------------------------------------------------------------------------------
PromptModel::PromptModel(const Model& model, const PromptSpec& spec, const int64_t* block_sizes,
                         int64_t num_blocks) {
  impl_ = api::translated("creating the prompt", [&] {
    const models::Backbone& base = *model.impl_->model;
    // Prompt parameters are master (fp32) tensors on the model's device, whatever it computes in.
    const prompt::ModelDims dims{base.hidden(), base.layers(), base.kvHeads(), base.headDim(),
                                 masterType(base.dtype()), base.device()};
    std::vector<int64_t> blocks;
    if (block_sizes != nullptr) blocks.assign(block_sizes, block_sizes + num_blocks);
    PTUNE_CHECK(blocks.empty() || spec.method == static_cast<int32_t>(PromptMethod::kPromptTuning),
                "prompt blocks (composite prompts) need the prompt-tuning method");
    return std::make_shared<Impl>(Impl{model.impl_, base, static_cast<PromptMethod>(spec.method),
                                       prompt::createMethod(spec, dims, blocks), nullptr, {}});
  });
}

PromptModel::~PromptModel() = default;

int32_t PromptModel::method() const { return static_cast<int32_t>(impl_->kind); }

int64_t PromptModel::numVirtualTokens() const { return impl_->method->numVirtualTokens(); }

int64_t PromptModel::numParameters() const {
  return static_cast<int64_t>(impl_->method->parameters().size() + impl_->layers.size());
}

std::string PromptModel::parameterName(int64_t index) const {
  const auto all = impl_->all();
  PTUNE_CHECK(index >= 0 && index < static_cast<int64_t>(all.size()), "parameter index ", index,
              " out of range [0, ", all.size(), ")");
  return all[static_cast<size_t>(index)]->name;
}

int64_t PromptModel::parameterShape(const char* name, int64_t* dims) const {
  return api::translated("reading a parameter shape", [&] {
    const at::Tensor& t = impl_->find(name).tensor;
    PTUNE_CHECK(t.dim() <= 4, "parameter '", name, "' has rank ", t.dim(), " > 4");
    for (int64_t i = 0; i < t.dim(); ++i) dims[i] = t.size(i);
    return static_cast<int64_t>(t.dim());
  });
}

int64_t PromptModel::parameterNumel(const char* name) const {
  return api::translated("reading a parameter size", [&] { return impl_->find(name).tensor.numel(); });
}

void PromptModel::readParameter(const char* name, float* out) const {
  api::translated("reading a parameter", [&] { copyOut(impl_->find(name).tensor, out); });
}

void PromptModel::writeParameter(const char* name, const float* values) {
  api::translated("writing a parameter", [&] {
    at::NoGradGuard no_grad;
    at::Tensor& t = impl_->find(name).tensor;
    PTUNE_CHECK(values != nullptr, "values for '", name, "' are null");
    const at::Tensor src = at::from_blob(const_cast<float*>(values), t.sizes(),
                                         at::TensorOptions().dtype(at::kFloat));
    PTUNE_CHECK(at::isfinite(src).all().item<bool>(), "values for '", name,
                "' contain NaN or infinity");
    t.copy_(src);
  });
}

void PromptModel::setTrainable(const char* name, bool trainable, double learning_rate) {
  api::translated("changing a parameter", [&] {
    PTUNE_CHECK(learning_rate >= 0, "learning rate of '", name, "' must be >= 0");
    prompt::NamedParameter& p = impl_->find(name);
    p.trainable = trainable;
    p.learning_rate = learning_rate;
    p.tensor.set_requires_grad(trainable);
  });
}

bool PromptModel::isTrainable(const char* name) const {
  return api::translated("reading a parameter", [&] { return impl_->find(name).trainable; });
}

int64_t PromptModel::trainableParameterCount() const {
  int64_t n = 0;
  for (const auto* p : impl_->all()) n += p->trainable ? p->tensor.numel() : 0;
  return n;
}

void PromptModel::unfreezeTopLayers(int64_t layers, double learning_rate) {
  api::translated("unfreezing layers", [&] {
    Impl& s = *impl_;
    const int64_t L = s.base.layers();
    PTUNE_CHECK(layers >= 1 && layers <= L, "the number of layers to unfreeze must lie in [1, ",
                L, "], got ", layers);
    PTUNE_CHECK(learning_rate > 0, "the learning rate of unfrozen layers must be positive");
    PTUNE_CHECK(!s.tuned, "layers are unfrozen already");
    PTUNE_CHECK(masterType(s.base.dtype()) == s.base.dtype(),
                "two-stage training (--stage2-layers) trains the model's own weights, which needs a model "
                "loaded in fp32 (--dtype fp32)");
    s.tuned = s.base.clone();  // shares every weight until replaced below
    for (int64_t i = L - layers; i < L; ++i) {
      for (auto& [name, tensor] : s.tuned->layerWeights(i)) {
        *tensor = tensor->detach().clone();
        tensor->set_requires_grad(true);
        s.layers.push_back(prompt::NamedParameter{name, *tensor, true, learning_rate});
      }
    }
  });
}

int64_t PromptModel::peftEmbeddingsNumel() const {
  return api::translated("sizing the PEFT embeddings", [&] {
    at::NoGradGuard no_grad;
    const at::Tensor t = impl_->method->peftEmbeddings();
    return t.defined() ? t.numel() : int64_t{0};
  });
}

void PromptModel::exportPeftEmbeddings(float* out) const {
  api::translated("exporting the PEFT embeddings", [&] {
    at::NoGradGuard no_grad;
    const at::Tensor t = impl_->method->peftEmbeddings();
    PTUNE_CHECK(t.defined(), "dynamic prompts have no PEFT prompt_embeddings tensor");
    copyOut(t, out);
  });
}

// ---------------------------------------------------------------------------------------
struct Classifier::Impl {
  std::shared_ptr<const Model::Impl> owner;  // keeps the base model alive
  const models::Backbone& base;
  heads::Classifier head;

  /// Class scores (B, K) of a batch behind prompt (may be null); gradients flow when enabled.
  at::Tensor scores(const PromptModel::Impl* prompt, const at::Tensor& ids, const at::Tensor& mask,
                    const at::Tensor& token_types, const at::Tensor& slots, bool training) const;
};

namespace {
/// Slots (B) as text positions inside [0, T) of real tokens.
at::Tensor slotsView(const int64_t* slots, int64_t B, int64_t T, const at::Tensor& mask) {
  if (slots == nullptr) return at::Tensor();
  const at::Tensor s = at::from_blob(const_cast<int64_t*>(slots), {B}, kLong).to(mask.device());
  PTUNE_CHECK(s.min().item<int64_t>() >= 0 && s.max().item<int64_t>() < T, "a slot lies outside the ", T,
              " text positions");
  PTUNE_CHECK(mask.ne(0).gather(1, s.view({B, 1})).all().item<bool>(), "a slot points at padding");
  return s;
}
}  // namespace

at::Tensor Classifier::Impl::scores(const PromptModel::Impl* prompt, const at::Tensor& ids, const at::Tensor& mask,
                                    const at::Tensor& token_types, const at::Tensor& slots, bool training) const {
  const auto [model, method] = resolve(base, prompt);
  prompt::PreparedInput in = prompt::prepareInput(*model, method, ids, mask, training, token_types);
  const at::Tensor hidden = model->forward(in.input, &in.cache);
  return head.scores(*model, hidden, mask.ne(0), in.input_virtual_tokens, slots);
}

Classifier::Classifier(const Model& model, const ClassifierSpec& spec, const int64_t* word_class,
                       const int64_t* word_offsets, const int64_t* word_tokens, int64_t num_words) {
  impl_ = api::translated("creating the classifier", [&] {
    const models::Backbone& base = *model.impl_->model;
    heads::LabelWords words;
    if (num_words > 0) {
      PTUNE_CHECK(word_class != nullptr && word_offsets != nullptr && word_tokens != nullptr, "label words are null");
      std::vector<int64_t> classes(word_class, word_class + num_words);
      std::vector<int64_t> offsets(word_offsets, word_offsets + num_words + 1);
      std::vector<int64_t> tokens(word_tokens, word_tokens + offsets.back());
      words = heads::layoutLabelWords(spec.num_classes, classes, offsets, tokens, base.vocab());
    }
    return std::make_shared<Impl>(Impl{model.impl_, base, heads::Classifier(base, spec, std::move(words))});
  });
}

Classifier::~Classifier() = default;

int64_t Classifier::numClasses() const { return impl_->head.numClasses(); }
int64_t Classifier::numParameters() const { return static_cast<int64_t>(impl_->head.parameters().size()); }

std::string Classifier::parameterName(int64_t index) const {
  const auto& all = impl_->head.parameters();
  PTUNE_CHECK(index >= 0 && index < static_cast<int64_t>(all.size()), "classifier parameter index ", index,
              " out of range [0, ", all.size(), ")");
  return all[static_cast<size_t>(index)].name;
}

int64_t Classifier::parameterShape(const char* name, int64_t* dims) const {
  return api::translated("reading a classifier parameter shape", [&] {
    const at::Tensor& t = impl_->head.parameter(name).tensor;
    for (int64_t i = 0; i < t.dim(); ++i) dims[i] = t.size(i);
    return static_cast<int64_t>(t.dim());
  });
}

int64_t Classifier::parameterNumel(const char* name) const {
  return api::translated("reading a classifier parameter size", [&] { return impl_->head.parameter(name).tensor.numel(); });
}

void Classifier::readParameter(const char* name, float* out) const {
  api::translated("reading a classifier parameter", [&] { copyOut(impl_->head.parameter(name).tensor, out); });
}

void Classifier::writeParameter(const char* name, const float* values) {
  api::translated("writing a classifier parameter", [&] {
    at::NoGradGuard no_grad;
    at::Tensor& t = impl_->head.parameter(name).tensor;
    PTUNE_CHECK(values != nullptr, "values for '", name, "' are null");
    const at::Tensor src = at::from_blob(const_cast<float*>(values), t.sizes(), at::TensorOptions().dtype(at::kFloat));
    PTUNE_CHECK(at::isfinite(src).all().item<bool>(), "values for '", name, "' contain NaN or infinity");
    t.copy_(src);
  });
}

void Classifier::scores(const PromptModel* prompt, const int64_t* ids, const int64_t* mask, const int64_t* token_types,
                        const int64_t* slots, int64_t B, int64_t T, float* out) const {
  api::translated("classifying", [&] {
    at::NoGradGuard no_grad;
    const at::Device dev = impl_->base.device();
    const at::Tensor m = view(dev, mask, B, T, "mask");
    copyOut(impl_->scores(prompt != nullptr ? prompt->impl_.get() : nullptr, view(dev, ids, B, T, "ids"), m,
                          optionalView(dev, token_types, B, T, "token_types"), slotsView(slots, B, T, m), false),
            out);
  });
}

void Classifier::calibrate(const PromptModel* prompt, const int64_t* ids, const int64_t* mask, const int64_t* slots,
                           int64_t B, int64_t T) {
  api::translated("calibrating the verbalizer", [&] {
    at::NoGradGuard no_grad;
    PTUNE_CHECK(impl_->head.kind() == ClassifierHead::kVerbalizerHead, "only a verbalizer is calibrated");
    const at::Device dev = impl_->base.device();
    const at::Tensor m = view(dev, mask, B, T, "mask");
    const at::Tensor s = slotsView(slots, B, T, m);
    PTUNE_CHECK(s.defined(), "calibration needs the slot of every content-free input");
    const auto [model, method] = resolve(impl_->base, prompt != nullptr ? prompt->impl_.get() : nullptr);
    prompt::PreparedInput in = prompt::prepareInput(*model, method, view(dev, ids, B, T, "ids"), m, false);
    const at::Tensor hidden = model->forward(in.input, &in.cache);
    // OpenPrompt's calibrate: the mean of the raw slot logits over the content-free inputs.
    impl_->head.setCalibration(impl_->head.slotLogits(*model, hidden, in.input_virtual_tokens, s).mean(0));
  });
}

void Classifier::clearCalibration() { impl_->head.setCalibration(at::Tensor()); }

// ---------------------------------------------------------------------------------------
struct PromptTrainer::Impl {
  std::shared_ptr<PromptModel::Impl> prompt_owner;  // keeps the prompt (and its model) alive; may be null
  PromptModel::Impl* prompt;                        // null: a classifier alone (e.g. a linear probe)
  std::shared_ptr<Classifier::Impl> classifier;     // null: the causal-LM objective
  std::shared_ptr<const Model::Impl> model_owner;
  const models::Backbone& base;
  TrainOptions options;
  struct Moments {
    at::Tensor exp_avg, exp_avg_sq;
    // AdamW updates applied to this parameter (torch's per-parameter state['step']): layers
    // unfrozen in stage 2 start their bias correction at 1, not at the run's step count.
    int64_t step = 0;
  };
  std::map<std::string, Moments> moments;
  int64_t micro_steps = 0;
  int64_t optimizer_steps = 0;
  // Label tokens (examples for classification, weighted by class weights) of the accumulation
  // cycle so far: LossAveraging::kTokens divides by them.
  double cycle_weight = 0;
  at::Tensor class_weights;  // (K) or undefined
  // fp16 models only: the loss is scaled before backward, the gradients unscaled before the step.
  std::optional<optim::DynamicLossScaler> scaler =
      base.dtype() == at::kHalf ? std::optional<optim::DynamicLossScaler>(std::in_place) : std::nullopt;

  /// What backward runs on: the loss, scaled when a loss scaler is in use.
  at::Tensor forBackward(const at::Tensor& loss) const { return scaler ? scaler->scaled(loss) : loss; }

  /// The model the prompt runs on (its two-stage copy, if any).
  const models::Backbone& model() const { return prompt != nullptr ? prompt->model() : base; }

  /// Every parameter: the prompt's, then the classifier's.
  std::vector<prompt::NamedParameter*> all() {
    std::vector<prompt::NamedParameter*> out;
    if (prompt != nullptr) out = prompt->all();
    if (classifier) {
      for (auto& p : classifier->head.parameters()) out.push_back(&p);
    }
    return out;
  }

  prompt::NamedParameter& find(const char* name) {
    PTUNE_CHECK(name != nullptr, "parameter name is null");
    if (classifier) {
      for (auto& p : classifier->head.parameters()) {
        if (p.name == name) return p;
      }
    }
    PTUNE_CHECK(prompt != nullptr, "no classifier parameter named '", name, "'");
    return prompt->find(name);
  }

  void discardGradients() {
    for (auto* p : all()) {
      if (p->tensor.grad().defined()) p->tensor.mutable_grad().zero_();
    }
  }

  Moments& momentsOf(const prompt::NamedParameter& p) {
    auto it = moments.find(p.name);
    if (it == moments.end()) {
      it = moments.emplace(p.name, Moments{at::zeros_like(p.tensor, at::TensorOptions().requires_grad(false)),
                                           at::zeros_like(p.tensor, at::TensorOptions().requires_grad(false)),
                                           0})
               .first;
    }
    return it->second;
  }

  std::vector<prompt::NamedParameter*> trainable() {
    std::vector<prompt::NamedParameter*> out;
    for (auto* p : all()) {
      if (p->trainable) out.push_back(p);
    }
    PTUNE_CHECK(!out.empty(), "nothing to train: every prompt parameter is frozen");
    return out;
  }

  /// The micro-step of a loss whose gradient was accumulated: counts it and, every grad_accum
  /// micro-batches, clips, steps AdamW and the schedule. weight is what the cycle's summed loss
  /// is divided by (kTokens); stats receives the step's numbers.
  void finishMicroStep(double weight, const std::vector<prompt::NamedParameter*>& params, StepStats& stats);

  /// A diverged micro-batch: no backward, the accumulation cycle dropped.
  void dropCycle(StepStats& stats) {
    discardGradients();
    micro_steps -= micro_steps % options.grad_accum;
    cycle_weight = 0;
    stats.optimizer_step = optimizer_steps;
    stats.cycle_dropped = true;
  }
};

namespace {
void checkOptions(const TrainOptions& options) {
  PTUNE_CHECK(options.grad_accum >= 1, "grad_accum must be >= 1, got ", options.grad_accum);
  PTUNE_CHECK(options.learning_rate > 0, "learning rate must be positive, got ", options.learning_rate);
  PTUNE_CHECK(options.total_steps >= 1, "total_steps must be >= 1, got ", options.total_steps);
  PTUNE_CHECK(options.schedule >= 0 && options.schedule <= 2, "unknown schedule ", options.schedule);
  PTUNE_CHECK(options.loss_averaging >= 0 && options.loss_averaging <= 1, "unknown loss averaging ",
              options.loss_averaging);
}
}  // namespace

PromptTrainer::PromptTrainer(const Model& model, PromptModel& prompt, const TrainOptions& options) {
  impl_ = api::translated("creating the trainer", [&] {
    PTUNE_CHECK(&prompt.impl_->base == model.impl_->model.get(), "the prompt belongs to another model");
    causalHead(*model.impl_->model);
    checkOptions(options);
    return std::make_shared<Impl>(
        Impl{prompt.impl_, prompt.impl_.get(), nullptr, model.impl_, *model.impl_->model, options, {}, 0, 0, 0, {}});
  });
}

PromptTrainer::PromptTrainer(const Model& model, PromptModel* prompt, Classifier& classifier,
                             const TrainOptions& options) {
  impl_ = api::translated("creating the classification trainer", [&] {
    PTUNE_CHECK(prompt == nullptr || &prompt->impl_->base == model.impl_->model.get(),
                "the prompt belongs to another model");
    PTUNE_CHECK(&classifier.impl_->base == model.impl_->model.get(), "the classifier belongs to another model");
    checkOptions(options);
    PTUNE_CHECK(options.class_loss >= 0 && options.class_loss <= 1, "unknown class loss ", options.class_loss);
    return std::make_shared<Impl>(Impl{prompt != nullptr ? prompt->impl_ : nullptr,
                                       prompt != nullptr ? prompt->impl_.get() : nullptr, classifier.impl_,
                                       model.impl_, *model.impl_->model, options, {}, 0, 0, 0, {}});
  });
}

PromptTrainer::~PromptTrainer() = default;

void PromptTrainer::Impl::finishMicroStep(double weight, const std::vector<prompt::NamedParameter*>& params,
                                         StepStats& stats) {
  cycle_weight += weight;
  micro_steps += 1;
  stats.optimizer_step = optimizer_steps;
  if (micro_steps % options.grad_accum != 0) return;

  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (auto* p : params) {
    if (!p->tensor.grad().defined()) p->tensor.mutable_grad() = at::zeros_like(p->tensor);
    grads.push_back(p->tensor.grad());
  }
  if (options.loss_averaging == static_cast<int32_t>(LossAveraging::kTokens)) {
    for (auto& g : grads) g.div_(cycle_weight);
  }
  cycle_weight = 0;
  if (scaler) {
    const bool finite = scaler->unscale(grads);
    scaler->update(!finite);
    if (!finite) {
      // An fp16 overflow under the current scale, not a divergence: skip the step, keep going.
      for (auto& g : grads) g.zero_();
      return;
    }
  }
  stats.grad_norm = optim::clipGradNorm(grads, options.max_grad_norm);
  if (!std::isfinite(stats.grad_norm)) {
    // An inf/NaN gradient would poison the parameters and both moments for good: drop the cycle.
    for (auto& g : grads) g.zero_();
    stats.cycle_dropped = true;
    return;
  }
  const double factor = optim::scheduleFactor(static_cast<LrSchedule>(options.schedule), optimizer_steps,
                                              options.warmup_steps, options.total_steps);
  stats.learning_rate = options.learning_rate * factor;
  optimizer_steps += 1;
  std::vector<optim::AdamWSlot> slots;
  for (size_t i = 0; i < params.size(); ++i) {
    prompt::NamedParameter& p = *params[i];
    const double lr = (p.learning_rate > 0 ? p.learning_rate : options.learning_rate) * factor;
    Moments& m = momentsOf(p);
    m.step += 1;
    // detach() shares storage: the update lands in the parameter
    slots.push_back({p.tensor.detach(), grads[i], m.exp_avg, m.exp_avg_sq, m.step, lr});
  }
  optim::adamwStepAll(slots, {0.0, options.adam_beta1, options.adam_beta2, options.adam_epsilon, options.weight_decay});
  for (auto& g : grads) g.zero_();
  stats.optimizer_stepped = true;
  stats.optimizer_step = optimizer_steps;
}

StepStats PromptTrainer::trainMicroBatch(const int64_t* ids, const int64_t* mask, const int64_t* labels, int64_t B,
                                         int64_t T) {
  return api::translated("training step", [&] {
    Impl& s = *impl_;
    PTUNE_CHECK(!s.classifier && s.prompt != nullptr, "this trainer classifies: use trainClassBatch");
    const std::vector<prompt::NamedParameter*> trainable = s.trainable();
    s.prompt->method->seedDropout(s.micro_steps);
    int64_t virtual_tokens = 0;
    const at::Device dev = s.base.device();
    const at::Tensor hidden =
        s.prompt->hidden(view(dev, ids, B, T, "ids"), view(dev, mask, B, T, "mask"), true, virtual_tokens);
    StepStats stats{};
    const at::Tensor loss_sum = shiftedLossSum(s.prompt->model(), hidden,
                                               prompt::padLabels(view(dev, labels, B, T, "labels"), virtual_tokens),
                                               stats.label_tokens);
    PTUNE_CHECK(stats.label_tokens > 0,
                "a micro-batch has no label tokens (all labels are -100); check the data "
                "template and --max-length");
    const at::Tensor loss = loss_sum / static_cast<double>(stats.label_tokens);
    stats.loss = loss.item<double>();
    if (!std::isfinite(stats.loss)) {
      s.dropCycle(stats);  // diverged: the caller reports it
      return stats;
    }
    const bool per_token = s.options.loss_averaging == static_cast<int32_t>(LossAveraging::kTokens);
    // kTokens: gradients of the summed loss now, divided by the cycle's label tokens at the step.
    s.forBackward(per_token ? loss_sum : loss / static_cast<double>(s.options.grad_accum)).backward();
    s.finishMicroStep(static_cast<double>(stats.label_tokens), trainable, stats);
    return stats;
  });
}

StepStats PromptTrainer::trainClassBatch(const int64_t* ids, const int64_t* mask, const int64_t* token_types,
                                         const int64_t* slots, const int64_t* labels, int64_t B, int64_t T) {
  return api::translated("classification training step", [&] {
    Impl& s = *impl_;
    PTUNE_CHECK(s.classifier, "this trainer trains the causal-LM objective: use trainMicroBatch");
    const std::vector<prompt::NamedParameter*> trainable = s.trainable();
    if (s.prompt != nullptr) s.prompt->method->seedDropout(s.micro_steps);
    const at::Device dev = s.base.device();
    const at::Tensor m = view(dev, mask, B, T, "mask");
    PTUNE_CHECK(labels != nullptr, "labels is null");
    const at::Tensor y = at::from_blob(const_cast<int64_t*>(labels), {B}, kLong).to(dev);
    const at::Tensor scores = s.classifier->scores(s.prompt, view(dev, ids, B, T, "ids"), m,
                                                   optionalView(dev, token_types, B, T, "token_types"),
                                                   slotsView(slots, B, T, m), true);  // (B, K)
    loss::ClassLoss spec{static_cast<loss::ClassLossKind>(s.options.class_loss), s.options.focal_gamma,
                         s.options.label_smoothing, s.class_weights};
    const at::Tensor per_example = loss::classLossPerExample(scores, y, spec);
    const double weight = s.class_weights.defined() ? s.class_weights.index_select(0, y).sum().item<double>()
                                                    : static_cast<double>(B);
    const at::Tensor loss_sum = per_example.sum();
    StepStats stats{};
    stats.label_tokens = B;
    stats.loss = loss_sum.item<double>() / weight;
    if (!std::isfinite(stats.loss)) {
      s.dropCycle(stats);
      return stats;
    }
    const bool per_example_mean = s.options.loss_averaging == static_cast<int32_t>(LossAveraging::kTokens);
    s.forBackward(per_example_mean ? loss_sum : loss_sum / (weight * static_cast<double>(s.options.grad_accum)))
        .backward();
    s.finishMicroStep(weight, trainable, stats);
    return stats;
  });
}

void PromptTrainer::setClassWeights(const double* weights, int64_t K) {
  api::translated("setting class weights", [&] {
    PTUNE_CHECK(impl_->classifier, "class weights need a classifier");
    if (weights == nullptr) {
      impl_->class_weights = at::Tensor();
      return;
    }
    PTUNE_CHECK(K == impl_->classifier->head.numClasses(), "class weights: ", K, " values for ",
                impl_->classifier->head.numClasses(), " classes");
    const at::Tensor w = at::from_blob(const_cast<double*>(weights), {K}, at::TensorOptions().dtype(at::kDouble));
    PTUNE_CHECK(at::isfinite(w).all().item<bool>() && w.gt(0).all().item<bool>(), "class weights must be positive");
    impl_->class_weights = w.to(impl_->base.device(), masterType(impl_->base.dtype())).clone();
  });
}

EvalStats PromptTrainer::evaluate(const int64_t* ids, const int64_t* mask, const int64_t* labels, int64_t B,
                                  int64_t T) const {
  return api::translated("evaluating", [&] {
    at::NoGradGuard no_grad;
    const Impl& s = *impl_;
    PTUNE_CHECK(!s.classifier && s.prompt != nullptr, "this trainer classifies: use Classifier::scores");
    int64_t virtual_tokens = 0;
    const at::Device dev = s.base.device();
    const at::Tensor hidden =
        s.prompt->hidden(view(dev, ids, B, T, "ids"), view(dev, mask, B, T, "mask"), false, virtual_tokens);
    EvalStats stats{};
    stats.loss_sum = shiftedLossSum(s.prompt->model(), hidden,
                                    prompt::padLabels(view(dev, labels, B, T, "labels"), virtual_tokens),
                                    stats.label_tokens)
                         .item<double>();
    return stats;
  });
}

void PromptTrainer::readMoments(const char* name, float* exp_avg, float* exp_avg_sq) const {
  api::translated("reading optimizer moments", [&] {
    Impl& s = *impl_;
    Impl::Moments& m = s.momentsOf(s.find(name));
    copyOut(m.exp_avg, exp_avg);
    copyOut(m.exp_avg_sq, exp_avg_sq);
  });
}

void PromptTrainer::writeMoments(const char* name, const float* exp_avg, const float* exp_avg_sq) {
  api::translated("restoring optimizer moments", [&] {
    Impl& s = *impl_;
    const prompt::NamedParameter& p = s.find(name);
    Impl::Moments& m = s.momentsOf(p);
    const auto opts = at::TensorOptions().dtype(at::kFloat);
    PTUNE_CHECK(exp_avg != nullptr && exp_avg_sq != nullptr, "moments of '", name, "' are null");
    m.exp_avg.copy_(at::from_blob(const_cast<float*>(exp_avg), p.tensor.sizes(), opts));
    m.exp_avg_sq.copy_(at::from_blob(const_cast<float*>(exp_avg_sq), p.tensor.sizes(), opts));
    m.step = s.optimizer_steps;  // checkpoint moments: updated at every step so far
  });
}

int64_t PromptTrainer::optimizerStep() const { return impl_->optimizer_steps; }

void PromptTrainer::setOptimizerStep(int64_t step) {
  api::translated("restoring the step counter", [&] {
    PTUNE_CHECK(step >= 0, "checkpoint step must be >= 0");
    impl_->optimizer_steps = step;
    impl_->micro_steps = step * impl_->options.grad_accum;
    // Restored moments were updated at every step of the checkpointed run. (A stage-2 run's
    // layers joined later; their own count is not in the checkpoint, so it is approximated.)
    for (auto& [name, m] : impl_->moments) m.step = step;
    // A half-accumulated gradient belongs to the run being replaced: discard it.
    impl_->discardGradients();
    impl_->cycle_weight = 0;
  });
}

int32_t intraOpThreads() {
  return api::translated("reading the thread count", [] { return static_cast<int32_t>(at::get_num_threads()); });
}

void setIntraOpThreads(int32_t threads) {
  api::translated("setting the thread count", [&] {
    PTUNE_CHECK(threads >= 1, "the thread count must be >= 1, got ", threads);
    at::set_num_threads(threads);
  });
}

}  // namespace ptune
