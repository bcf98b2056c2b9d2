// Generation with every prompt method through the façade: the KV cache that starts from the
// prefix / prompt gives exactly the tokens that recomputing the whole sequence each step gives
// (Model::logits on the growing sequence), left-padded rows equal rows alone, and a prompt
// or prefix of length 0 (or less) is rejected with a clear error for every method.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "ptune/ptune.h"
#include "test_support.h"
#include "tolerance.h"

namespace {

using ptune::PromptEncoderType;
using ptune::PromptMethod;
using ptune::PromptModel;

struct MethodCase {
  std::string label;
  ptune::PromptSpec spec;
  std::vector<int64_t> blocks;  // composite prompt
};

using ptune_test::makeSpec;

/// Every method with PyTorch's default initialisation (what a user starts from).
std::vector<MethodCase> allMethods() {
  return {
      {"prompt tuning", makeSpec(PromptMethod::kPromptTuning, 5, 0, PromptEncoderType::kMlp, 0, false, 11), {}},
      {"composite", makeSpec(PromptMethod::kPromptTuning, 5, 0, PromptEncoderType::kMlp, 0, false, 12), {2, 3}},
      {"P-tuning MLP", makeSpec(PromptMethod::kPTuning, 5, 16, PromptEncoderType::kMlp, 0, false, 13), {}},
      {"P-tuning LSTM", makeSpec(PromptMethod::kPTuning, 5, 8, PromptEncoderType::kLstm, 2, false, 14), {}},
      {"prefix", makeSpec(PromptMethod::kPrefixTuning, 5, 0, PromptEncoderType::kMlp, 0, false, 15), {}},
      {"prefix + projection", makeSpec(PromptMethod::kPrefixTuning, 5, 16, PromptEncoderType::kMlp, 0, true, 16), {}},
      {"dynamic", makeSpec(PromptMethod::kDynamic, 5, 16, PromptEncoderType::kMlp, 0, false, 17), {}},
  };
}

ptune::GenerateOptions greedy(int64_t n) {
  ptune::GenerateOptions o{};
  o.max_new_tokens = n;
  o.greedy = true;
  o.temperature = 1.0;
  o.top_k = 0;
  o.top_p = 1.0;
  o.seed = 0;
  o.pad_token_id = 0;
  return o;
}

class MethodGenerationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = new ptune::Model(ptune_test::kStoriesDir.c_str(), ptune_test::stories260kConfig());
  }
  static void TearDownTestSuite() { delete model_; }

  static std::unique_ptr<PromptModel> make(const MethodCase& c) {
    auto prompt = std::make_unique<PromptModel>(*model_, c.spec, c.blocks.empty() ? nullptr : c.blocks.data(),
                                                static_cast<int64_t>(c.blocks.size()));
    if (c.spec.method == static_cast<int32_t>(PromptMethod::kDynamic)) {
      // The generator's last layer starts at zero (a static prompt); make the prompt depend on
      // the input so that the left-padding check covers the masked mean.
      const int64_t n = prompt->parameterNumel("generator.2.weight");
      std::vector<float> w(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) w[static_cast<size_t>(i)] = 0.05f * static_cast<float>((i * 7919 % 201) - 100) / 100.0f;
      prompt->writeParameter("generator.2.weight", w.data());
    }
    return prompt;
  }

  /// Next-token logits (V) of the whole sequence: Model::logits without a cache.
  static std::vector<float> nextLogits(const PromptModel* prompt, const std::vector<int64_t>& ids) {
    const int64_t V = model_->vocabSize();
    const int64_t T = static_cast<int64_t>(ids.size()), S = model_->inputVirtualTokens(prompt) + T;
    const std::vector<int64_t> mask(ids.size(), 1);
    std::vector<float> logits(static_cast<size_t>(S * V));
    model_->logits(prompt, ids.data(), mask.data(), nullptr, 1, T, logits.data());
    return std::vector<float>(logits.end() - V, logits.end());
  }

  /// Greedy decoding without a cache: Model::logits of the whole sequence at every step.
  static std::vector<int64_t> recompute(const PromptModel* prompt, std::vector<int64_t> ids, int n) {
    std::vector<int64_t> out;
    for (int step = 0; step < n; ++step) {
      const std::vector<float> logits = nextLogits(prompt, ids);
      const int64_t next = std::max_element(logits.begin(), logits.end()) - logits.begin();
      out.push_back(next);
      ids.push_back(next);
    }
    return out;
  }

  /// greedyMismatch (tolerance.h) of `actual` against greedy tokens `expected` after `ids`: the
  /// two paths (KV cache, another batch shape) round differently, so a near-tie may go either way.
  static std::string mismatch(const PromptModel* prompt, const std::vector<int64_t>& ids,
                              const std::vector<int64_t>& expected, const std::vector<int64_t>& actual) {
    return ptune_test::greedyMismatch(expected, actual, [&](size_t i) {
      std::vector<int64_t> prefix = ids;
      prefix.insert(prefix.end(), expected.begin(), expected.begin() + static_cast<std::ptrdiff_t>(i));
      return nextLogits(prompt, prefix);
    });
  }

  /// KV-cache greedy decoding of a (B, T) batch; returns (B) rows of n tokens.
  static std::vector<std::vector<int64_t>> generate(const PromptModel* prompt,
                                                    const std::vector<int64_t>& ids,
                                                    const std::vector<int64_t>& mask, int64_t B,
                                                    int n) {
    const int64_t T = static_cast<int64_t>(ids.size()) / B;
    std::vector<int64_t> tokens(static_cast<size_t>(B * n)), lengths(static_cast<size_t>(B));
    model_->generate(prompt, ids.data(), mask.data(), B, T, nullptr, 0, greedy(n), tokens.data(),
                     lengths.data());
    std::vector<std::vector<int64_t>> rows;
    for (int64_t b = 0; b < B; ++b) {
      EXPECT_EQ(lengths[static_cast<size_t>(b)], n);
      rows.emplace_back(tokens.begin() + b * n, tokens.begin() + (b + 1) * n);
    }
    return rows;
  }

  static ptune::Model* model_;
};

