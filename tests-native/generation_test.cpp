// Decoding: the KV-cache path against recomputing the whole sequence, left-padded batches
// against rows alone, the sampling warpers (top-k, top-p with transformers' semantics,
// temperature, seeds) and EOS handling.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not in ATen.h of libtorch 2.x)
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "core/check.h"
#include "generate/generation.h"
#include "io/safetensors.h"
#include "models/backbone.h"
#include "prompt/prompt_method.h"
#include "prompt/prompted_input.h"
#include "internal_support.h"
#include "test_support.h"
#include "tolerance.h"

namespace {

using ptune::GenerateOptions;
using ptune::models::Backbone;
namespace generate = ptune::generate;
namespace prompt = ptune::prompt;

const auto kLong = at::TensorOptions().dtype(at::kLong);

GenerateOptions greedy(int64_t n, int64_t pad = 0) {
  GenerateOptions o{};
  o.max_new_tokens = n;
  o.greedy = true;
  o.temperature = 1.0;
  o.top_k = 0;
  o.top_p = 1.0;
  o.seed = 0;
  o.pad_token_id = pad;
  return o;
}

GenerateOptions sampling(int64_t top_k, double top_p, double temperature = 1.0, int64_t seed = 0) {
  GenerateOptions o = greedy(1);
  o.greedy = false;
  o.top_k = top_k;
  o.top_p = top_p;
  o.temperature = temperature;
  o.seed = seed;
  return o;
}

std::vector<int64_t> row(const at::Tensor& tokens, int64_t b) {
  const at::Tensor r = tokens[b].contiguous();
  return std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
}

class GenerationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = ptune_test::storiesBackbone(at::kFloat);
  }
  static void TearDownTestSuite() { model_.reset(); }

  /// Prompt tuning with a random soft prompt (P, C) scaled by 0.1.
  static std::unique_ptr<prompt::PromptMethodImpl> softPrompt(int64_t P, uint64_t seed) {
    at::manual_seed(seed);
    return ptune_test::promptTuningWith(at::randn({P, 64}) * 0.1);
  }

  /// Next-token logits (V) of the whole sequence ids, recomputed without a cache.
  static std::vector<float> nextLogits(const prompt::PromptMethodImpl* soft, const std::vector<int64_t>& ids) {
    at::NoGradGuard no_grad;
    const at::Tensor t = at::tensor(ids, kLong).unsqueeze(0);  // (1, T)
    prompt::PreparedInput input = prompt::prepareInput(*model_, soft, t, at::ones_like(t), false);
    const at::Tensor hidden = model_->forward(input.input, &input.cache);
    const at::Tensor logits = at::matmul(hidden.select(1, -1), model_->requireHead().weight().t()).contiguous();  // (1, V)
    return std::vector<float>(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
  }

  /// Greedy decoding without a cache: the full sequence recomputed for every new token.
  static std::vector<int64_t> recomputeGreedy(const prompt::PromptMethodImpl* soft,
                                              std::vector<int64_t> ids, int n) {
    std::vector<int64_t> out;
    for (int step = 0; step < n; ++step) {
      const std::vector<float> logits = nextLogits(soft, ids);
      const int64_t next = std::max_element(logits.begin(), logits.end()) - logits.begin();
      out.push_back(next);
      ids.push_back(next);
    }
    return out;
  }

  /// greedyMismatch (tolerance.h) of `actual` against greedy tokens `expected` after `ids`: the
  /// two paths (KV cache, another batch shape) round differently, so a near-tie may go either way.
  static std::string mismatch(const prompt::PromptMethodImpl* soft, const std::vector<int64_t>& ids,
                              const std::vector<int64_t>& expected, const std::vector<int64_t>& actual) {
    return ptune_test::greedyMismatch(expected, actual, [&](size_t i) {
      std::vector<int64_t> prefix = ids;
      prefix.insert(prefix.end(), expected.begin(), expected.begin() + static_cast<std::ptrdiff_t>(i));
      return nextLogits(soft, prefix);
    });
  }

  static at::Tensor run(const prompt::PromptMethodImpl* soft, const at::Tensor& ids, const at::Tensor& mask,
                        const std::vector<int64_t>& eos, const GenerateOptions& options,
                        std::vector<int64_t>& lengths) {
    at::NoGradGuard no_grad;
    return generate::generate(*model_, soft, ids, mask, eos, options, lengths);
  }

  static std::unique_ptr<Backbone> model_;
};

