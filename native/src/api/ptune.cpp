// Implementation of the façade (native/include/ptune/ptune.h): raw pointers in, tensors inside.
#include "ptune/ptune.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/generated/variable_factories.h>

#include <cstring>
#include <vector>

#include "api/translate.h"
#include "core/check.h"
#include "generate/generation.h"
#include "io/safetensors.h"
#include "loss/linear_cross_entropy.h"
#include "models/llama.h"
#include "optim/adamw.h"
#include "prompt/soft_prompt.h"

namespace ptune {
namespace {

const auto kLong = at::TensorOptions().dtype(at::kLong);
const auto kFloat = at::TensorOptions().dtype(at::kFloat);

/// A read-only (rows, cols) view of caller memory; valid for the duration of the call.
at::Tensor view(const int64_t* data, int64_t rows, int64_t cols, const char* name) {
  PTUNE_CHECK(data != nullptr, name, " is null");
  PTUNE_CHECK(rows > 0 && cols > 0, name, " must be non-empty, got (", rows, ", ", cols, ")");
  return at::from_blob(const_cast<int64_t*>(data), {rows, cols}, kLong);
}

at::Tensor promptView(const float* prompt, int64_t P, int64_t C) {
  if (P == 0) return at::Tensor();
  PTUNE_CHECK(P > 0, "the number of virtual tokens must be positive, got ", P);
  PTUNE_CHECK(prompt != nullptr, "prompt is null but P = ", P);
  return at::from_blob(const_cast<float*>(prompt), {P, C}, kFloat);
}

void copyOut(const at::Tensor& t, float* out) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  std::memcpy(out, c.data_ptr<float>(), static_cast<size_t>(c.numel()) * sizeof(float));
}

/// Mean-loss bookkeeping of one batch: hidden (B, S, C) and labels (B, S) shifted by one.
at::Tensor shiftedLossSum(const models::Llama& model, const at::Tensor& hidden,
                          const at::Tensor& labels, int64_t& label_tokens) {
  const int64_t C = hidden.size(2);
  const int64_t S = hidden.size(1);
  const at::Tensor h = hidden.narrow(1, 0, S - 1).reshape({-1, C});  // (B*(S-1), C)
  const at::Tensor y = labels.narrow(1, 1, S - 1).reshape({-1});     // (B*(S-1))
  label_tokens = y.ne(prompt::kIgnoreIndex).sum().item<int64_t>();
  return loss::linearCrossEntropySum(h, model.lmHead(), y);
}

}  // namespace

// ---------------------------------------------------------------------------------------
struct CausalLm::Impl {
  models::Llama model;
};

CausalLm::CausalLm(const char* model_dir, const LlamaConfig& config) {
  impl_ = api::translated("loading the model", [&] {
    PTUNE_CHECK(model_dir != nullptr, "model directory is null");
    const io::WeightStore weights(model_dir);
    return std::make_unique<Impl>(Impl{models::Llama(weights, config, at::kFloat)});
  });
}

CausalLm::~CausalLm() = default;

int64_t CausalLm::vocabSize() const { return impl_->model.config().vocab_size; }
int64_t CausalLm::hiddenSize() const { return impl_->model.config().hidden_size; }
int64_t CausalLm::numLayers() const { return impl_->model.config().num_hidden_layers; }

void CausalLm::embed(const int64_t* ids, int64_t n, float* out) const {
  api::translated("embedding tokens", [&] {
    at::NoGradGuard no_grad;
    copyOut(impl_->model.embed(view(ids, 1, n, "ids")).squeeze(0), out);
  });
}

