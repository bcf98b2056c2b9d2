// Training every prompt method through the façade (PromptModel + PromptTrainer on the real
// stories260K): trainable-parameter counts, per-parameter learning rates and frozen blocks,
// two-stage training (unfreezeTopLayers) that never touches the base model, and the training
// loss falling for each method.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "ptune/ptune.h"
#include "test_support.h"
#include "tolerance.h"

namespace {

using ptune::PromptEncoderType;
using ptune::PromptMethod;
using ptune::PromptModel;
using ptune::PromptTrainer;
using ptune_test::Batch;
using ptune_test::makeBatch;
using ptune_test::makeSpec;
using ptune_test::options;

constexpr int64_t kC = 64, kLayers = 5, kKv = 4 * 8, kInter = 172;
/// Weights of one stories260K layer: 2 norms, q (64x64), k, v (32x64), o (64x64), gate, up
/// (172x64), down (64x172).
constexpr int64_t kLayerWeights = 2 * kC + kC * kC + 2 * kKv * kC + kC * kC + 3 * kInter * kC;

class MethodTrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = new ptune::Model(ptune_test::kStoriesDir.c_str(), ptune_test::stories260kConfig());
  }
  static void TearDownTestSuite() { delete model_; }

  static std::unique_ptr<PromptModel> make(const ptune::PromptSpec& spec,
                                           const std::vector<int64_t>& blocks = {}) {
    return std::make_unique<PromptModel>(*model_, spec, blocks.empty() ? nullptr : blocks.data(),
                                         static_cast<int64_t>(blocks.size()));
  }

  static std::vector<float> read(const PromptModel& p, const std::string& name) {
    std::vector<float> out(static_cast<size_t>(p.parameterNumel(name.c_str())));
    p.readParameter(name.c_str(), out.data());
    return out;
  }

  static double maxDiff(const std::vector<float>& a, const std::vector<float>& b) {
    double d = 0.0;
    for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(static_cast<double>(a[i]) - b[i]));
    return d;
  }

  static ptune::StepStats train(PromptTrainer& t, Batch& b) {
    return t.trainMicroBatch(b.ids.data(), b.mask.data(), b.labels.data(), b.B, b.T);
  }

  static double evalLoss(const PromptTrainer& t, Batch& b) {
    const ptune::EvalStats s = t.evaluate(b.ids.data(), b.mask.data(), b.labels.data(), b.B, b.T);
    return s.loss_sum / static_cast<double>(s.label_tokens);
  }

  static std::vector<float> plainLogits(const std::vector<int64_t>& ids) {
    const std::vector<int64_t> mask(ids.size(), 1);
    std::vector<float> out(ids.size() * 512);
    model_->logits(nullptr, ids.data(), mask.data(), nullptr, 1, static_cast<int64_t>(ids.size()), out.data());
    return out;
  }

  static ptune::Model* model_;
};

ptune::Model* MethodTrainerTest::model_ = nullptr;

TEST_F(MethodTrainerTest, TrainableParameterCounts) {
  const int64_t P = 6, h = 16;
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"prompt tuning", P * kC},
      {"P-tuning MLP", P * kC + (kC * h + h) + (h * h + h) + (h * kC + kC)},
      // embedding; LSTM layer 0 (in C) and 1 (in 2h), two directions, 4h gates; head 2h->2h->C
      {"P-tuning LSTM", P * kC + 2 * (4 * h * kC + 4 * h * h + 8 * h) + 2 * (4 * h * 2 * h + 4 * h * h + 8 * h) +
                            (2 * h * 2 * h + 2 * h) + (2 * h * kC + kC)},
      {"prefix", P * 2 * kLayers * kKv},
      {"prefix + projection", P * kKv + (kKv * h + h) + (h * 2 * kLayers * kKv + 2 * kLayers * kKv)},
      {"dynamic", P * kC + (kC * h + h) + (h * P * kC + P * kC)},
  };
  const std::vector<ptune::PromptSpec> specs = {
      makeSpec(PromptMethod::kPromptTuning, P),
      makeSpec(PromptMethod::kPTuning, P, h, PromptEncoderType::kMlp),
      makeSpec(PromptMethod::kPTuning, P, h, PromptEncoderType::kLstm, 2),
      makeSpec(PromptMethod::kPrefixTuning, P),
      makeSpec(PromptMethod::kPrefixTuning, P, h, PromptEncoderType::kMlp, 0, true),
      makeSpec(PromptMethod::kDynamic, P, h),
  };
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto p = make(specs[i]);
    EXPECT_EQ(p->trainableParameterCount(), expected[i].second) << expected[i].first;
    int64_t total = 0;
    for (int64_t k = 0; k < p->numParameters(); ++k) total += p->parameterNumel(p->parameterName(k).c_str());
    EXPECT_EQ(total, expected[i].second) << expected[i].first;
  }
  // Composite: frozen blocks do not count; unfrozen layers do.
  const auto composite = make(makeSpec(PromptMethod::kPromptTuning, P), {1, 2, 3});
  EXPECT_EQ(composite->trainableParameterCount(), P * kC);
  composite->setTrainable("block.1", false, 0.0);
  EXPECT_FALSE(composite->isTrainable("block.1"));
  EXPECT_EQ(composite->trainableParameterCount(), (1 + 3) * kC);
  composite->unfreezeTopLayers(2, 1e-5);
  EXPECT_EQ(composite->numParameters(), 3 + 2 * 9);
  EXPECT_EQ(composite->trainableParameterCount(), (1 + 3) * kC + 2 * kLayerWeights);
  composite->setTrainable("model.layers.3.mlp.up_proj.weight", false, 0.0);
  EXPECT_EQ(composite->trainableParameterCount(), (1 + 3) * kC + 2 * kLayerWeights - kInter * kC);
}

