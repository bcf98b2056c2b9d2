#include "heads/classifier.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not pulled in by ATen.h in libtorch 2.x)

#include <algorithm>

#include "core/check.h"
#include "core/dtypes.h"

namespace ptune::heads {

LabelWords layoutLabelWords(int64_t num_classes, const std::vector<int64_t>& word_class,
                            const std::vector<int64_t>& word_offsets, const std::vector<int64_t>& tokens,
                            int64_t vocab) {
  const size_t N = word_class.size();
  PTUNE_CHECK(word_offsets.size() == N + 1, "label words: ", N, " words need ", N + 1, " offsets");
  std::vector<std::vector<std::vector<int64_t>>> per_class(static_cast<size_t>(num_classes));
  for (size_t i = 0; i < N; ++i) {
    const int64_t c = word_class[i];
    PTUNE_CHECK(c >= 0 && c < num_classes, "label word ", i, " belongs to class ", c, " outside [0, ", num_classes, ")");
    PTUNE_CHECK(word_offsets[i] <= word_offsets[i + 1] && word_offsets[i + 1] <= static_cast<int64_t>(tokens.size()),
                "label word offsets must be increasing and within the tokens");
    std::vector<int64_t> word(tokens.begin() + word_offsets[i], tokens.begin() + word_offsets[i + 1]);
    PTUNE_CHECK(!word.empty(), "label word ", i, " of class ", c, " has no tokens");
    for (int64_t id : word) {
      PTUNE_CHECK(id >= 0 && id < vocab, "label word ", i, " has token id ", id, " outside the vocabulary [0, ", vocab,
                  ")");
    }
    per_class[static_cast<size_t>(c)].push_back(std::move(word));
  }
  int64_t W = 0, U = 0;
  for (size_t c = 0; c < per_class.size(); ++c) {
    PTUNE_CHECK(!per_class[c].empty(), "class ", c, " has no label word; give at least one per class");
    W = std::max<int64_t>(W, static_cast<int64_t>(per_class[c].size()));
    for (const auto& w : per_class[c]) U = std::max<int64_t>(U, static_cast<int64_t>(w.size()));
  }
  LabelWords out;
  const auto kLong = at::TensorOptions().dtype(at::kLong);
  out.ids = at::zeros({num_classes, W, U}, kLong);
  out.token_mask = at::zeros({num_classes, W, U}, kLong);
  out.word_mask = at::zeros({num_classes, W}, kLong);
  for (int64_t c = 0; c < num_classes; ++c) {
    for (size_t w = 0; w < per_class[static_cast<size_t>(c)].size(); ++w) {
      const auto& word = per_class[static_cast<size_t>(c)][w];
      out.word_mask[c][static_cast<int64_t>(w)] = 1;
      for (size_t u = 0; u < word.size(); ++u) {
        out.ids[c][static_cast<int64_t>(w)][static_cast<int64_t>(u)] = word[u];
        out.token_mask[c][static_cast<int64_t>(w)][static_cast<int64_t>(u)] = 1;
      }
    }
  }
  return out;
}

Classifier::Classifier(const models::Backbone& model, const ClassifierSpec& spec, LabelWords words)
    : spec_(spec), words_(std::move(words)) {
  const int64_t K = spec.num_classes, C = model.hidden();
  PTUNE_CHECK(K >= 2, "a classifier needs at least two classes, got ", K);
  const auto kind = static_cast<ClassifierHead>(spec.head);
  // Head parameters are master (fp32) tensors, initialised on the CPU, moved to the model's device below.
  const auto options = at::TensorOptions().dtype(masterType(model.dtype()));
  if (words_.ids.defined()) {
    words_.ids = words_.ids.to(model.device());
    words_.token_mask = words_.token_mask.to(model.device());
    words_.word_mask = words_.word_mask.to(model.device());
  }
  switch (kind) {
    case ClassifierHead::kLinearHead: {
      PTUNE_CHECK(spec.pooling >= 0 && spec.pooling <= static_cast<int32_t>(Pooling::kPoolLast), "unknown pooling ",
                  spec.pooling);
      // transformers' _init_weights: N(0, 0.02) weights, zero bias.
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(spec.seed);
      weight_ = at::empty({K, C}, options).normal_(0.0, 0.02, gen);
      const std::string name = spec.head_bias ? "classifier" : "score";
      parameters_.push_back({name + ".weight", weight_, true, 0});
      if (spec.head_bias) {
        bias_ = at::zeros({K}, options);
        parameters_.push_back({name + ".bias", bias_, true, 0});
      }
      break;
    }
    case ClassifierHead::kVerbalizerHead:
      PTUNE_CHECK(model.head() != nullptr, "a verbalizer needs the model's LM or MLM head, and this ",
                  models::familyName(model.family()), " checkpoint has none; use the soft verbalizer");
      PTUNE_CHECK(words_.ids.defined() && words_.ids.size(0) == K, "a verbalizer needs label words for every class");
      break;
    case ClassifierHead::kSoftVerbalizerHead: {
      PTUNE_CHECK(words_.ids.defined() && words_.ids.size(0) == K,
                  "a soft verbalizer initialises its class vectors from label words: give them for every class");
      // WARP / OpenPrompt's SoftVerbalizer: class c starts as the mean of the output embeddings of
      // the tokens of its first label word (the decoder / LM head rows; the input embeddings when
      // the checkpoint has no head).
      at::NoGradGuard no_grad;
      const at::Tensor table = model.head() != nullptr
                                   ? model.head()->weight()
                                   : model.embed(at::arange(model.vocab(),
                                                                      at::TensorOptions().dtype(at::kLong).device(model.device())));
      weight_ = at::empty({K, C}, options);
      for (int64_t c = 0; c < K; ++c) {
        const at::Tensor mask = words_.token_mask[c][0].to(at::kBool);
        const at::Tensor ids = words_.ids[c][0].masked_select(mask);
        weight_[c].copy_(table.index_select(0, ids).to(options.dtype().toScalarType()).mean(0));
      }
      parameters_.push_back({"soft_verbalizer.weight", weight_, true, 0});
      break;
    }
    default:
      PTUNE_CHECK(false, "unknown classifier head ", spec.head);
  }
  PTUNE_CHECK(spec.multi_token >= 0 && spec.multi_token <= static_cast<int32_t>(MultiToken::kMaxOfPieces),
              "unknown multi-token rule ", spec.multi_token);
  for (auto& p : parameters_) {
    p.tensor = p.tensor.to(model.device()).contiguous();
    p.tensor.set_requires_grad(true);
  }
  if (!parameters_.empty()) weight_ = parameters_[0].tensor;
  if (parameters_.size() > 1) bias_ = parameters_[1].tensor;
}

prompt::NamedParameter& Classifier::parameter(const std::string& name) {
  for (auto& p : parameters_) {
    if (p.name == name) return p;
  }
  std::string known;
  for (const auto& p : parameters_) known += (known.empty() ? "" : ", ") + p.name;
  throw Error(detail::concat("no classifier parameter named '", name, "' (this head has: ",
                             known.empty() ? "none" : known, ")"));
}

at::Tensor Classifier::slotLogits(const models::Backbone& model, const at::Tensor& hidden, int64_t virtual_tokens,
                                  const at::Tensor& slots) const {
  const int64_t B = hidden.size(0), C = hidden.size(2);
  const at::Tensor rows = (slots + virtual_tokens).view({B, 1, 1}).expand({B, 1, C});
  const at::Tensor h = hidden.gather(1, rows).squeeze(1);  // (B, C)
  // Scored in the master dtype: the verbalizer's softmax and logs run on fp32 logits.
  return model.requireHead().logits(h).to(masterType(h.scalar_type()));  // (B, V)
}

at::Tensor Classifier::project(const at::Tensor& logits) const {
  const int64_t B = logits.size(0), K = words_.ids.size(0), W = words_.ids.size(1), U = words_.ids.size(2);
  const at::Tensor x = logits.index_select(1, words_.ids.view({-1})).view({B, K, W, U});  // (B, K, W, U)
  const at::Tensor token_mask = words_.token_mask.to(logits.scalar_type());
  at::Tensor words;
  switch (static_cast<MultiToken>(spec_.multi_token)) {
    case MultiToken::kFirstPiece:
      words = x.select(3, 0);
      break;
    case MultiToken::kMeanOfPieces:
      words = (x * token_mask).sum(3) / (token_mask.sum(2) + 1e-15);
      break;
    case MultiToken::kMaxOfPieces:
      words = std::get<0>((x - 1000 * (1 - token_mask)).max(3));
      break;
  }
  // Padded word slots fall out of the softmax that follows.
  return words - 10000 * (1 - words_.word_mask.to(logits.scalar_type()));  // (B, K, W)
}

at::Tensor Classifier::normalize(const at::Tensor& projected) const {
  const int64_t B = projected.size(0);
  return at::softmax(projected.reshape({B, -1}), 1).view(projected.sizes());
}

at::Tensor Classifier::verbalizerScores(const at::Tensor& slot_logits) const {
  const int64_t B = slot_logits.size(0);
  at::Tensor probs = normalize(project(slot_logits));  // (B, K, W)
  if (calibration_.defined()) {
    // Divided by the content-free input's label-word probabilities, then renormalised.
    const at::Tensor reference = normalize(project(calibration_.to(probs.scalar_type()).unsqueeze(0)));  // (1, K, W)
    probs = probs / (reference + 1e-15);
    probs = probs / probs.reshape({B, -1}).sum(1).view({B, 1, 1});
  }
  const at::Tensor word_mask = words_.word_mask.to(probs.scalar_type());  // (K, W)
  return (at::log(probs + 1e-15) * word_mask).sum(2) / word_mask.sum(1);  // (B, K)
}

at::Tensor Classifier::scores(const models::Backbone& model, const at::Tensor& hidden, const at::Tensor& text_mask,
                              int64_t virtual_tokens, const at::Tensor& slots) const {
  const int64_t B = hidden.size(0), T = text_mask.size(1), C = hidden.size(2);
  switch (kind()) {
    case ClassifierHead::kLinearHead: {
      at::Tensor pooled;
      const at::Tensor text = hidden.narrow(1, virtual_tokens, T);  // (B, T, C)
      switch (static_cast<Pooling>(spec_.pooling)) {
        case Pooling::kPoolCls:
          pooled = model.pool(hidden.select(1, 0));
          break;
        case Pooling::kPoolFirstText: {
          // The first real text token of each row (left padding: the first after it).
          const at::Tensor first = text_mask.to(at::kLong).argmax(1);  // (B)
          pooled = model.pool(text.gather(1, first.view({B, 1, 1}).expand({B, 1, C})).squeeze(1));
          break;
        }
        case Pooling::kPoolMean: {
          const at::Tensor m = text_mask.to(hidden.scalar_type()).unsqueeze(-1);  // (B, T, 1)
          pooled = (text * m).sum(1) / m.sum(1).clamp_min(1.0);
          break;
        }
        case Pooling::kPoolLast: {
          // The last real text token: T - 1 - (first real from the right).
          const at::Tensor last = (T - 1) - text_mask.to(at::kLong).flip({1}).argmax(1);  // (B)
          pooled = text.gather(1, last.view({B, 1, 1}).expand({B, 1, C})).squeeze(1);
          break;
        }
      }
      return models::linear(pooled.to(weight_.scalar_type()), weight_, bias_);  // (B, K) in the master dtype
    }
    case ClassifierHead::kVerbalizerHead:
      PTUNE_CHECK(slots.defined(), "a verbalizer needs the slot of every example");
      return verbalizerScores(slotLogits(model, hidden, virtual_tokens, slots));
    case ClassifierHead::kSoftVerbalizerHead: {
      PTUNE_CHECK(slots.defined(), "a soft verbalizer needs the slot of every example");
      const at::Tensor rows = (slots + virtual_tokens).view({B, 1, 1}).expand({B, 1, C});
      at::Tensor h = hidden.gather(1, rows).squeeze(1);  // (B, C)
      if (model.head() != nullptr) h = model.head()->transform(h);
      return at::matmul(h.to(weight_.scalar_type()), weight_.t());  // (B, K) in the master dtype
    }
  }
  throw Error("unknown classifier head");
}

}  // namespace ptune::heads
