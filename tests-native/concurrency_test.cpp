// One ptune::Model used by several threads at once through the façade, each thread with its own
// prompt (prompt tuning, P-tuning, prefix tuning, dynamic) or none: logits, greedy and seeded
// sampled generation equal the same calls made alone, bit for bit (same shapes, same machine),
// while another thread trains a fifth prompt in two stages (its unfrozen layers are its own
// copies). Then the bare model still gives what it gave before. And a prompt or trainer outlives
// a model destroyed first (shared ownership): its parameters stay readable, nothing is freed
// under it. Under a ThreadSanitizer build this is the data-race check of the native core.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ptune/ptune.h"
#include "test_support.h"

namespace {

using ptune::PromptEncoderType;
using ptune::PromptMethod;
using ptune::PromptModel;
using ptune_test::makeSpec;

constexpr int64_t kNew = 10;
constexpr int kRounds = 6;

ptune::GenerateOptions decoding(bool greedy, int64_t seed) {
  ptune::GenerateOptions o{};
  o.max_new_tokens = kNew;
  o.greedy = greedy;
  o.temperature = 0.9;
  o.top_k = 40;
  o.top_p = 0.95;
  o.seed = seed;
  o.pad_token_id = 0;
  return o;
}

/// What one prompt gives for kLilyIds: logits, the greedy continuation, one sample.
struct Outputs {
  std::vector<float> logits;
  std::vector<int64_t> greedy, sampled;

  bool operator==(const Outputs& o) const {
    return logits == o.logits && greedy == o.greedy && sampled == o.sampled;
  }
};

Outputs run(const ptune::Model& model, const PromptModel* prompt) {
  const std::vector<int64_t>& ids = ptune_test::kLilyIds;
  const int64_t T = static_cast<int64_t>(ids.size());
  const std::vector<int64_t> mask(ids.size(), 1);
  const int64_t rows = model.inputVirtualTokens(prompt) + T;
  Outputs out;
  out.logits.resize(static_cast<size_t>(rows * model.vocabSize()));
  model.logits(prompt, ids.data(), mask.data(), nullptr, 1, T, out.logits.data());
  const int64_t eos = 2;
  int64_t length = 0;
  out.greedy.resize(kNew);
  model.generate(prompt, ids.data(), mask.data(), 1, T, &eos, 1, decoding(true, 0), out.greedy.data(), &length);
  out.greedy.resize(static_cast<size_t>(length));
  out.sampled.resize(kNew);
  model.generate(prompt, ids.data(), mask.data(), 1, T, &eos, 1, decoding(false, 7), out.sampled.data(), &length);
  out.sampled.resize(static_cast<size_t>(length));
  return out;
}

/// Moves every parameter off its initial value (the dynamic generator's last layer starts at 0).
void perturb(PromptModel& prompt, int salt) {
  for (int64_t i = 0; i < prompt.numParameters(); ++i) {
    const std::string name = prompt.parameterName(i);
    std::vector<float> v(static_cast<size_t>(prompt.parameterNumel(name.c_str())));
    prompt.readParameter(name.c_str(), v.data());
    for (size_t j = 0; j < v.size(); ++j) v[j] += 0.02f * static_cast<float>(((j * 7919 + salt) % 201) - 100) / 100.0f;
    prompt.writeParameter(name.c_str(), v.data());
  }
}

/// One intra-op thread per calling thread for the test: several threads of spinning OpenMP
/// workers on a small shared machine spend their time in barriers. Restored afterwards.
class ConcurrencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    threads_ = ptune::intraOpThreads();
    ptune::setIntraOpThreads(1);
  }
  void TearDown() override { ptune::setIntraOpThreads(threads_); }

 private:
  int32_t threads_ = 1;
};