TEST_F(MethodTrainerTest, PerParameterLearningRatesAndFrozenBlocks) {
  // Composite prompt of three blocks: block.0 at the trainer's rate, block.1 frozen, block.2 at
  // a tenth. AdamW's first step moves each element by lr * |g| / (|g| + eps): at most lr, and
  // almost exactly lr for the largest-gradient elements.
  Batch batch = makeBatch({ptune_test::lilyWithBos(), ptune_test::kCatIds});
  const auto p = make(makeSpec(PromptMethod::kPromptTuning, 6, 0, PromptEncoderType::kMlp, 0, false, 3), {2, 2, 2});
  p->setTrainable("block.1", false, 0.0);
  p->setTrainable("block.2", true, 0.001);
  const auto b0 = read(*p, "block.0"), b1 = read(*p, "block.1"), b2 = read(*p, "block.2");
  PromptTrainer trainer(*model_, *p, options(0.01, 1, 10));
  ASSERT_TRUE(train(trainer, batch).optimizer_stepped);
  const double d0 = maxDiff(read(*p, "block.0"), b0), d2 = maxDiff(read(*p, "block.2"), b2);
  // p - lr u rounds to fp32: a few ulps of |p| beyond lr at most.
  const double rounding = ptune_test::fp32Tolerance(std::max(ptune_test::maxAbs(b0), ptune_test::maxAbs(b2)),
                                                    ptune_test::kElementwiseUlps);
  EXPECT_GT(d0, 0.99 * 0.01);
  EXPECT_LE(d0, 0.01 + rounding);
  EXPECT_GT(d2, 0.99 * 0.001);
  EXPECT_LE(d2, 0.001 + rounding);
  for (int i = 0; i < 4; ++i) train(trainer, batch);
  EXPECT_EQ(read(*p, "block.1"), b1) << "a frozen block stays bit-identical";  // never written
  EXPECT_GT(maxDiff(read(*p, "block.0"), b0), 0.02);
  // The frozen block has no optimizer state; the trainable ones do.
  std::vector<float> m(2 * kC), v(2 * kC);
  trainer.readMoments("block.1", m.data(), v.data());
  EXPECT_EQ(*std::max_element(v.begin(), v.end()), 0.0f);
  trainer.readMoments("block.2", m.data(), v.data());
  EXPECT_GT(*std::max_element(v.begin(), v.end()), 0.0f);

  // Freezing everything leaves nothing to train.
  p->setTrainable("block.0", false, 0.0);
  p->setTrainable("block.2", false, 0.0);
  EXPECT_EQ(p->trainableParameterCount(), 0);
  const std::string nothing = ptune_test::thrownMessage<std::runtime_error>([&] { train(trainer, batch); });
  EXPECT_NE(nothing.find("nothing to train: every prompt parameter is frozen"), std::string::npos) << nothing;
  const std::string negative = ptune_test::thrownMessage<std::runtime_error>(
      [&] { p->setTrainable("block.0", true, -1.0); });
  EXPECT_NE(negative.find("learning rate of 'block.0' must be >= 0"), std::string::npos) << negative;
  const std::string unknown = ptune_test::thrownMessage<std::runtime_error>(
      [&] { p->setTrainable("block.7", true, 0.0); });
  EXPECT_NE(unknown.find("no prompt parameter named 'block.7' (this method has: block.0, block.1, block.2)"),
            std::string::npos)
      << unknown;
}

