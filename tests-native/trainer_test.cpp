// Prompt tuning end to end through the façade (ptune::PromptTrainer on the real stories260K):
// the loss falls, evaluation agrees with training, the optimizer is wired as documented,
// checkpoints restore exactly, and bad input fails with a message a user can act on.
#include <gtest/gtest.h>

#include <cstring>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <memory>
#include <numeric>
#include <vector>

#include "api/translate.h"
#include "ptune/ptune.h"
#include "test_support.h"
#include "tolerance.h"

namespace {

using ptune::PromptTrainer;
using ptune::StepStats;
using ptune::TrainOptions;
using ptune_test::thrownMessage;

constexpr int64_t kC = 64;
constexpr int64_t kIgnore = -100;

/// Ids of three short story lines (BOS first), from the llama2.c tokenizer tok512.bin.
const std::vector<int64_t> kLily = ptune_test::lilyWithBos();
const std::vector<int64_t>& kCat = ptune_test::kCatIds;
const std::vector<int64_t>& kTom = ptune_test::kTomIds;

using ptune_test::Batch;
using ptune_test::makeBatch;
using ptune_test::options;

class TrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = new ptune::Model(ptune_test::kStoriesDir.c_str(), ptune_test::stories260kConfig());
  }
  static void TearDownTestSuite() { delete model_; }

  /// TEXT initialisation: embeddings of the first P ids of the Lily line; (P, C).
  static std::vector<float> textInit(int64_t P) {
    std::vector<float> out(static_cast<size_t>(P * kC));
    model_->embed(kLily.data(), P, out.data());
    return out;
  }

  /// A prompt-tuning PromptModel of P virtual tokens holding init (P, C).
  static std::unique_ptr<ptune::PromptModel> softPrompt(const std::vector<float>& init, int64_t P) {
    ptune::PromptSpec spec{};
    spec.method = static_cast<int32_t>(ptune::PromptMethod::kPromptTuning);
    spec.num_virtual_tokens = P;
    auto prompt = std::make_unique<ptune::PromptModel>(*model_, spec, nullptr, 0);
    prompt->writeParameter("embedding", init.data());
    return prompt;
  }

  static StepStats train(PromptTrainer& trainer, Batch& b) {
    return trainer.trainMicroBatch(b.ids.data(), b.mask.data(), b.labels.data(), b.B, b.T);
  }

  static std::vector<float> prompt(const ptune::PromptModel& soft) {
    std::vector<float> out(static_cast<size_t>(soft.numVirtualTokens() * kC));
    soft.readParameter("embedding", out.data());
    return out;
  }

  static double maxDiff(const std::vector<float>& a, const std::vector<float>& b) {
    double d = 0.0;
    for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(static_cast<double>(a[i]) - b[i]));
    return d;
  }

  static ptune::Model* model_;
};

ptune::Model* TrainerTest::model_ = nullptr;