std::unique_ptr<Backbone> GenerationTest::model_;

TEST_F(GenerationTest, KvCacheGreedyEqualsFullRecompute) {
  const auto soft_method = softPrompt(5, 1);
  const prompt::PromptMethodImpl* soft = soft_method.get();
  const std::vector<int64_t> ids = {ptune_test::kBos, 403, 407, 261, 378};
  const at::Tensor t = at::tensor(ids, kLong).unsqueeze(0);
  std::vector<int64_t> lengths;
  const at::Tensor tokens = run(soft, t, at::ones_like(t), {}, greedy(30), lengths);
  ASSERT_EQ(tokens.sizes().vec(), (std::vector<int64_t>{1, 30}));
  EXPECT_EQ(lengths, std::vector<int64_t>{30});
  const std::vector<int64_t> expected = recomputeGreedy(soft, ids, 30);
  EXPECT_EQ(mismatch(soft, ids, expected, row(tokens, 0)), "");
  // Without the prompt too.
  const at::Tensor plain = run(nullptr, t, at::ones_like(t), {}, greedy(30), lengths);
  EXPECT_EQ(mismatch(nullptr, ids, recomputeGreedy(nullptr, ids, 30), row(plain, 0)), "");
}

TEST_F(GenerationTest, LeftPaddedBatchRowsEqualRowsAlone) {
  const auto soft_method = softPrompt(5, 2);
  const prompt::PromptMethodImpl* soft = soft_method.get();
  const std::vector<int64_t> lily = ptune_test::lilyWithBos();
  const std::vector<std::vector<int64_t>> rows = {
      {lily.begin(), lily.begin() + 3}, {lily.begin(), lily.begin() + 9}, {1, 300, 290, 426, 317, 261}};
  const int64_t T = 9, N = 20;
  at::Tensor ids = at::full({3, T}, 0, kLong), mask = at::zeros({3, T}, kLong);
  for (int64_t b = 0; b < 3; ++b) {
    const auto& r = rows[static_cast<size_t>(b)];
    const int64_t start = T - static_cast<int64_t>(r.size());
    for (size_t t = 0; t < r.size(); ++t) {
      ids[b][start + static_cast<int64_t>(t)] = r[t];
      mask[b][start + static_cast<int64_t>(t)] = 1;
    }
    if (start > 0) ids[b][0] = 400;  // padding ids must not matter
  }
  std::vector<int64_t> lengths;
  const at::Tensor batch = run(soft, ids, mask, {}, greedy(N), lengths);
  EXPECT_EQ(lengths, (std::vector<int64_t>{N, N, N}));
  std::set<std::vector<int64_t>> distinct;
  for (int64_t b = 0; b < 3; ++b) {
    const at::Tensor alone_ids = at::tensor(rows[static_cast<size_t>(b)], kLong).unsqueeze(0);
    std::vector<int64_t> alone_lengths;
    const at::Tensor alone = run(soft, alone_ids, at::ones_like(alone_ids), {}, greedy(N), alone_lengths);
    // Another batch shape rounds differently: identical unless a near-tie (tolerance.h).
    EXPECT_EQ(mismatch(soft, rows[static_cast<size_t>(b)], row(alone, 0), row(batch, b)), "") << "row " << b;
    distinct.insert(row(alone, 0));
  }
  EXPECT_EQ(distinct.size(), 3u);  // three different continuations: the check has teeth
}