ptune::Model* MethodGenerationTest::model_ = nullptr;

TEST_F(MethodGenerationTest, KvCacheGreedyEqualsFullRecomputeForEveryMethod) {
  const std::vector<int64_t> ids = {ptune_test::kBos, 403, 407, 261, 378};
  const std::vector<int64_t> mask(ids.size(), 1);
  const int N = 30;
  const int64_t T = static_cast<int64_t>(ids.size()), V = model_->vocabSize();
  std::vector<float> plain(static_cast<size_t>(T * V));
  model_->logits(nullptr, ids.data(), mask.data(), nullptr, 1, T, plain.data());
  const std::vector<int64_t> plain_tokens = generate(nullptr, ids, mask, 1, N)[0];
  int changed = 0;
  for (const MethodCase& c : allMethods()) {
    const auto prompt = make(c);
    const std::vector<int64_t> cached = generate(prompt.get(), ids, mask, 1, N)[0];
    EXPECT_EQ(mismatch(prompt.get(), ids, recompute(prompt.get(), ids, N), cached), "") << c.label;
    // The prompt enters the computation: the next-token logits move.
    const int64_t S = model_->inputVirtualTokens(prompt.get()) + T;
    std::vector<float> with(static_cast<size_t>(S * V));
    model_->logits(prompt.get(), ids.data(), mask.data(), nullptr, 1, T, with.data());
    double moved = 0.0;
    for (int64_t v = 0; v < V; ++v) {
      moved = std::max(moved, std::abs(static_cast<double>(with[static_cast<size_t>((S - 1) * V + v)]) -
                                       plain[static_cast<size_t>((T - 1) * V + v)]));
    }
    EXPECT_GT(moved, 0.1) << c.label;  // ~10^3 x rounding of logits of this size
    changed += cached != plain_tokens ? 1 : 0;
  }
  EXPECT_GE(changed, 5) << "most default-initialised prompts change the greedy continuation";
}