void CausalLm::logits(const float* prompt, int64_t P, const int64_t* ids, const int64_t* mask,
                      int64_t B, int64_t T, float* out) const {
  api::translated("computing logits", [&] {
    at::NoGradGuard no_grad;
    const models::Llama& model = impl_->model;
    PTUNE_CHECK(P + T <= model.config().max_position_embeddings, "virtual tokens + input = ",
                P + T, " exceed max_position_embeddings ", model.config().max_position_embeddings);
    const prompt::PromptedInput input = prompt::prependPrompt(
        model, promptView(prompt, P, model.config().hidden_size), view(ids, B, T, "ids"),
        view(mask, B, T, "mask"));
    const at::Tensor hidden = model.forward(input.embeds, input.positions, input.key_mask, nullptr);
    copyOut(at::matmul(hidden, model.lmHead().t()), out);
  });
}

void CausalLm::generate(const float* prompt, int64_t P, const int64_t* ids, const int64_t* mask,
                        int64_t B, int64_t T, const int64_t* eos_ids, int64_t E,
                        const GenerateOptions& options, int64_t* out_tokens,
                        int64_t* out_lengths) const {
  api::translated("generating", [&] {
    at::NoGradGuard no_grad;
    const models::Llama& model = impl_->model;
    std::vector<int64_t> eos(eos_ids, eos_ids + (eos_ids != nullptr ? E : 0));
    std::vector<int64_t> lengths;
    const at::Tensor tokens = generate::generate(
        model, promptView(prompt, P, model.config().hidden_size), view(ids, B, T, "ids"),
        view(mask, B, T, "mask"), eos, options, lengths);
    std::memcpy(out_tokens, tokens.data_ptr<int64_t>(),
                static_cast<size_t>(tokens.numel()) * sizeof(int64_t));
    std::memcpy(out_lengths, lengths.data(), lengths.size() * sizeof(int64_t));
  });
}

// ---------------------------------------------------------------------------------------
struct PromptTrainer::Impl {
  const models::Llama& model;
  TrainOptions options;
  at::Tensor prompt;      // (P, C) fp32, requires grad
  at::Tensor exp_avg;     // (P, C)
  at::Tensor exp_avg_sq;  // (P, C)
  int64_t micro_steps = 0;
  int64_t optimizer_steps = 0;
};

PromptTrainer::PromptTrainer(const CausalLm& model, const float* init_prompt, int64_t P,
                             const TrainOptions& options) {
  impl_ = api::translated("creating the prompt trainer", [&] {
    const models::Llama& llama = model.impl_->model;
    PTUNE_CHECK(P > 0, "num_virtual_tokens must be positive, got ", P);
    PTUNE_CHECK(options.grad_accum >= 1, "grad_accum must be >= 1, got ", options.grad_accum);
    PTUNE_CHECK(options.learning_rate > 0, "learning rate must be positive, got ",
                options.learning_rate);
    PTUNE_CHECK(options.total_steps >= 1, "total_steps must be >= 1, got ", options.total_steps);
    PTUNE_CHECK(options.schedule >= 0 && options.schedule <= 2, "unknown schedule ",
                options.schedule);
    at::Tensor prompt = promptView(init_prompt, P, llama.config().hidden_size).clone();
    prompt.set_requires_grad(true);
    auto impl = std::make_unique<Impl>(Impl{llama, options, prompt, at::zeros_like(prompt),
                                            at::zeros_like(prompt)});
    return impl;
  });
}

PromptTrainer::~PromptTrainer() = default;