TEST_F(GenerationTest, EosStopsARowAndPadsTheRest) {
  const auto soft_method = softPrompt(5, 3);
  const prompt::PromptMethodImpl* soft = soft_method.get();
  const std::vector<int64_t> lily = ptune_test::lilyWithBos();
  at::Tensor ids = at::zeros({2, 4}, kLong), mask = at::ones({2, 4}, kLong);
  for (int64_t t = 0; t < 4; ++t) {
    ids[0][t] = lily[static_cast<size_t>(t)];
    ids[1][t] = lily[static_cast<size_t>(t + 6)];
  }
  const int64_t N = 24;
  std::vector<int64_t> lengths;
  const std::vector<int64_t> free0 = row(run(soft, ids, mask, {}, greedy(N), lengths), 0);
  const std::vector<int64_t> free1 = row(run(soft, ids, mask, {}, greedy(N), lengths), 1);
  // Choose as "EOS" the token row 0 emits at step 6 (its first occurrence ends row 0).
  const int64_t eos = free0[6];
  const auto first = [&](const std::vector<int64_t>& s) {
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == eos) return static_cast<int64_t>(i);
    }
    return N;  // never: the row runs to max_new_tokens
  };
  const int64_t stop0 = first(free0), stop1 = first(free1);
  ASSERT_LE(stop0, 6);
  ASSERT_NE(stop0, stop1) << "pick inputs whose rows finish at different steps";

  for (int64_t pad : {0, 7}) {
    std::vector<int64_t> got_lengths;
    const at::Tensor tokens = run(soft, ids, mask, {eos, 9999}, greedy(N, pad), got_lengths);
    const std::vector<int64_t> stops = {stop0, stop1};
    const std::vector<std::vector<int64_t>> frees = {free0, free1};
    for (size_t b = 0; b < 2; ++b) {
      const std::vector<int64_t> got = row(tokens, static_cast<int64_t>(b));
      const int64_t expected_length = std::min(stops[b] + 1, N);  // EOS included
      EXPECT_EQ(got_lengths[b], expected_length) << "row " << b << " pad " << pad;
      for (int64_t i = 0; i < N; ++i) {
        const int64_t expected = i < expected_length ? frees[b][static_cast<size_t>(i)] : pad;
        EXPECT_EQ(got[static_cast<size_t>(i)], expected) << "row " << b << " step " << i;
      }
    }
  }
}

TEST_F(GenerationTest, StopCheckIntervalChangesNothing) {
  // On a GPU decode() reads "all rows finished" on the host every kDeviceStopCheckEvery steps
  // only; rows finishing between checks decode discarded tokens. Tokens and lengths must equal
  // the every-step check's, whether the batch ends on a checked step or between two.
  const std::vector<int64_t> lily = ptune_test::lilyWithBos();
  at::Tensor ids = at::zeros({2, 4}, kLong), mask = at::ones({2, 4}, kLong);
  for (int64_t t = 0; t < 4; ++t) {
    ids[0][t] = lily[static_cast<size_t>(t)];
    ids[1][t] = lily[static_cast<size_t>(t + 6)];
  }
  std::vector<int64_t> lengths;
  const std::vector<int64_t> free0 = row(run(nullptr, ids, mask, {}, greedy(20), lengths), 0);
  const std::vector<int64_t> free1 = row(run(nullptr, ids, mask, {}, greedy(20), lengths), 1);
  at::NoGradGuard no_grad;
  const at::Tensor pads = at::full({2}, 7, kLong);
  const auto decodeWith = [&](const std::vector<int64_t>& limits, const std::vector<int64_t>& eos, int64_t every,
                              std::vector<int64_t>& out_lengths) {
    prompt::PreparedInput prepared = prompt::prepareInput(*model_, nullptr, ids, mask, false);
    return generate::decode(
        *model_, prepared, limits, eos, pads, [](const at::Tensor& logits, int64_t) { return logits.argmax(-1); },
        out_lengths, every);
  };
  // EOS = row 0's token at step 3 (ends row 0 there, row 1 runs on); per-row limits 20 and 11.
  for (const auto& [limits, eos] : {std::pair{std::vector<int64_t>{20, 11}, std::vector<int64_t>{free0[3]}},
                                    {std::vector<int64_t>{20, 20}, std::vector<int64_t>{}},
                                    {std::vector<int64_t>{5, 2}, std::vector<int64_t>{free1[0]}}}) {
    std::vector<int64_t> want_lengths;
    const at::Tensor want = decodeWith(limits, eos, 1, want_lengths);
    for (const int64_t every : {int64_t{3}, generate::kDeviceStopCheckEvery, int64_t{50}}) {
      std::vector<int64_t> got_lengths;
      const at::Tensor got = decodeWith(limits, eos, every, got_lengths);
      EXPECT_TRUE(at::equal(got, want)) << "check every " << every << " steps";
      EXPECT_EQ(got_lengths, want_lengths) << "check every " << every << " steps";
    }
  }
}

