// Gradients through the blocks of every model family, checked against central finite differences
// in double precision: GPT-2 (learned positions, LayerNorm, Conv1D, gelu_new), BLOOM (ALiBi with
// 6 and 8 heads, the embedding LayerNorm, fused interleaved QKV, BLOOM's GELU), BERT (position and
// token-type embeddings, bidirectional attention, post-LN, exact GELU, the MLM head). Models: the
// tiny random ones of tests-java/resources/families (hf_families.py). The loss is a fixed random
// projection of the head's logits (or of the hidden states without a head), so every output
// entry reaches the gradient. Checked: a soft prompt, a prefix (the KV-cache path) and the top
// layer's weights (two-stage training). Plus BLOOM's ALiBi slope rule.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not in ATen.h of libtorch 2.x)

#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "internal_support.h"
#include "io/safetensors.h"
#include "models/backbone.h"
#include "prompt/prompt_method.h"
#include "prompt/prompted_input.h"
#include "test_support.h"
#include "family_models.h"
#include "gradient_check.h"

namespace {

using ptune::models::Backbone;
namespace prompt = ptune::prompt;

class FamilyGradientTest : public ::testing::TestWithParam<std::string> {
 protected:
  /// A right-padded batch of B = 2 (T = 6; row 1 has 4 tokens): ids in [3, 300).
  static void batch(at::Tensor& ids, at::Tensor& mask) {
    ids = at::tensor(std::vector<int64_t>{5, 17, 42, 99, 7, 250, 11, 64, 3, 120, 0, 0}).view({2, 6});
    mask = at::tensor(std::vector<int64_t>{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}).view({2, 6});
  }

  /// Sum of the outputs (head logits, else hidden states) times fixed N(0, 1) weights, over the
  /// real positions (padding outputs have no meaning).
  static at::Tensor loss(const Backbone& model, const prompt::PromptMethodImpl* method, const at::Tensor& ids,
                         const at::Tensor& mask) {
    prompt::PreparedInput in = prompt::prepareInput(model, method, ids, mask, false);
    const at::Tensor hidden = model.forward(in.input, &in.cache);
    const at::Tensor out = model.head() != nullptr ? model.head()->logits(hidden) : hidden;  // (B, S, W)
    at::manual_seed(123);
    const at::Tensor r = at::randn(out.sizes(), out.options().requires_grad(false));
    return (out * r * in.input.key_mask.unsqueeze(-1).to(out.scalar_type())).sum();
  }

  struct Checked {
    std::string name;
    at::Tensor tensor;  // contiguous fp64 leaf
  };

  /// Autograd against central differences on `per_tensor` random components of each tensor;
  /// returns the worst error as a fraction of its bound.
  static double check(const Backbone& model, const prompt::PromptMethodImpl* method,
                      const std::vector<Checked>& checked, int per_tensor, uint32_t seed) {
    at::Tensor ids, mask;
    batch(ids, mask);
    for (const Checked& c : checked) c.tensor.mutable_grad() = at::Tensor();
    loss(model, method, ids, mask).backward();
    at::NoGradGuard no_grad;
    std::mt19937 rng(seed);
    ptune_test::GradientReport report;
    for (const Checked& c : checked) {
      const at::Tensor grad = c.tensor.grad();
      if (!grad.defined()) {
        ADD_FAILURE() << c.name << " received no gradient";
        continue;
      }
      // A key bias adds q.b to every score of a query: softmax ignores it, its gradient is 0.
      const bool key_bias = c.name.size() > 8 && c.name.compare(c.name.size() - 8, 8, "key.bias") == 0;
      if (!key_bias) {
        EXPECT_GT(grad.abs().max().item<double>(), 1e-6) << c.name << ": gradient is zero";
      }
      at::Tensor tensor = c.tensor;
      ptune_test::checkComponents(c.name, tensor, grad, per_tensor, rng,
                                  [&] { return loss(model, method, ids, mask).item<double>(); }, report);
    }
    return report.worst_ratio;
  }

