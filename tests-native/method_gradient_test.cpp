// Gradients of EVERY trainable part of every prompt method (prompt tuning, composite blocks,
// P-tuning MLP and bi-LSTM encoders, prefix tuning with and without the projection, the
// dynamic-prompt generator, and the unfrozen top layer of two-stage training), checked against
// central finite differences in double precision on the real stories260K weights, through the
// same loss the trainer uses (prepareInput -> forward with the cache -> shifted fused CE) on a
// right-padded batch with -100 labels.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not in ATen.h of libtorch 2.x)

#include <algorithm>
#include <cmath>
#include <iostream>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "internal_support.h"
#include "io/safetensors.h"
#include "models/backbone.h"
#include "prompt/prompt_method.h"
#include "test_support.h"
#include "gradient_check.h"

namespace {

using ptune::PromptEncoderType;
using ptune::PromptMethod;
using ptune::models::Backbone;
using ptune_test::makeSpec;
namespace prompt = ptune::prompt;

/// One tensor to check: a method parameter or an unfrozen layer weight (a leaf requiring grad).
struct Checked {
  std::string name;
  at::Tensor tensor;  // contiguous fp64
};

using FdReport = ptune_test::GradientReport;

class MethodGradientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = ptune_test::storiesBackbone(at::kDouble);
  }
  static void TearDownTestSuite() { model_.reset(); }

  static std::unique_ptr<prompt::PromptMethodImpl> create(const ptune::PromptSpec& spec,
                                                          const std::vector<int64_t>& blocks = {}) {
    return prompt::createMethod(spec, ptune_test::storiesDims(at::kDouble), blocks);
  }

  static std::vector<Checked> parametersOf(prompt::PromptMethodImpl& method) {
    std::vector<Checked> out;
    for (auto& p : method.parameters()) out.push_back({p.name, p.tensor});
    return out;
  }

  /// Autograd against central differences on `per_tensor` random components of each checked
  /// tensor; also that backward reaches exactly the checked tensors (nothing frozen, nothing
  /// missed) and that every one of them gets a non-zero gradient.
  /// With `dropout_step` >= 0 the loss is taken in training mode, the dropout masks reseeded to
  /// that step before every evaluation (so every evaluation uses the same masks).
  static FdReport check(const Backbone& model, prompt::PromptMethodImpl& method,
                        const std::vector<Checked>& checked, int per_tensor, uint32_t seed,
                        int64_t dropout_step = -1) {
    const bool training = dropout_step >= 0;
    const auto loss_of = [&](const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& labels) {
      if (training) method.seedDropout(dropout_step);
      return ptune_test::methodLoss(model, &method, ids, mask, labels, training);
    };
    at::Tensor ids, mask, labels;
    ptune_test::paddedBatch(ids, mask, labels);
    for (const Checked& c : checked) {
      EXPECT_EQ(c.tensor.scalar_type(), at::kDouble) << c.name;
      EXPECT_TRUE(c.tensor.requires_grad()) << c.name;
      c.tensor.mutable_grad() = at::Tensor();
    }
    const at::Tensor loss = loss_of(ids, mask, labels);
    std::set<const void*> leaves, expected;
    for (const at::Tensor& leaf : ptune_test::gradientLeaves(loss)) leaves.insert(leaf.unsafeGetTensorImpl());
    for (const Checked& c : checked) expected.insert(c.tensor.unsafeGetTensorImpl());
    EXPECT_EQ(leaves, expected) << "backward must reach exactly the trainable tensors";
    loss.backward();

    at::NoGradGuard no_grad;
    FdReport report;
    std::mt19937 rng(seed);
    for (const Checked& c : checked) {
      const at::Tensor grad = c.tensor.grad();
      if (!grad.defined()) {
        ADD_FAILURE() << c.name << " received no gradient";
        continue;
      }
      EXPECT_GT(grad.abs().max().item<double>(), 1e-7) << c.name << ": gradient is zero";
      at::Tensor tensor = c.tensor;
      ptune_test::checkComponents(c.name, tensor, grad, per_tensor, rng,
                                  [&] { return loss_of(ids, mask, labels).item<double>(); }, report);
    }
    return report;
  }

  static void print(const std::string& what, const FdReport& r) {
    std::cout << "[ gradient  ] " << what << ": " << r.components << " components; worst error "
              << r.worst_ratio << " of its bound; worst relative error " << r.worst_relative
              << " (over the " << r.large << " with |grad| >= 1e-3)" << std::endl;
  }

  static std::unique_ptr<Backbone> model_;
};

