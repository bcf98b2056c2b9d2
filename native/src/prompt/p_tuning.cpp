// P-tuning (Liu et al. 2021), PEFT's PromptEncoder: virtual-token embeddings E (P, C)
// reparameterised by an MLP  (Linear C->h, ReLU, Linear h->h, ReLU, Linear h->C)  or a
// bi-LSTM + MLP head  (LSTM C->h x num_layers, both directions; Linear 2h->2h, ReLU,
// Linear 2h->C). PEFT saves only the encoder output (P, C).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "core/check.h"
#include "prompt/methods.h"

namespace ptune::prompt {
namespace {

class PTuning final : public PromptMethodImpl {
 public:
  PTuning(const PromptSpec& spec, const ModelDims& dims, at::Generator& gen)
      : PromptMethodImpl(dims.device),
        lstm_(static_cast<PromptEncoderType>(spec.encoder_type) == PromptEncoderType::kLstm),
        lstm_layers_(spec.encoder_num_layers),
        dropout_(spec.encoder_dropout),
        seed_(static_cast<uint64_t>(spec.seed)),
        dropout_gen_(at::make_generator<at::CPUGeneratorImpl>(seed_)) {
    const int64_t C = dims.hidden, P = spec.num_virtual_tokens, h = spec.encoder_hidden_size;
    PTUNE_CHECK(h > 0, "encoder_hidden_size must be positive, got ", h);
    embedding_ = add("embedding", normalInit({P, C}, gen, dims.dtype));
    if (lstm_) {
      PTUNE_CHECK(lstm_layers_ >= 1, "encoder_num_layers must be >= 1 for the LSTM, got ",
                  lstm_layers_);
      PTUNE_CHECK(dropout_ >= 0 && dropout_ < 1, "encoder_dropout must lie in [0, 1)");
      // nn.LSTM's parameters, flattened in its order: per layer, per direction,
      // weight_ih (4h, in), weight_hh (4h, h), bias_ih (4h), bias_hh (4h); U(-1/sqrt(h), 1/sqrt(h)).
      for (int64_t layer = 0; layer < lstm_layers_; ++layer) {
        const int64_t in = layer == 0 ? C : 2 * h;
        for (const std::string suffix : {"", "_reverse"}) {
          const std::string l = "_l" + std::to_string(layer) + suffix;
          lstm_params_.push_back(add("lstm_head.weight_ih" + l, uniformInit({4 * h, in}, h, gen, dims.dtype)));
          lstm_params_.push_back(add("lstm_head.weight_hh" + l, uniformInit({4 * h, h}, h, gen, dims.dtype)));
          lstm_params_.push_back(add("lstm_head.bias_ih" + l, uniformInit({4 * h}, h, gen, dims.dtype)));
          lstm_params_.push_back(add("lstm_head.bias_hh" + l, uniformInit({4 * h}, h, gen, dims.dtype)));
        }
      }
      mlp_.push_back(add("mlp_head.0.weight", uniformInit({2 * h, 2 * h}, 2 * h, gen, dims.dtype)));
      mlp_.push_back(add("mlp_head.0.bias", uniformInit({2 * h}, 2 * h, gen, dims.dtype)));
      mlp_.push_back(add("mlp_head.2.weight", uniformInit({C, 2 * h}, 2 * h, gen, dims.dtype)));
      mlp_.push_back(add("mlp_head.2.bias", uniformInit({C}, 2 * h, gen, dims.dtype)));
    } else {
      mlp_.push_back(add("mlp_head.0.weight", uniformInit({h, C}, C, gen, dims.dtype)));
      mlp_.push_back(add("mlp_head.0.bias", uniformInit({h}, C, gen, dims.dtype)));
      mlp_.push_back(add("mlp_head.2.weight", uniformInit({h, h}, h, gen, dims.dtype)));
      mlp_.push_back(add("mlp_head.2.bias", uniformInit({h}, h, gen, dims.dtype)));
      mlp_.push_back(add("mlp_head.4.weight", uniformInit({C, h}, h, gen, dims.dtype)));
      mlp_.push_back(add("mlp_head.4.bias", uniformInit({C}, h, gen, dims.dtype)));
    }
  }

  PromptInputs build(const at::Tensor& token_embeds, const at::Tensor& mask,
                     bool training) const override {
    PromptInputs out;
    out.input_prompt = encode(training).unsqueeze(0).expand({token_embeds.size(0), -1, -1});
    return out;
  }

  void seedDropout(int64_t micro_step) override {
    // Golden-ratio mixing keeps the streams of neighbouring steps (and seeds) apart.
    dropout_gen_.set_current_seed(seed_ * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(micro_step));
  }

  at::Tensor peftEmbeddings() const override { return encode(false); }
  int64_t numVirtualTokens() const override { return embedding_.size(0); }

 private:
  /// Returns the encoder output (P, C).
  at::Tensor encode(bool training) const {
    if (!lstm_) {
      at::Tensor x = at::relu(at::linear(embedding_, mlp_[0], mlp_[1]));
      x = at::relu(at::linear(x, mlp_[2], mlp_[3]));
      return at::linear(x, mlp_[4], mlp_[5]);
    }
    // (1, P, C) batch-first through the bi-LSTM -> (1, P, 2h); zero initial states. One layer at
    // a time, so the dropout between layers (nn.LSTM's) draws from our seeded generator rather
    // than libtorch's global one.
    const int64_t h = lstm_params_[1].size(1);
    const at::Tensor zeros = at::zeros({2, 1, h}, embedding_.options().requires_grad(false));
    at::Tensor x = embedding_.unsqueeze(0);
    for (int64_t layer = 0; layer < lstm_layers_; ++layer) {
      if (layer > 0 && training && dropout_ > 0) {
        // Drawn on the CPU generator on every device (the same masks everywhere), then moved.
        const at::Tensor keep = at::empty(x.sizes(), x.options().device(at::kCPU).requires_grad(false))
                                    .bernoulli_(1.0 - dropout_, dropout_gen_)
                                    .to(x.device());
        x = x * keep / (1.0 - dropout_);
      }
      const std::vector<at::Tensor> weights(lstm_params_.begin() + 8 * layer,
                                            lstm_params_.begin() + 8 * (layer + 1));
      x = std::get<0>(at::lstm(x, {zeros, zeros}, weights, /*has_biases=*/true, /*num_layers=*/1,
                               /*dropout=*/0.0, training, /*bidirectional=*/true, /*batch_first=*/true));
    }
    const at::Tensor y = at::relu(at::linear(x.squeeze(0), mlp_[0], mlp_[1]));
    return at::linear(y, mlp_[2], mlp_[3]);
  }

  bool lstm_;
  int64_t lstm_layers_;
  double dropout_;
  uint64_t seed_;
  mutable at::Generator dropout_gen_;  // LSTM dropout masks, reseeded per training micro-step
  at::Tensor embedding_;                 // (P, C)
  std::vector<at::Tensor> lstm_params_;  // nn.LSTM flat weights
  std::vector<at::Tensor> mlp_;          // weight, bias pairs
};

}  // namespace

std::unique_ptr<PromptMethodImpl> makePTuning(const PromptSpec& spec, const ModelDims& dims,
                                              at::Generator& gen) {
  return std::make_unique<PTuning>(spec, dims, gen);
}

}  // namespace ptune::prompt