TEST_F(MethodGenerationTest, LeftPaddedBatchRowsEqualRowsAlone) {
  const std::vector<int64_t> lily = ptune_test::lilyWithBos();
  const std::vector<std::vector<int64_t>> rows = {
      {lily.begin(), lily.begin() + 3}, {lily.begin(), lily.begin() + 8}, {1, 300, 290, 426, 317, 261}};
  const int64_t B = 3, T = 8;
  const int N = 16;
  std::vector<int64_t> ids(static_cast<size_t>(B * T), 0), mask(static_cast<size_t>(B * T), 0);
  for (int64_t b = 0; b < B; ++b) {
    const auto& r = rows[static_cast<size_t>(b)];
    const int64_t start = T - static_cast<int64_t>(r.size());
    for (size_t t = 0; t < r.size(); ++t) {
      ids[static_cast<size_t>(b * T + start) + t] = r[t];
      mask[static_cast<size_t>(b * T + start) + t] = 1;
    }
    if (start > 0) ids[static_cast<size_t>(b * T)] = 400;  // padding ids must not matter
  }
  for (const MethodCase& c : allMethods()) {
    const auto prompt = make(c);
    const auto batch = generate(prompt.get(), ids, mask, B, N);
    std::set<std::vector<int64_t>> distinct;
    for (int64_t b = 0; b < B; ++b) {
      const auto& r = rows[static_cast<size_t>(b)];
      const auto alone = generate(prompt.get(), r, std::vector<int64_t>(r.size(), 1), 1, N)[0];
      // Another batch shape rounds differently: identical unless a near-tie (tolerance.h).
      EXPECT_EQ(mismatch(prompt.get(), r, alone, batch[static_cast<size_t>(b)]), "") << c.label << ", row " << b;
      distinct.insert(alone);
    }
    EXPECT_EQ(distinct.size(), 3u) << c.label << ": three different continuations";
  }
}

TEST_F(MethodGenerationTest, PrefixKvCacheHasOneEntryPerKeyValueHead) {
  // GQA: stories260K has 8 query heads over 4 key/value heads; PEFT's prefix width is
  // num_key_value_heads * head_dim per layer for keys and for values.
  ASSERT_EQ(model_->numKeyValueHeads(), 4);
  ASSERT_EQ(model_->headDim(), 8);
  const auto prefix = make(allMethods()[4]);
  int64_t dims[4] = {0, 0, 0, 0};
  ASSERT_EQ(prefix->parameterShape("embedding", dims), 2);
  EXPECT_EQ(dims[0], 5);
  EXPECT_EQ(dims[1], 2 * model_->numLayers() * model_->numKeyValueHeads() * model_->headDim());
  EXPECT_EQ(model_->inputVirtualTokens(prefix.get()), 0);
  EXPECT_EQ(prefix->peftEmbeddingsNumel(), 5 * dims[1]);
  const auto projected = make(allMethods()[5]);
  ASSERT_EQ(projected->parameterShape("embedding", dims), 2);
  EXPECT_EQ(dims[1], model_->numKeyValueHeads() * model_->headDim());
  EXPECT_EQ(projected->peftEmbeddingsNumel(), 5 * 2 * 5 * 32);
}

TEST_F(MethodGenerationTest, ZeroOrNegativeVirtualTokensRejectedForEveryMethod) {
  for (MethodCase c : allMethods()) {
    for (int64_t P : {0, -2}) {
      c.spec.num_virtual_tokens = P;
      const std::vector<int64_t> blocks = c.blocks;
      const std::string message = ptune_test::thrownMessage<std::runtime_error>([&] {
        PromptModel p(*model_, c.spec, blocks.empty() ? nullptr : blocks.data(),
                      static_cast<int64_t>(blocks.size()));
      });
      EXPECT_NE(message.find("num_virtual_tokens must be positive, got " + std::to_string(P)),
                std::string::npos)
          << c.label << ": " << message;
      EXPECT_NE(message.find("a prompt or prefix of length 0 does nothing"), std::string::npos)
          << c.label << ": " << message;
    }
  }
  // A composite block of length 0 is rejected too, even when the total is positive.
  const int64_t blocks[] = {3, 0};
  const std::string empty_block = ptune_test::thrownMessage<std::runtime_error>([&] {
    PromptModel p(*model_, makeSpec(PromptMethod::kPromptTuning, 3), blocks, 2);
  });
  EXPECT_NE(empty_block.find("every prompt block needs at least one virtual token, got 0"),
            std::string::npos)
      << empty_block;
  const int64_t mismatch[] = {2, 2};
  const std::string sum = ptune_test::thrownMessage<std::runtime_error>([&] {
    PromptModel p(*model_, makeSpec(PromptMethod::kPromptTuning, 5), mismatch, 2);
  });
  EXPECT_NE(sum.find("prompt blocks hold 4 virtual tokens but num_virtual_tokens is 5"),
            std::string::npos)
      << sum;
}

}  // namespace