std::unique_ptr<Backbone> MethodGradientTest::model_;

TEST_F(MethodGradientTest, PromptTuning) {
  auto method = create(makeSpec(PromptMethod::kPromptTuning, 4, 0, PromptEncoderType::kMlp, 0, false, 1));
  const auto checked = parametersOf(*method);
  ASSERT_EQ(checked.size(), 1u);
  print("prompt tuning", check(*model_, *method, checked, 12, 1));
}

TEST_F(MethodGradientTest, CompositeBlocks) {
  auto method = create(makeSpec(PromptMethod::kPromptTuning, 6, 0, PromptEncoderType::kMlp, 0, false, 2),
                       {2, 3, 1});
  const auto checked = parametersOf(*method);
  ASSERT_EQ(checked.size(), 3u);
  EXPECT_EQ(checked[0].name, "block.0");
  EXPECT_EQ(checked[2].name, "block.2");
  print("composite (3 blocks)", check(*model_, *method, checked, 10, 2));

  // A frozen block is a constant: backward reaches only the others.
  prompt::NamedParameter& frozen = method->parameter("block.1");
  frozen.trainable = false;
  frozen.tensor.set_requires_grad(false);
  std::vector<Checked> rest = {checked[0], checked[2]};
  print("composite, block.1 frozen", check(*model_, *method, rest, 4, 3));
}

TEST_F(MethodGradientTest, PTuningMlp) {
  auto method = create(makeSpec(PromptMethod::kPTuning, 4, 16, PromptEncoderType::kMlp, 0, false, 3));
  const auto checked = parametersOf(*method);
  std::vector<std::string> names;
  for (const auto& c : checked) names.push_back(c.name);
  EXPECT_EQ(names, (std::vector<std::string>{"embedding", "mlp_head.0.weight", "mlp_head.0.bias",
                                             "mlp_head.2.weight", "mlp_head.2.bias",
                                             "mlp_head.4.weight", "mlp_head.4.bias"}));
  print("P-tuning MLP", check(*model_, *method, checked, 10, 4));
}

TEST_F(MethodGradientTest, PTuningLstm) {
  auto method = create(makeSpec(PromptMethod::kPTuning, 4, 8, PromptEncoderType::kLstm, 2, false, 4));
  const auto checked = parametersOf(*method);
  ASSERT_EQ(checked.size(), 1u + 2 * 2 * 4 + 4);  // embedding, 2 layers x 2 directions x 4, head
  std::set<std::string> names;
  for (const auto& c : checked) names.insert(c.name);
  for (const char* n : {"lstm_head.weight_ih_l0", "lstm_head.weight_hh_l0_reverse",
                        "lstm_head.bias_ih_l1", "lstm_head.bias_hh_l1_reverse", "mlp_head.2.bias"}) {
    EXPECT_EQ(names.count(n), 1u) << n;
  }
  print("P-tuning LSTM (2 layers)", check(*model_, *method, checked, 8, 5));
}