TEST_F(TrainerTest, LossFallsOverThirtyStepsAndEvaluateAgrees) {
  const int64_t P = 8;
  Batch a = makeBatch({kLily, kTom});  // B = 2, Lily right-padded
  Batch b = makeBatch({kCat});
  const std::vector<float> init = textInit(P);
  const auto soft = softPrompt(init, P);
  PromptTrainer trainer(*model_, *soft, options(0.1, 2, 30));
  EXPECT_EQ(soft->numVirtualTokens(), P);

  std::vector<double> step_loss;
  for (int step = 0; step < 30; ++step) {
    const ptune::EvalStats eval_a = trainer.evaluate(a.ids.data(), a.mask.data(), a.labels.data(), a.B, a.T);
    const StepStats sa = train(trainer, a);
    const StepStats sb = train(trainer, b);
    // evaluate sees the same prompt as the training micro-batch that follows it
    EXPECT_EQ(eval_a.label_tokens, sa.label_tokens);
    // Another code path (no autograd) on the same shapes: equal up to fp32 rounding of the loss.
    EXPECT_NEAR(eval_a.loss_sum / static_cast<double>(eval_a.label_tokens), sa.loss,
                ptune_test::fp32Tolerance(sa.loss));
    EXPECT_EQ(sa.label_tokens, 15 + 30);  // Lily 16 tokens, Tom 31: all but BOS
    EXPECT_EQ(sb.label_tokens, 29);
    EXPECT_FALSE(sa.optimizer_stepped);
    EXPECT_EQ(sa.optimizer_step, step);
    ASSERT_TRUE(sb.optimizer_stepped);
    EXPECT_EQ(sb.optimizer_step, step + 1);
    EXPECT_DOUBLE_EQ(sb.learning_rate, 0.1);  // lr x 1.0 of the constant schedule, in double
    EXPECT_GT(sb.grad_norm, 0.0);
    step_loss.push_back((sa.loss * sa.label_tokens + sb.loss * sb.label_tokens) /
                        static_cast<double>(sa.label_tokens + sb.label_tokens));
  }
  const double first = step_loss.front();
  const double last = (step_loss[27] + step_loss[28] + step_loss[29]) / 3.0;
  std::cout << "[ trainer   ] mean loss: step 1 " << first << ", steps 28-30 " << last << std::endl;
  // Measured: 1.709 -> 0.998 (the curve falls steadily). These bounds are about learning, with
  // margins ~10^5 times any rounding difference between kernels.
  EXPECT_GT(first, 1.5);
  EXPECT_LT(last, first - 0.5);
  EXPECT_LT(last, 0.65 * first);
  const auto mean = [&](int from) {
    return std::accumulate(step_loss.begin() + from, step_loss.begin() + from + 10, 0.0) / 10.0;
  };
  EXPECT_LT(mean(10), mean(0) - 0.1);
  EXPECT_LT(mean(20), mean(10) - 0.1);
  // The prompt moved away from its initialisation.
  EXPECT_GT(maxDiff(prompt(*soft), init), 0.5);
}