TEST_F(MethodTrainerTest, TwoStageTrainsTopLayersAndLeavesTheBaseModelUntouched) {
  Batch batch = makeBatch({ptune_test::lilyWithBos(), ptune_test::kCatIds});
  const std::vector<int64_t> probe = ptune_test::kTomIds;
  const std::vector<float> base_before = plainLogits(probe);
  const int64_t P = 4;
  const auto p = make(makeSpec(PromptMethod::kPromptTuning, P, 0, PromptEncoderType::kMlp, 0, false, 4));
  PromptTrainer trainer(*model_, *p, options(0.05, 1, 20));
  for (int i = 0; i < 3; ++i) train(trainer, batch);  // stage 1: the prompt alone
  const double stage1_loss = evalLoss(trainer, batch);

  const std::vector<int64_t> mask(probe.size(), 1);
  const int64_t S = P + static_cast<int64_t>(probe.size());
  std::vector<float> prompted(static_cast<size_t>(S * 512)), unfrozen(prompted.size());
  model_->logits(p.get(), probe.data(), mask.data(), nullptr, 1, static_cast<int64_t>(probe.size()), prompted.data());
  p->unfreezeTopLayers(1, 1e-5);
  // The trainable copies start as the checkpoint's weights: nothing changes yet.
  model_->logits(p.get(), probe.data(), mask.data(), nullptr, 1, static_cast<int64_t>(probe.size()), unfrozen.data());
  EXPECT_EQ(unfrozen, prompted);  // the same values, shapes and machine: bit-identical
  EXPECT_EQ(p->numParameters(), 1 + 9);
  const std::vector<std::string> names = {
      "model.layers.4.input_layernorm.weight", "model.layers.4.self_attn.q_proj.weight",
      "model.layers.4.self_attn.k_proj.weight", "model.layers.4.self_attn.v_proj.weight",
      "model.layers.4.self_attn.o_proj.weight", "model.layers.4.post_attention_layernorm.weight",
      "model.layers.4.mlp.gate_proj.weight", "model.layers.4.mlp.up_proj.weight",
      "model.layers.4.mlp.down_proj.weight"};
  std::vector<std::vector<float>> before;
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(p->parameterName(static_cast<int64_t>(i) + 1), names[i]);
    EXPECT_TRUE(p->isTrainable(names[i].c_str()));
    before.push_back(read(*p, names[i]));
  }
  const std::vector<float> prompt_before = read(*p, "embedding");

  // Stage 2 adds a parameter group, as torch.optim.AdamW does: the layers' own first AdamW
  // step (bias correction from step 1, whatever the run's step count) moves each weight by
  // lr * |g| / (|g| + eps), i.e. up to 1e-5 (fp32 rounding of weights ~0.1-1 aside). The prompt
  // goes on at its own rate, 5000x larger.
  ASSERT_TRUE(train(trainer, batch).optimizer_stepped);
  for (size_t i = 0; i < names.size(); ++i) {
    const double d = maxDiff(read(*p, names[i]), before[i]);
    // lr, give or take the fp32 rounding of the weight (a few ulps of its magnitude).
    const double rounding = ptune_test::fp32Tolerance(ptune_test::maxAbs(before[i]), ptune_test::kElementwiseUlps);
    EXPECT_GT(d, 0.99e-5 - rounding) << names[i];
    EXPECT_LE(d, 1e-5 + rounding) << names[i];
  }
  EXPECT_GT(maxDiff(read(*p, "embedding"), prompt_before), 0.01);
  for (int i = 0; i < 4; ++i) train(trainer, batch);
  const double stage2_loss = evalLoss(trainer, batch);
  std::cout << "[ two-stage ] loss after stage 1 " << stage1_loss << ", after 5 stage-2 steps "
            << stage2_loss << std::endl;
  EXPECT_LT(stage2_loss, stage1_loss);

  // The base model is never modified: plain logits are bit-identical, and a fresh prompt on
  // the same Model sees the checkpoint's layer.
  EXPECT_EQ(plainLogits(probe), base_before);  // same computation, same machine: bit-identical
  const auto fresh = make(makeSpec(PromptMethod::kPromptTuning, P, 0, PromptEncoderType::kMlp, 0, false, 4));
  fresh->unfreezeTopLayers(1, 1e-5);
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(read(*fresh, names[i]), before[i]) << names[i];
  }

  // Misuse fails clearly.
  const auto other = make(makeSpec(PromptMethod::kPromptTuning, P));
  for (int64_t layers : {0, 6}) {
    const std::string m = ptune_test::thrownMessage<std::runtime_error>([&] { other->unfreezeTopLayers(layers, 1e-5); });
    EXPECT_NE(m.find("the number of layers to unfreeze must lie in [1, 5], got " + std::to_string(layers)),
              std::string::npos)
        << m;
  }
  const std::string rate = ptune_test::thrownMessage<std::runtime_error>([&] { other->unfreezeTopLayers(1, 0.0); });
  EXPECT_NE(rate.find("the learning rate of unfrozen layers must be positive"), std::string::npos) << rate;
  const std::string twice = ptune_test::thrownMessage<std::runtime_error>([&] { p->unfreezeTopLayers(1, 1e-5); });
  EXPECT_NE(twice.find("layers are unfrozen already"), std::string::npos) << twice;
}