TEST_F(GenerationTest, PadIdOutsideTheVocabularyIsOnlyWritten) {
  // pad_token_id is "written after a row has finished" (ptune.h): it is output, never input,
  // so a value outside the vocabulary (e.g. -1 for "none") must work while other rows go on.
  const std::vector<int64_t> lily = ptune_test::lilyWithBos();
  at::Tensor ids = at::zeros({2, 3}, kLong), mask = at::ones({2, 3}, kLong);
  for (int64_t t = 0; t < 3; ++t) {
    ids[0][t] = lily[static_cast<size_t>(t)];
    ids[1][t] = lily[static_cast<size_t>(t + 8)];
  }
  std::vector<int64_t> lengths;
  const std::vector<int64_t> free0 = row(run(nullptr, ids, mask, {}, greedy(12), lengths), 0);
  const std::vector<int64_t> free1 = row(run(nullptr, ids, mask, {}, greedy(12), lengths), 1);
  const int64_t eos = free0[1];
  ASSERT_EQ(std::find(free1.begin(), free1.end(), eos), free1.end());
  at::Tensor tokens;
  ASSERT_NO_THROW(tokens = run(nullptr, ids, mask, {eos}, greedy(12, -1), lengths));
  const int64_t stop0 = std::find(free0.begin(), free0.end(), eos) - free0.begin();
  EXPECT_EQ(lengths, (std::vector<int64_t>{stop0 + 1, 12}));
  EXPECT_EQ(row(tokens, 0)[static_cast<size_t>(stop0 + 1)], -1);
  EXPECT_EQ(row(tokens, 1), free1);
}

TEST_F(GenerationTest, AllRowsFinishedAndEdgeCases) {
  const at::Tensor ids = at::tensor(std::vector<int64_t>{1, 403}, kLong).unsqueeze(0);
  std::vector<int64_t> lengths;
  const std::vector<int64_t> free = row(run(nullptr, ids, at::ones_like(ids), {}, greedy(5), lengths), 0);
  const at::Tensor stopped = run(nullptr, ids, at::ones_like(ids), {free[0]}, greedy(5, 0), lengths);
  EXPECT_EQ(lengths, std::vector<int64_t>{1});
  EXPECT_EQ(row(stopped, 0), (std::vector<int64_t>{free[0], 0, 0, 0, 0}));

  const at::Tensor none = run(nullptr, ids, at::ones_like(ids), {}, greedy(0), lengths);
  EXPECT_EQ(none.numel(), 0);
  EXPECT_EQ(lengths, std::vector<int64_t>{0});

  const std::string too_long = ptune_test::thrownMessage<ptune::Error>(
      [&] { run(softPrompt(5, 4).get(), ids, at::ones_like(ids), {}, greedy(506), lengths); });
  EXPECT_NE(too_long.find("513 positions exceed the model's 512"), std::string::npos)
      << too_long;
  GenerateOptions bad = sampling(0, 1.5);
  EXPECT_NE(ptune_test::thrownMessage<ptune::Error>(
                [&] { run(nullptr, ids, at::ones_like(ids), {}, bad, lengths); })
                .find("top_p must lie in (0, 1]"),
            std::string::npos);
}