  static std::unique_ptr<prompt::PromptMethodImpl> method(const Backbone& model, ptune::PromptMethod kind, int64_t P) {
    const prompt::ModelDims dims{model.hidden(), model.layers(), model.kvHeads(), model.headDim(), model.dtype(), model.device()};
    auto m = prompt::createMethod(ptune_test::makeSpec(kind, P, 0, ptune::PromptEncoderType::kMlp, 0, false, 5), dims, {});
    // Prompt values at the scale of the model's own embeddings, so the prompt matters.
    at::NoGradGuard no_grad;
    m->parameter("embedding").tensor.mul_(0.3);
    return m;
  }
};

TEST_P(FamilyGradientTest, SoftPromptPrefixAndTopLayer) {
  const auto model = ptune_test::familyModel(GetParam());
  const auto soft = method(*model, ptune::PromptMethod::kPromptTuning, 3);
  const double soft_worst = check(*model, soft.get(), {{"embedding", soft->parameter("embedding").tensor}}, 16, 1);
  const auto prefix = method(*model, ptune::PromptMethod::kPrefixTuning, 2);
  const double prefix_worst =
      check(*model, prefix.get(), {{"prefix", prefix->parameter("embedding").tensor}}, 16, 2);
  // Two-stage: the top layer's weights as trainable copies in a clone (the prompt stays frozen here).
  const std::unique_ptr<Backbone> tuned = model->clone();
  std::vector<Checked> layer;
  for (auto& [name, tensor] : tuned->layerWeights(model->layers() - 1)) {
    *tensor = tensor->detach().clone();
    tensor->set_requires_grad(true);
    layer.push_back({name, *tensor});
  }
  soft->parameter("embedding").tensor.set_requires_grad(false);
  const double layer_worst = check(*tuned, soft.get(), layer, 3, 3);
  std::cout << "[ gradient  ] " << GetParam() << ": worst error / bound: soft prompt " << soft_worst << ", prefix "
            << prefix_worst << ", top layer (" << layer.size() << " tensors) " << layer_worst << std::endl;
}

INSTANTIATE_TEST_SUITE_P(Families, FamilyGradientTest,
                         ::testing::Values("gpt2", "bloom", "bloom_pow2", "bert", "bert_base"),
                         [](const auto& info) { return info.param; });

TEST(AlibiTest, SlopesFollowBloomsRuleForAnyHeadCount) {
  // build_alibi_tensor: powers of 2^(-8/c) for the closest power of two c, then odd powers of
  // 2^(-4/c) for the remaining heads, appended after (not sorted).
  EXPECT_EQ(ptune::models::alibiSlopes(6), (std::vector<double>{0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125}));
  EXPECT_EQ(ptune::models::alibiSlopes(8),
            (std::vector<double>{0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625}));
  const std::vector<double> twelve = ptune::models::alibiSlopes(12);
  ASSERT_EQ(twelve.size(), 12u);
  EXPECT_DOUBLE_EQ(twelve[8], std::pow(2.0, -4.0 / 8));  // the first extra slope: (2^(-4/8))^1
  EXPECT_DOUBLE_EQ(twelve[11], std::pow(2.0, -4.0 / 8 * 7));
}

TEST(AlibiTest, BiasCountsRealKeysOnly) {
  // Positions (cumsum(mask) - 1) * mask: padding keys take 0, real ones count from 0.
  const at::Tensor mask = at::tensor(std::vector<int64_t>{0, 0, 1, 1, 1}).view({1, 5}).to(at::kBool);
  const at::Tensor bias = ptune::models::alibiBias({0.5}, mask, at::kDouble);  // (1, 1, 1, 5)
  EXPECT_TRUE(bias.view({5}).equal(at::tensor(std::vector<double>{0, 0, 0, 0.5, 1.0})));
}

}  // namespace