TEST_F(MethodGradientTest, PTuningLstmWithDropout) {
  ptune::PromptSpec spec = makeSpec(PromptMethod::kPTuning, 4, 8, PromptEncoderType::kLstm, 3, false, 4);
  spec.encoder_dropout = 0.4;
  auto method = create(spec);
  print("P-tuning LSTM (3 layers, dropout 0.4, fixed masks)", check(*model_, *method, parametersOf(*method), 6, 7, 11));

  // Masks are a function of (seed, micro-step): the same step repeats them, another step does not,
  // and evaluation has none.
  at::Tensor ids, mask, labels;
  ptune_test::paddedBatch(ids, mask, labels);
  at::NoGradGuard no_grad;
  const auto train_loss = [&](int64_t step) {
    method->seedDropout(step);
    return ptune_test::methodLoss(*model_, method.get(), ids, mask, labels, true).item<double>();
  };
  // Same masks, same shapes, same machine: bit-identical.
  EXPECT_EQ(train_loss(3), train_loss(3));
  // Other masks (or none) change the loss by far more than rounding.
  const double rounding = ptune_test::fp64Tolerance(train_loss(3));
  EXPECT_GT(std::abs(train_loss(3) - train_loss(4)), 1e6 * rounding);
  const double eval = ptune_test::methodLoss(*model_, method.get(), ids, mask, labels).item<double>();
  EXPECT_GT(std::abs(eval - train_loss(3)), 1e6 * rounding);
  EXPECT_EQ(eval, ptune_test::methodLoss(*model_, method.get(), ids, mask, labels).item<double>());
}

TEST_F(MethodGradientTest, PrefixTuning) {
  auto method = create(makeSpec(PromptMethod::kPrefixTuning, 3, 0, PromptEncoderType::kMlp, 0, false, 5));
  const auto checked = parametersOf(*method);
  ASSERT_EQ(checked.size(), 1u);
  EXPECT_EQ(checked[0].tensor.sizes().vec(), (std::vector<int64_t>{3, 2 * 5 * 4 * 8}));
  print("prefix", check(*model_, *method, checked, 16, 6));
}

TEST_F(MethodGradientTest, PrefixTuningWithProjection) {
  auto method = create(makeSpec(PromptMethod::kPrefixTuning, 3, 16, PromptEncoderType::kMlp, 0, true, 6));
  const auto checked = parametersOf(*method);
  ASSERT_EQ(checked.size(), 5u);
  EXPECT_EQ(checked[0].tensor.sizes().vec(), (std::vector<int64_t>{3, 4 * 8}));  // G*D (GQA)
  print("prefix + projection", check(*model_, *method, checked, 10, 7));
}

TEST_F(MethodGradientTest, DynamicPrompt) {
  auto method = create(makeSpec(PromptMethod::kDynamic, 3, 16, PromptEncoderType::kMlp, 0, false, 7));
  {
    // generator.2 starts at zero (training starts from the static prompt), which would leave
    // generator.0 without gradient: give it small random values first.
    at::NoGradGuard no_grad;
    at::manual_seed(70);
    for (const char* n : {"generator.2.weight", "generator.2.bias"}) {
      at::Tensor& t = method->parameter(n).tensor;
      ASSERT_EQ(t.abs().max().item<double>(), 0.0) << n << " must start at zero";
      t.copy_(at::randn(t.sizes(), t.options()) * 0.05);
    }
  }
  const auto checked = parametersOf(*method);
  ASSERT_EQ(checked.size(), 5u);
  print("dynamic", check(*model_, *method, checked, 10, 8));
}

TEST_F(MethodGradientTest, TwoStageTopLayer) {
  // As PromptModel::unfreezeTopLayers: a copy of the model shares every weight, then the top
  // layer's weights become trainable clones. The prompt stays trainable too.
  const std::unique_ptr<Backbone> tuned = model_->clone();
  const int64_t top = ptune_test::stories260kConfig().num_hidden_layers - 1;
  auto method = create(makeSpec(PromptMethod::kPromptTuning, 4, 0, PromptEncoderType::kMlp, 0, false, 9));
  std::vector<Checked> checked = parametersOf(*method);
  for (auto& [name, tensor] : tuned->layerWeights(top)) {
    *tensor = tensor->detach().clone();
    tensor->set_requires_grad(true);
    checked.push_back({name, *tensor});
  }
  ASSERT_EQ(checked.size(), 1u + 9u);  // prompt + norms, q/k/v/o, gate/up/down
  print("two-stage (prompt + layer 4)", check(*tuned, *method, checked, 5, 9));
  // The shared, frozen model is untouched and still frozen.
  for (auto& [name, tensor] : model_->layerWeights(top)) {
    EXPECT_FALSE(tensor->requires_grad()) << name;
  }
}

}  // namespace