// ---------------------------------------------------------------------------------------
// selectNextTokens on hand-made distributions.

/// Counts of the tokens drawn for `draws` identical rows of logits (V).
std::map<int64_t, int64_t> drawCounts(const std::vector<float>& logits, const GenerateOptions& o,
                                      int64_t draws) {
  const at::Tensor rows =
      at::tensor(logits).unsqueeze(0).expand({draws, static_cast<int64_t>(logits.size())}).contiguous();
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  const at::Tensor picked = generate::selectNextTokens(rows, o, generator);
  std::map<int64_t, int64_t> counts;
  for (int64_t i = 0; i < draws; ++i) counts[picked[i].item<int64_t>()] += 1;
  return counts;
}

std::set<int64_t> support(const std::map<int64_t, int64_t>& counts) {
  std::set<int64_t> s;
  for (const auto& [token, n] : counts) s.insert(token);
  return s;
}

/// logits = log(probabilities)
std::vector<float> logOf(const std::vector<double>& probs) {
  std::vector<float> out;
  for (double p : probs) out.push_back(static_cast<float>(std::log(p)));
  return out;
}

TEST(SelectNextTokensTest, GreedyIsArgmax) {
  const at::Tensor logits = at::tensor({0.1f, 3.0f, -1.0f, 2.9f, 0.0f, -5.0f, 7.0f, 6.9f}).view({2, 4});
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(0);
  const at::Tensor picked = generate::selectNextTokens(logits, greedy(1), generator);
  EXPECT_EQ(picked[0].item<int64_t>(), 1);
  EXPECT_EQ(picked[1].item<int64_t>(), 2);
}

TEST(SelectNextTokensTest, TopKKeepsExactlyKCandidates) {
  const std::vector<float> logits = {0.3f, 2.0f, -1.0f, 1.5f, 0.0f, 1.9f, -0.5f, 0.1f, 1.0f, -2.0f};
  std::set<int64_t> seen;
  for (int64_t seed = 0; seed < 20; ++seed) {
    const auto counts = drawCounts(logits, sampling(3, 1.0, 1.0, seed), 200);
    for (int64_t token : support(counts)) seen.insert(token);
  }
  EXPECT_EQ(seen, (std::set<int64_t>{1, 3, 5}));
  // Frequencies follow the renormalised top-3 softmax: e^2 : e^1.9 : e^1.5.
  const auto counts = drawCounts(logits, sampling(3, 1.0, 1.0, 99), 20000);
  const double z = std::exp(2.0) + std::exp(1.9) + std::exp(1.5);
  // Frequencies of 20000 seeded draws: binomial standard deviation <= 0.0035, so 0.02 is > 5 sigma.
  EXPECT_NEAR(counts.at(1) / 20000.0, std::exp(2.0) / z, 0.02);
  EXPECT_NEAR(counts.at(3) / 20000.0, std::exp(1.5) / z, 0.02);
  // Ties at the k-th score are all kept (transformers: remove scores < k-th largest).
  const auto tied = drawCounts({1.0f, 1.0f, 1.0f, 0.0f}, sampling(2, 1.0), 3000);
  EXPECT_EQ(support(tied), (std::set<int64_t>{0, 1, 2}));
  // k larger than the vocabulary keeps everything.
  EXPECT_EQ(support(drawCounts({0.0f, 0.0f, 0.0f}, sampling(10, 1.0), 3000)),
            (std::set<int64_t>{0, 1, 2}));
}

