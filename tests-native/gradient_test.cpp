// Gradients of prompt tuning, checked by central finite differences in double precision on the
// real stories260K weights, plus the fused chunked linear cross-entropy against ATen's
// cross_entropy and the guarantee that frozen weights never receive gradients.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not in ATen.h of libtorch 2.x)

#include <cmath>
#include <iostream>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "core/check.h"
#include "io/safetensors.h"
#include "loss/linear_cross_entropy.h"
#include "models/backbone.h"
#include "internal_support.h"
#include "test_support.h"
#include "tolerance.h"

namespace {

using ptune::loss::linearCrossEntropySum;
using ptune::models::Backbone;
namespace prompt = ptune::prompt;

const auto kDouble = at::TensorOptions().dtype(at::kDouble);
const auto kLong = at::TensorOptions().dtype(at::kLong);

/// Mean prompt-tuning loss as api/ptune.cpp computes it, for a prompt-tuning method ...
at::Tensor promptLoss(const Backbone& model, const prompt::PromptMethodImpl& method,
                      const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& labels) {
  return ptune_test::methodLoss(model, &method, ids, mask, labels);
}

/// ... or for the values of a prompt (P, C) (a method holding a copy; no gradient reaches them).
at::Tensor promptLoss(const Backbone& model, const at::Tensor& prompt_embeddings, const at::Tensor& ids,
                      const at::Tensor& mask, const at::Tensor& labels) {
  const auto method = ptune_test::promptTuningWith(prompt_embeddings);
  return ptune_test::methodLoss(model, method.get(), ids, mask, labels);
}

using ptune_test::gradientLeaves;

class GradientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = ptune_test::storiesBackbone(at::kDouble);
  }
  static void TearDownTestSuite() { model_.reset(); }

  static void batch(at::Tensor& ids, at::Tensor& mask, at::Tensor& labels) {
    ptune_test::paddedBatch(ids, mask, labels);
  }

  static std::unique_ptr<Backbone> model_;
};

std::unique_ptr<Backbone> GradientTest::model_;

TEST_F(GradientTest, PromptGradientMatchesCentralDifferences) {
  at::manual_seed(7);
  const int64_t P = 4, C = 64;
  at::Tensor ids, mask, labels;
  batch(ids, mask, labels);
  const at::Tensor p0 = at::randn({P, C}, kDouble) * 0.3;

  const auto method = ptune_test::promptTuningWith(p0);
  const at::Tensor prompt_param = method->parameter("embedding").tensor;  // the trainable leaf
  const at::Tensor loss = promptLoss(*model_, *method, ids, mask, labels);
  loss.backward();
  const at::Tensor grad = prompt_param.grad();
  ASSERT_TRUE(grad.defined());
  EXPECT_GT(grad.abs().max().item<double>(), 1e-4);  // a real gradient, not a vanishing one

  at::NoGradGuard no_grad;
  std::mt19937 rng(11);
  std::uniform_int_distribution<int64_t> pick(0, P * C - 1);
  double worst = 0.0;  // error / allowed error
  for (int i = 0; i < 20; ++i) {
    const int64_t k = pick(rng);
    const ptune_test::CentralDifference fd = ptune_test::centralDifference([&](double d) {
      at::Tensor moved = p0.clone();
      moved.view({-1})[k] += d;
      return promptLoss(*model_, moved, ids, mask, labels).item<double>();
    });
    const double ad = grad.view({-1})[k].item<double>();
    worst = std::max(worst, std::abs(fd.value - ad) / fd.tolerance);
    // The bound follows from the step: truncation ~h^2 and rounding ~eps |f| / h (tolerance.h).
    EXPECT_LE(std::abs(fd.value - ad), fd.tolerance)
        << "coordinate " << k << ": autograd " << ad << ", central difference " << fd.value;
  }
  std::cout << "[ gradient  ] prompt: worst error vs central differences = " << worst << " of its bound"
            << std::endl;
}