StepStats PromptTrainer::trainMicroBatch(const int64_t* ids, const int64_t* mask,
                                         const int64_t* labels, int64_t B, int64_t T) {
  return api::translated("training step", [&] {
    Impl& s = *impl_;
    const int64_t P = s.prompt.size(0);
    const prompt::PromptedInput input =
        prompt::prependPrompt(s.model, s.prompt, view(ids, B, T, "ids"), view(mask, B, T, "mask"));
    const at::Tensor hidden = s.model.forward(input.embeds, input.positions, input.key_mask, nullptr);
    StepStats stats{};
    const at::Tensor loss_sum = shiftedLossSum(
        s.model, hidden, prompt::padLabels(view(labels, B, T, "labels"), P), stats.label_tokens);
    PTUNE_CHECK(stats.label_tokens > 0,
                "a micro-batch has no label tokens (all labels are -100); check the data "
                "template and --max-length");
    const at::Tensor loss = loss_sum / static_cast<double>(stats.label_tokens);
    stats.loss = loss.item<double>();
    PTUNE_CHECK(std::isfinite(stats.loss), "loss is ", stats.loss, " at optimizer step ",
                s.optimizer_steps, "; lower the learning rate");
    (loss / static_cast<double>(s.options.grad_accum)).backward();
    s.micro_steps += 1;
    stats.optimizer_step = s.optimizer_steps;
    if (s.micro_steps % s.options.grad_accum != 0) return stats;

    at::NoGradGuard no_grad;
    at::Tensor grad = s.prompt.grad();
    stats.grad_norm = optim::clipGradNorm({grad}, s.options.max_grad_norm);
    stats.learning_rate =
        s.options.learning_rate *
        optim::scheduleFactor(static_cast<LrSchedule>(s.options.schedule), s.optimizer_steps,
                              s.options.warmup_steps, s.options.total_steps);
    s.optimizer_steps += 1;
    optim::AdamWHyper hyper{stats.learning_rate, s.options.adam_beta1, s.options.adam_beta2,
                            s.options.adam_epsilon, s.options.weight_decay};
    at::Tensor param = s.prompt.detach();  // shares storage: the update lands in the prompt
    optim::adamwStep(param, grad, s.exp_avg, s.exp_avg_sq, s.optimizer_steps, hyper);
    grad.zero_();
    stats.optimizer_stepped = true;
    stats.optimizer_step = s.optimizer_steps;
    return stats;
  });
}

EvalStats PromptTrainer::evaluate(const int64_t* ids, const int64_t* mask, const int64_t* labels,
                                  int64_t B, int64_t T) const {
  return api::translated("evaluating", [&] {
    at::NoGradGuard no_grad;
    const Impl& s = *impl_;
    const prompt::PromptedInput input =
        prompt::prependPrompt(s.model, s.prompt, view(ids, B, T, "ids"), view(mask, B, T, "mask"));
    const at::Tensor hidden = s.model.forward(input.embeds, input.positions, input.key_mask, nullptr);
    EvalStats stats{};
    stats.loss_sum =
        shiftedLossSum(s.model, hidden, prompt::padLabels(view(labels, B, T, "labels"), s.prompt.size(0)),
                       stats.label_tokens)
            .item<double>();
    return stats;
  });
}

int64_t PromptTrainer::numVirtualTokens() const { return impl_->prompt.size(0); }

void PromptTrainer::readPrompt(float* out) const {
  api::translated("reading the prompt", [&] { copyOut(impl_->prompt.detach(), out); });
}

void PromptTrainer::readMoments(float* exp_avg, float* exp_avg_sq) const {
  api::translated("reading optimizer moments", [&] {
    copyOut(impl_->exp_avg, exp_avg);
    copyOut(impl_->exp_avg_sq, exp_avg_sq);
  });
}

void PromptTrainer::restore(const float* prompt, const float* exp_avg, const float* exp_avg_sq,
                            int64_t step) {
  api::translated("restoring a checkpoint", [&] {
    at::NoGradGuard no_grad;
    Impl& s = *impl_;
    const int64_t P = s.prompt.size(0), C = s.prompt.size(1);
    PTUNE_CHECK(step >= 0, "checkpoint step must be >= 0");
    s.prompt.copy_(promptView(prompt, P, C));
    s.exp_avg.copy_(promptView(exp_avg, P, C));
    s.exp_avg_sq.copy_(promptView(exp_avg_sq, P, C));
    s.optimizer_steps = step;
    s.micro_steps = step * s.options.grad_accum;
    if (s.prompt.grad().defined()) s.prompt.mutable_grad().zero_();
  });
}

}  // namespace ptune