TEST_F(ConcurrencyTest, FourPromptsAndATrainerOnOneModelGiveWhatEachGivesAlone) {
  ptune::Model model(ptune_test::kStoriesDir.c_str(), ptune_test::stories260kConfig());
  std::vector<std::unique_ptr<PromptModel>> prompts;
  prompts.push_back(nullptr);  // the bare model
  const std::vector<ptune::PromptSpec> specs = {
      makeSpec(PromptMethod::kPromptTuning, 5, 0, PromptEncoderType::kMlp, 0, false, 41),
      makeSpec(PromptMethod::kPTuning, 4, 8, PromptEncoderType::kLstm, 1, false, 42),
      makeSpec(PromptMethod::kPrefixTuning, 4, 16, PromptEncoderType::kMlp, 0, true, 43),
      makeSpec(PromptMethod::kDynamic, 4, 16, PromptEncoderType::kMlp, 0, false, 44)};
  for (size_t i = 0; i < specs.size(); ++i) {
    prompts.push_back(std::make_unique<PromptModel>(model, specs[i], nullptr, 0));
    perturb(*prompts.back(), static_cast<int>(i));
  }
  std::vector<Outputs> alone;
  for (const auto& p : prompts) alone.push_back(run(model, p.get()));

  // The trainer's prompt, trained alone first, then again while the others run.
  const ptune_test::Batch batch = ptune_test::makeBatch({ptune_test::lilyWithBos(), ptune_test::kCatIds});
  const auto train = [&](std::vector<float>& trained_layer) {
    PromptModel prompt(model, specs[0], nullptr, 0);
    ptune::PromptTrainer trainer(model, prompt, ptune_test::options(0.03, 1, 4));
    for (int step = 0; step < 2; ++step) trainer.trainMicroBatch(batch.ids.data(), batch.mask.data(), batch.labels.data(), batch.B, batch.T);
    prompt.unfreezeTopLayers(2, 1e-3);
    ptune::PromptTrainer stage2(model, prompt, ptune_test::options(0.03, 1, 2));
    for (int step = 0; step < 2; ++step) stage2.trainMicroBatch(batch.ids.data(), batch.mask.data(), batch.labels.data(), batch.B, batch.T);
    const char* name = "model.layers.4.mlp.up_proj.weight";
    trained_layer.resize(static_cast<size_t>(prompt.parameterNumel(name)));
    prompt.readParameter(name, trained_layer.data());
  };
  std::vector<float> layer_alone;
  train(layer_alone);

  std::atomic<int> mismatches{0};
  std::atomic<bool> failed{false};
  std::vector<std::string> errors(prompts.size() + 1);
  std::vector<float> layer_together;
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i) {
    threads.emplace_back([&, i] {
      try {
        for (int r = 0; r < kRounds; ++r) {
          if (!(run(model, prompts[i].get()) == alone[i])) mismatches++;
        }
      } catch (const std::exception& e) {
        errors[i] = e.what();
        failed = true;
      }
    });
  }
  threads.emplace_back([&] {
    try {
      train(layer_together);
    } catch (const std::exception& e) {
      errors.back() = e.what();
      failed = true;
    }
  });
  for (auto& t : threads) t.join();
  for (const auto& e : errors) EXPECT_EQ("", e);
  ASSERT_FALSE(failed);
  EXPECT_EQ(0, mismatches.load()) << "a call made together with others differed from the same call alone";
  EXPECT_EQ(layer_alone, layer_together) << "training together with other threads differed from training alone";
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_TRUE(run(model, prompts[i].get()) == alone[i]) << "prompt " << i << " after the training";
  }
}

TEST_F(ConcurrencyTest, PromptsAndTrainersOutliveTheirModel) {
  auto model = std::make_unique<ptune::Model>(ptune_test::kStoriesDir.c_str(), ptune_test::stories260kConfig());
  auto prompt = std::make_unique<PromptModel>(
      *model, makeSpec(PromptMethod::kPrefixTuning, 3, 16, PromptEncoderType::kMlp, 0, true, 5), nullptr, 0);
  auto trainer = std::make_unique<ptune::PromptTrainer>(*model, *prompt, ptune_test::options(0.01, 1, 2));
  std::vector<float> before(static_cast<size_t>(prompt->peftEmbeddingsNumel()));
  prompt->exportPeftEmbeddings(before.data());
  model.reset();  // the prompt and trainer hold the weights
  const ptune_test::Batch batch = ptune_test::makeBatch({ptune_test::lilyWithBos()});
  const ptune::StepStats stats = trainer->trainMicroBatch(batch.ids.data(), batch.mask.data(), batch.labels.data(), batch.B, batch.T);
  EXPECT_TRUE(stats.optimizer_stepped);
  std::vector<float> after(before.size());
  prompt->exportPeftEmbeddings(after.data());
  EXPECT_NE(before, after) << "the step trained the prompt";
  prompt.reset();  // the trainer still holds it
  EXPECT_EQ(1, trainer->optimizerStep());
  trainer.reset();
}

}  // namespace