TEST_F(GradientTest, PaddingAndIgnoredLabelsDoNotContribute) {
  at::manual_seed(8);
  const int64_t P = 4, C = 64;
  at::Tensor ids, mask, labels;
  batch(ids, mask, labels);
  const at::Tensor p0 = at::randn({P, C}, kDouble) * 0.3;
  // Changing padding ids (mask 0, label -100) leaves loss and gradient unchanged.
  const auto method_a = ptune_test::promptTuningWith(p0), method_b = ptune_test::promptTuningWith(p0);
  const at::Tensor a = method_a->parameter("embedding").tensor;
  const at::Tensor b = method_b->parameter("embedding").tensor;
  const at::Tensor loss_a = promptLoss(*model_, *method_a, ids, mask, labels);
  at::Tensor other_ids = ids.clone();
  other_ids[1].narrow(0, 8, 4).fill_(300);
  const at::Tensor loss_b = promptLoss(*model_, *method_b, other_ids, mask, labels);
  loss_a.backward();
  loss_b.backward();
  // Same shapes, same machine, and masked positions enter as exact zeros: bit-identical.
  EXPECT_EQ(loss_a.item<double>(), loss_b.item<double>());
  EXPECT_TRUE(a.grad().equal(b.grad()));

  // The batch loss is the label-weighted mean of the two rows computed alone.
  at::NoGradGuard no_grad;
  const double batch_loss = loss_a.item<double>();
  const double row0 = promptLoss(*model_, p0, ids.narrow(0, 0, 1), mask.narrow(0, 0, 1),
                                 labels.narrow(0, 0, 1)).item<double>();
  const double row1 = promptLoss(*model_, p0, ids.narrow(0, 1, 1).narrow(1, 0, 8),
                                 mask.narrow(0, 1, 1).narrow(1, 0, 8),
                                 labels.narrow(0, 1, 1).narrow(1, 0, 8)).item<double>();
  // row 0: labels at t = 2..11 -> 10 targets; row 1: t = 1..7 predicted from P+t-1 -> 7, plus
  // the first text token predicted from the last virtual token -> 8.
  // Rows alone are other shapes (other blocking): equal up to rounding of the loss's magnitude.
  EXPECT_NEAR(batch_loss, (10 * row0 + 8 * row1) / 18.0, ptune_test::fp64Tolerance(batch_loss));
}

TEST_F(GradientTest, FrozenWeightsNeverReceiveGradients) {
  at::manual_seed(9);
  at::Tensor ids, mask, labels;
  batch(ids, mask, labels);
  const auto method = ptune_test::promptTuningWith(at::randn({4, 64}, kDouble) * 0.3);
  const at::Tensor prompt_param = method->parameter("embedding").tensor;
  const at::Tensor loss = promptLoss(*model_, *method, ids, mask, labels);
  // The only leaf in the graph is the prompt: no weight-gradient work can ever be scheduled.
  const std::vector<at::Tensor> leaves = gradientLeaves(loss);
  ASSERT_EQ(leaves.size(), 1u);
  EXPECT_TRUE(leaves[0].is_same(prompt_param));
  loss.backward();
  EXPECT_TRUE(prompt_param.grad().defined());
  EXPECT_FALSE(model_->requireHead().weight().requires_grad());
  EXPECT_FALSE(model_->requireHead().weight().grad().defined());

  // The same holds for the fp32 model whose weights alias the memory-mapped file.
  const auto fp32 = ptune_test::storiesBackbone(at::kFloat);
  const auto method32 = ptune_test::promptTuningWith(prompt_param.detach().to(at::kFloat));
  const at::Tensor p32 = method32->parameter("embedding").tensor;
  const at::Tensor loss32 = promptLoss(*fp32, *method32, ids, mask, labels);
  const std::vector<at::Tensor> leaves32 = gradientLeaves(loss32);
  ASSERT_EQ(leaves32.size(), 1u);
  loss32.backward();
  EXPECT_FALSE(fp32->requireHead().weight().grad().defined());
  // fp32 against fp64: the fp32 rounding of a forward / backward, relative to the magnitude.
  EXPECT_NEAR(loss32.item<double>(), loss.item<double>(), ptune_test::fp32Tolerance(loss.item<double>()));
  EXPECT_LE((p32.grad().to(at::kDouble) - prompt_param.grad()).abs().max().item<double>(),
            ptune_test::fp32Tolerance(prompt_param.grad().abs().max().item<double>()));
}

// ---------------------------------------------------------------------------------------
// Fused linear cross-entropy on its own.

struct LossCase {
  at::Tensor hidden;  // (N, C)
  at::Tensor weight;  // (V, C)
  at::Tensor labels;  // (N)
};

LossCase randomCase(at::ScalarType dtype, bool all_ignored) {
  at::manual_seed(21);
  const int64_t N = 9, C = 16, V = 37;
  LossCase c;
  c.hidden = at::randn({N, C}, at::TensorOptions().dtype(dtype));
  c.weight = at::randn({V, C}, at::TensorOptions().dtype(dtype)) * 0.5;
  c.labels = at::randint(0, V, {N}, kLong);
  if (all_ignored) {
    c.labels.fill_(prompt::kIgnoreIndex);
  } else {
    c.labels[1] = prompt::kIgnoreIndex;
    c.labels[4] = prompt::kIgnoreIndex;
    c.labels[8] = prompt::kIgnoreIndex;
  }
  return c;
}

at::Tensor referenceLoss(const LossCase& c, const at::Tensor& hidden) {
  return at::cross_entropy_loss(at::matmul(hidden, c.weight.t()), c.labels, {},
                                at::Reduction::Sum, prompt::kIgnoreIndex);
}