TEST(SelectNextTokensTest, TopPFollowsTransformersTopPLogitsWarper) {
  // p = (0.5, 0.2, 0.15, 0.1, 0.05); ascending cumulative: 0.05, 0.15, 0.30, 0.50, 1.0.
  // Tokens whose cumulative probability is <= 1 - top_p are removed.
  const std::vector<float> logits = logOf({0.5, 0.2, 0.15, 0.1, 0.05});
  // top_p 0.75: remove cum <= 0.25 -> tokens 4, 3; keep {0, 1, 2}
  EXPECT_EQ(support(drawCounts(logits, sampling(0, 0.75), 4000)), (std::set<int64_t>{0, 1, 2}));
  // top_p 0.6: remove cum <= 0.4 -> tokens 4, 3, 2; keep {0, 1} (0.7 >= 0.6)
  const auto counts = drawCounts(logits, sampling(0, 0.6, 1.0, 5), 20000);
  EXPECT_EQ(support(counts), (std::set<int64_t>{0, 1}));
  EXPECT_NEAR(counts.at(0) / 20000.0, 0.5 / 0.7, 0.02);  // renormalised; > 5 sigma of 20000 draws
  // top_p 0.1: only the top token survives; a vanishing top_p still keeps it.
  EXPECT_EQ(support(drawCounts(logits, sampling(0, 0.1), 2000)), (std::set<int64_t>{0}));
  EXPECT_EQ(support(drawCounts(logits, sampling(0, 1e-9), 2000)), (std::set<int64_t>{0}));
  // top-k runs first, then top-p on the renormalised survivors: top_k 3 gives
  // (0.588, 0.235, 0.176); top_p 0.72 removes cum <= 0.28 -> token 2. Without top-k, top_p 0.72
  // keeps token 2 (cum 0.30 > 0.28).
  EXPECT_EQ(support(drawCounts(logits, sampling(3, 0.72), 4000)), (std::set<int64_t>{0, 1}));
  EXPECT_EQ(support(drawCounts(logits, sampling(0, 0.72), 4000)), (std::set<int64_t>{0, 1, 2}));
}

TEST(SelectNextTokensTest, TemperatureDividesLogits) {
  // logits (0, ln 4): p = (0.2, 0.8) at T = 1, (1/3, 2/3) at T = 2, (1/17, 16/17) at T = 0.5.
  // Frequencies of 20000 seeded draws: binomial standard deviation <= 0.0035, 0.015 is > 4 sigma.
  const std::vector<float> logits = {0.0f, static_cast<float>(std::log(4.0))};
  EXPECT_NEAR(drawCounts(logits, sampling(0, 1.0, 1.0, 1), 20000).at(0) / 20000.0, 0.2, 0.015);
  EXPECT_NEAR(drawCounts(logits, sampling(0, 1.0, 2.0, 2), 20000).at(0) / 20000.0, 1.0 / 3, 0.015);
  EXPECT_NEAR(drawCounts(logits, sampling(0, 1.0, 0.5, 3), 20000).at(0) / 20000.0, 1.0 / 17, 0.015);
}

TEST(SelectNextTokensTest, SameSeedSameTokens) {
  at::manual_seed(0);
  const at::Tensor logits = at::randn({64, 512});
  auto draw = [&](int64_t seed) {
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    return generate::selectNextTokens(logits, sampling(50, 0.9, 0.8, seed), generator);
  };
  EXPECT_TRUE(draw(42).equal(draw(42)));  // same seed, same shapes, same machine
  EXPECT_FALSE(draw(42).equal(draw(43)));
}

TEST_F(GenerationTest, SampledGenerationIsReproducibleBySeed) {
  const auto soft_method = softPrompt(5, 6);
  const prompt::PromptMethodImpl* soft = soft_method.get();
  const at::Tensor ids = at::tensor(std::vector<int64_t>{1, 403, 407}, kLong).unsqueeze(0).repeat({2, 1});
  GenerateOptions o = sampling(40, 0.95, 1.0, 1234);
  o.max_new_tokens = 30;
  std::vector<int64_t> lengths;
  const at::Tensor a = run(soft, ids, at::ones_like(ids), {}, o, lengths);
  const at::Tensor b = run(soft, ids, at::ones_like(ids), {}, o, lengths);
  EXPECT_TRUE(a.equal(b));
  o.seed = 4321;
  const at::Tensor c = run(soft, ids, at::ones_like(ids), {}, o, lengths);
  EXPECT_FALSE(a.equal(c));
  EXPECT_FALSE(a[0].equal(a[1]));  // rows of one batch draw independently
}

}  // namespace