TEST_F(TrainerTest, FirstStepIsAdamWOnTheAveragedClippedGradient) {
  const int64_t P = 4;
  Batch a = makeBatch({kLily, kTom});
  Batch b = makeBatch({kCat});
  const std::vector<float> init = textInit(P);
  const size_t n = static_cast<size_t>(P * kC);
  std::vector<float> m(n), v(n);
  // The first AdamW step stores exp_avg = (1 - beta1) g and exp_avg_sq = (1 - beta2) g^2.
  auto gradientOf = [&](PromptTrainer& t) {
    t.readMoments("embedding", m.data(), v.data());
    std::vector<double> g(n);
    for (size_t i = 0; i < n; ++i) g[i] = m[i] / 0.1;
    // v = (1 - beta2) g^2 in fp32, g recovered from m: a few roundings, a few ulps of v.
    for (size_t i = 0; i < n; ++i) {
      EXPECT_NEAR(v[i], 0.001 * g[i] * g[i], ptune_test::fp32Tolerance(v[i], ptune_test::kElementwiseUlps));
    }
    return g;
  };
  const auto soft_a = softPrompt(init, P);
  PromptTrainer only_a(*model_, *soft_a, options(0.01, 1, 10));
  const StepStats sa = train(only_a, a);
  ASSERT_TRUE(sa.optimizer_stepped);
  const std::vector<double> ga = gradientOf(only_a);
  const auto soft_b = softPrompt(init, P);
  PromptTrainer only_b(*model_, *soft_b, options(0.01, 1, 10));
  const StepStats sb = train(only_b, b);
  ASSERT_TRUE(sb.optimizer_stepped);
  const std::vector<double> gb = gradientOf(only_b);
  ASSERT_NE(sa.label_tokens, sb.label_tokens);  // so the two averagings differ

  // kTokens (default): the mean over every label token of the cycle, as one batch of a and b.
  {
    const auto soft_tokens = softPrompt(init, P);
    PromptTrainer tokens(*model_, *soft_tokens, options(0.01, 2, 10));
    train(tokens, a);
    ASSERT_TRUE(train(tokens, b).optimizer_stepped);
    const std::vector<double> gt = gradientOf(tokens);
    const double na = static_cast<double>(sa.label_tokens), nb = static_cast<double>(sb.label_tokens);
    // Each micro-batch's backward runs with another upstream scale (its share of the tokens),
    // which rounds the whole backward differently: model-level rounding of the gradient's
    // magnitude (tolerance.h).
    const double tol = ptune_test::fp32Tolerance(std::max(ptune_test::maxAbs(ga), ptune_test::maxAbs(gb)));
    for (size_t i = 0; i < n; ++i) {
      EXPECT_NEAR(gt[i], (na * ga[i] + nb * gb[i]) / (na + nb), tol) << i;
    }
  }

  // kMicroBatches: the mean of the micro-batch gradients; weight decay applies.
  TrainOptions o = options(0.01, 2, 10);
  o.loss_averaging = static_cast<int32_t>(ptune::LossAveraging::kMicroBatches);
  o.weight_decay = 0.5;
  const auto soft_both = softPrompt(init, P);
  PromptTrainer both(*model_, *soft_both, o);
  train(both, a);
  const StepStats s = train(both, b);
  ASSERT_TRUE(s.optimizer_stepped);
  const std::vector<double> g = gradientOf(both);
  double norm = 0.0, g_scale = 0.0;
  for (size_t i = 0; i < n; ++i) {
    EXPECT_NEAR(g[i], 0.5 * (ga[i] + gb[i]),  // as above
                ptune_test::fp32Tolerance(std::max(ptune_test::maxAbs(ga), ptune_test::maxAbs(gb)))) << i;
    norm += g[i] * g[i];
    g_scale = std::max(g_scale, std::abs(g[i]));
  }
  // An fp32 norm of 256 components against a double one, relative to its magnitude.
  EXPECT_NEAR(s.grad_norm, std::sqrt(norm), ptune_test::fp32Tolerance(std::sqrt(norm)));
  const std::vector<float> p1 = prompt(*soft_both);
  for (size_t i = 0; i < n; ++i) {
    const double expected = init[i] * (1 - 0.01 * 0.5) - 0.01 * g[i] / (std::abs(g[i]) + 1e-8);
    // One fp32 AdamW update: a few ulps of the parameter's magnitude.
    EXPECT_NEAR(p1[i], expected, ptune_test::fp32Tolerance(std::max(1.0, std::abs(expected)), ptune_test::kElementwiseUlps)) << i;
  }

  // Clipping: the moments see the clipped gradient, grad_norm reports the norm before it.
  TrainOptions clipped = options(0.01, 2, 10);
  clipped.loss_averaging = o.loss_averaging;
  clipped.max_grad_norm = 0.1 * std::sqrt(norm);
  const auto soft_c = softPrompt(init, P);
  PromptTrainer c(*model_, *soft_c, clipped);
  train(c, a);
  const StepStats sc = train(c, b);
  // Same micro-batches, same shapes as `both`: the same norm up to the rounding above.
  EXPECT_NEAR(sc.grad_norm, std::sqrt(norm), ptune_test::fp32Tolerance(std::sqrt(norm)));
  const std::vector<double> gc = gradientOf(c);
  double clipped_norm = 0.0;
  for (double x : gc) clipped_norm += x * x;
  // torch's clip_grad_norm_ scales by max / (norm + 1e-6); the rest is fp32 rounding.
  EXPECT_NEAR(std::sqrt(clipped_norm), clipped.max_grad_norm * sc.grad_norm / (sc.grad_norm + 1e-6),
              ptune_test::fp32Tolerance(clipped.max_grad_norm));
}