TEST(LinearCrossEntropyTest, ValueAndGradientMatchCrossEntropyForEveryChunkSize) {
  for (bool all_ignored : {false, true}) {
    const LossCase c = randomCase(at::kDouble, all_ignored);
    at::Tensor ref_hidden = c.hidden.clone().set_requires_grad(true);
    const at::Tensor ref = referenceLoss(c, ref_hidden);
    ref.backward();
    if (!all_ignored) {
      EXPECT_GT(ref.item<double>(), 1.0);
    }
    for (int64_t chunk : {1, 3, 0}) {
      at::Tensor hidden = c.hidden.clone().set_requires_grad(true);
      const at::Tensor loss = linearCrossEntropySum(hidden, c.weight, c.labels, chunk);
      // Chunked against whole: another summation order, relative to the loss's magnitude.
      EXPECT_NEAR(loss.item<double>(), ref.item<double>(), ptune_test::fp64Tolerance(1 + ref.item<double>()))
          << "chunk " << chunk << ", all ignored " << all_ignored;
      (loss * 2.5).backward();  // the upstream gradient must scale the result
      const double diff = (hidden.grad() - 2.5 * ref_hidden.grad()).abs().max().item<double>();
      EXPECT_LE(diff, ptune_test::fp64Tolerance(2.5 * (1 + ref_hidden.grad().abs().max().item<double>())))
          << "chunk " << chunk << ", all ignored " << all_ignored;
      if (all_ignored) {
        EXPECT_EQ(loss.item<double>(), 0.0);
        EXPECT_EQ(hidden.grad().abs().max().item<double>(), 0.0);
      } else {
        // ignored rows get exactly zero gradient, the others do not
        EXPECT_EQ(hidden.grad()[4].abs().max().item<double>(), 0.0);
        EXPECT_GT(hidden.grad()[0].abs().max().item<double>(), 1e-3);
      }
    }
  }
}

TEST(LinearCrossEntropyTest, Fp32MatchesCrossEntropy) {
  const LossCase c = randomCase(at::kFloat, false);
  const at::Tensor ref = referenceLoss(c, c.hidden);
  for (int64_t chunk : {1, 3, 0}) {
    const at::Tensor loss = linearCrossEntropySum(c.hidden, c.weight, c.labels, chunk);
    EXPECT_EQ(loss.scalar_type(), at::kFloat);
    // fp32, chunked against whole: another summation order, relative to the magnitude.
    EXPECT_NEAR(loss.item<double>(), ref.item<double>(), ptune_test::fp32Tolerance(ref.item<double>())) << chunk;
  }
}

TEST(LinearCrossEntropyTest, HiddenGradientMatchesCentralDifferences) {
  const LossCase c = randomCase(at::kDouble, false);
  at::Tensor hidden = c.hidden.clone().set_requires_grad(true);
  linearCrossEntropySum(hidden, c.weight, c.labels, 2).backward();
  const at::Tensor grad = hidden.grad();
  at::NoGradGuard no_grad;
  for (int64_t k = 0; k < hidden.numel(); k += 5) {
    const ptune_test::CentralDifference fd = ptune_test::centralDifference([&](double d) {
      at::Tensor moved = c.hidden.clone();
      moved.view({-1})[k] += d;
      return linearCrossEntropySum(moved, c.weight, c.labels, 2).item<double>();
    });
    const double ad = grad.view({-1})[k].item<double>();
    // The bound follows from the step: truncation ~h^2 and rounding ~eps |f| / h (tolerance.h).
    EXPECT_LE(std::abs(fd.value - ad), fd.tolerance)
        << "element " << k << ": autograd " << ad << ", central difference " << fd.value;
  }
}

TEST(LinearCrossEntropyTest, RejectsBadInputs) {
  const LossCase c = randomCase(at::kDouble, false);
  at::Tensor labels = c.labels.clone();
  labels[0] = 37;
  const std::string range = ptune_test::thrownMessage<ptune::Error>(
      [&] { linearCrossEntropySum(c.hidden, c.weight, labels); });
  EXPECT_NE(range.find("a label lies outside the vocabulary [0, 37)"), std::string::npos) << range;
  const at::Tensor trainable = c.weight.clone().set_requires_grad(true);
  const std::string frozen = ptune_test::thrownMessage<ptune::Error>(
      [&] { linearCrossEntropySum(c.hidden, trainable, c.labels); });
  EXPECT_NE(frozen.find("the LM head must be frozen"), std::string::npos) << frozen;
  const std::string shape = ptune_test::thrownMessage<ptune::Error>(
      [&] { linearCrossEntropySum(c.hidden, c.weight, c.labels.narrow(0, 0, 5)); });
  EXPECT_NE(shape.find("expected hidden (N, C), weight (V, C), labels (N)"), std::string::npos)
      << shape;
}

}  // namespace