TEST_F(MethodTrainerTest, EveryMethodLowersTheTrainingLoss) {
  // 20 AdamW steps on one fixed batch (two story lines), default initialisation, a rate per
  // method; loss from evaluate() before and after. Measured (libtorch 1.13 CPU) in the comments.
  Batch batch = makeBatch({ptune_test::lilyWithBos(), ptune_test::kCatIds});
  struct Case {
    std::string label;
    ptune::PromptSpec spec;
    std::vector<int64_t> blocks;
    double lr;
    double max_ratio;  // loss after / loss before must stay below this
  };
  const std::vector<Case> cases = {
      {"prompt tuning", makeSpec(PromptMethod::kPromptTuning, 4, 0, PromptEncoderType::kMlp, 0, false, 1), {}, 0.1, 0.8},
      {"composite", makeSpec(PromptMethod::kPromptTuning, 4, 0, PromptEncoderType::kMlp, 0, false, 2), {2, 1, 1}, 0.1, 0.8},
      {"P-tuning MLP", makeSpec(PromptMethod::kPTuning, 4, 32, PromptEncoderType::kMlp, 0, false, 3), {}, 0.03, 0.8},
      {"P-tuning LSTM", makeSpec(PromptMethod::kPTuning, 4, 16, PromptEncoderType::kLstm, 2, false, 4), {}, 0.03, 0.8},
      {"prefix", makeSpec(PromptMethod::kPrefixTuning, 4, 0, PromptEncoderType::kMlp, 0, false, 5), {}, 0.1, 0.8},
      {"prefix + projection", makeSpec(PromptMethod::kPrefixTuning, 4, 32, PromptEncoderType::kMlp, 0, true, 6), {}, 0.03, 0.8},
      {"dynamic", makeSpec(PromptMethod::kDynamic, 4, 32, PromptEncoderType::kMlp, 0, false, 7), {}, 0.03, 0.8},
  };
  for (const Case& c : cases) {
    const auto p = make(c.spec, c.blocks);
    PromptTrainer trainer(*model_, *p, options(c.lr, 1, 20));
    const double before = evalLoss(trainer, batch);
    for (int i = 0; i < 20; ++i) train(trainer, batch);
    const double after = evalLoss(trainer, batch);
    std::cout << "[ methods   ] " << c.label << " (" << p->trainableParameterCount()
              << " trainable, lr " << c.lr << "): loss " << before << " -> " << after << std::endl;
    EXPECT_GT(before, 1.0) << c.label;
    EXPECT_LT(after, c.max_ratio * before) << c.label;
  }
}

}  // namespace

// Java closes handles in any order (try-with-resources closes the model last, but a user may
// not): a prompt keeps its model alive and a trainer its prompt, so nothing dangles.
TEST(HandleLifetimeTest, TrainerOutlivesItsModelAndPromptHandles) {
  auto model = std::make_unique<ptune::Model>(ptune_test::kStoriesDir.c_str(),
                                                 ptune_test::stories260kConfig());
  auto prompt = std::make_unique<PromptModel>(
      *model, makeSpec(PromptMethod::kPrefixTuning, 3), nullptr, 0);
  auto trainer = std::make_unique<PromptTrainer>(*model, *prompt, options(1e-2, 1, 10));
  model.reset();
  prompt.reset();
  Batch batch = makeBatch({ptune_test::lilyWithBos()});
  const ptune::StepStats first =
      trainer->trainMicroBatch(batch.ids.data(), batch.mask.data(), batch.labels.data(), batch.B, batch.T);
  const ptune::StepStats second =
      trainer->trainMicroBatch(batch.ids.data(), batch.mask.data(), batch.labels.data(), batch.B, batch.T);
  EXPECT_TRUE(std::isfinite(first.loss));
  EXPECT_LT(second.loss, first.loss);
}