TEST_F(TrainerTest, RestoreRoundTrip) {
  const int64_t P = 4;
  Batch a = makeBatch({kLily, kTom});
  Batch b = makeBatch({kCat});
  TrainOptions o = options(0.05, 2, 10);
  o.schedule = static_cast<int32_t>(ptune::LrSchedule::kLinear);
  o.warmup_steps = 2;
  o.max_grad_norm = 1.0;
  const std::vector<float> init = textInit(P);
  const auto soft_original = softPrompt(init, P);
  PromptTrainer original(*model_, *soft_original, o);
  for (int i = 0; i < 3; ++i) {
    train(original, a);
    train(original, b);
  }
  const size_t n = static_cast<size_t>(P * kC);
  const std::vector<float> saved_prompt = prompt(*soft_original);
  std::vector<float> saved_m(n), saved_v(n);
  original.readMoments("embedding", saved_m.data(), saved_v.data());

  std::vector<float> other_init(n, 0.05f);
  const auto soft_resumed = softPrompt(other_init, P);
  PromptTrainer resumed(*model_, *soft_resumed, o);
  train(resumed, a);  // a pending half-accumulated gradient that restore must discard
  // Restore = parameters, moments, then the step counter (which resets accumulation).
  soft_resumed->writeParameter("embedding", saved_prompt.data());
  resumed.writeMoments("embedding", saved_m.data(), saved_v.data());
  resumed.setOptimizerStep(3);
  EXPECT_EQ(resumed.optimizerStep(), 3);
  EXPECT_EQ(prompt(*soft_resumed), saved_prompt);
  std::vector<float> m(n), v(n);
  resumed.readMoments("embedding", m.data(), v.data());
  EXPECT_EQ(m, saved_m);
  EXPECT_EQ(v, saved_v);

  for (int i = 0; i < 2; ++i) {
    const StepStats oa = train(original, a), ra = train(resumed, a);
    EXPECT_FALSE(ra.optimizer_stepped);
    EXPECT_EQ(ra.loss, oa.loss);  // restored state, same shapes, same machine: bit-identical
    const StepStats ob = train(original, b), rb = train(resumed, b);
    ASSERT_TRUE(rb.optimizer_stepped);
    EXPECT_EQ(rb.optimizer_step, ob.optimizer_step);
    EXPECT_EQ(rb.optimizer_step, 4 + i);
    EXPECT_DOUBLE_EQ(rb.learning_rate, ob.learning_rate);
    EXPECT_DOUBLE_EQ(rb.learning_rate, 0.05 * (10.0 - (3 + i)) / 8.0);  // linear, warmup 2
    EXPECT_EQ(rb.grad_norm, ob.grad_norm);
  }
  EXPECT_EQ(prompt(*soft_resumed), prompt(*soft_original));
  EXPECT_GT(maxDiff(prompt(*soft_resumed), saved_prompt), 1e-3);  // and training went on
}

TEST_F(TrainerTest, BadInputFailsWithClearMessages) {
  const std::vector<float> init = textInit(4);
  for (int64_t P : {0, -3}) {
    const std::string message = thrownMessage<std::runtime_error>(
        [&] { const auto p = softPrompt(init, P); });
    EXPECT_NE(message.find("num_virtual_tokens must be positive, got " + std::to_string(P)),
              std::string::npos)
        << message;
  }
  const auto soft = softPrompt(init, 4);
  const std::string accum = thrownMessage<std::runtime_error>(
      [&] { PromptTrainer t(*model_, *soft, options(0.1, 0, 10)); });
  EXPECT_NE(accum.find("grad_accum must be >= 1"), std::string::npos) << accum;
  TrainOptions bad_averaging = options(0.1, 1, 10);
  bad_averaging.loss_averaging = 7;
  const std::string averaging = thrownMessage<std::runtime_error>(
      [&] { PromptTrainer t(*model_, *soft, bad_averaging); });
  EXPECT_NE(averaging.find("unknown loss averaging 7"), std::string::npos) << averaging;

  PromptTrainer trainer(*model_, *soft, options(0.1, 1, 10));
  for (int64_t bad_id : {512, -1}) {
    Batch bad = makeBatch({kLily});
    bad.ids[3] = bad_id;
    const std::string message = thrownMessage<std::runtime_error>([&] { train(trainer, bad); });
    EXPECT_NE(message.find("token id outside the vocabulary [0, 512)"), std::string::npos) << message;
  }
  Batch unlabeled = makeBatch({kLily, kTom});
  std::fill(unlabeled.labels.begin(), unlabeled.labels.end(), kIgnore);
  const std::string labels = thrownMessage<std::runtime_error>([&] { train(trainer, unlabeled); });
  EXPECT_NE(labels.find("a micro-batch has no label tokens (all labels are -100)"), std::string::npos)
      << labels;
  Batch empty_row = makeBatch({kLily, kTom});
  std::fill(empty_row.mask.begin(), empty_row.mask.begin() + empty_row.T, 0);
  const std::string mask = thrownMessage<std::runtime_error>([&] { train(trainer, empty_row); });
  EXPECT_NE(mask.find("attention mask is all zeros"), std::string::npos) << mask;
  const std::string eval_mask = thrownMessage<std::runtime_error>([&] {
    trainer.evaluate(empty_row.ids.data(), empty_row.mask.data(), empty_row.labels.data(),
                     empty_row.B, empty_row.T);
  });
  EXPECT_NE(eval_mask.find("attention mask is all zeros"), std::string::npos) << eval_mask;
  Batch bad_label = makeBatch({kLily});
  bad_label.labels[5] = 700;
  const std::string label_range = thrownMessage<std::runtime_error>([&] { train(trainer, bad_label); });
  EXPECT_NE(label_range.find("a label lies outside the vocabulary [0, 512)"), std::string::npos)
      << label_range;

  // Failed calls leave the trainer untouched: the prompt is unchanged, no step was counted.
  EXPECT_EQ(prompt(*soft), init);
  Batch good = makeBatch({kLily});
  const StepStats s = train(trainer, good);
  EXPECT_TRUE(s.optimizer_stepped);
  EXPECT_EQ(s.optimizer_step, 1);
}

}  // namespace

// A diverged run (here: a learning rate past fp32's range turns the prompt into inf/NaN after
// one update) comes back as a non-finite loss, without a backward pass or an update, so the
// Java trainer can stop with TrainingDivergedException instead of a generic native error.
TEST_F(TrainerTest, NonFiniteLossIsReturnedWithoutAnUpdate) {
  const int64_t P = 4;
  Batch a = makeBatch({kLily});
  const auto soft = softPrompt(textInit(P), P);
  PromptTrainer trainer(*model_, *soft, options(1e39, 1, 10));
  const StepStats first = train(trainer, a);
  ASSERT_TRUE(std::isfinite(first.loss));
  ASSERT_TRUE(first.optimizer_stepped);
  const std::vector<float> blown = prompt(*soft);
  const StepStats second = train(trainer, a);
  EXPECT_FALSE(first.cycle_dropped);
  EXPECT_FALSE(std::isfinite(second.loss));
  EXPECT_FALSE(second.optimizer_stepped);
  EXPECT_TRUE(second.cycle_dropped);
  EXPECT_EQ(second.optimizer_step, 1);
  const std::vector<float> after = prompt(*soft);
  for (size_t i = 0; i < after.size(); ++i) {
    // bit-identical, NaN included: no update happened
    ASSERT_EQ(std::memcmp(&after[i], &blown[i], sizeof(float)), 0) << "entry " << i;
  }
}

TEST(FacadeTranslation, AnAllocationFailureSaysWhatToMakeSmaller) {
  // 2^60 bytes exceed any x86-64 address space, so the allocation fails whatever the machine's
  // memory or overcommit setting.
  const std::string message = thrownMessage([] {
    ptune::api::translated("training step", [] { return at::empty({int64_t{1} << 58}, at::kFloat); });
  });
  EXPECT_EQ(message.rfind(std::string("training step") + ptune::api::kOutOfMemory, 0), 0u) << message;
  EXPECT_NE(message.find("--batch-size"), std::string::npos) << message;
  EXPECT_NE(message.find("--max-length"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}
