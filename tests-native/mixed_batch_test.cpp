// Mixed batches (ptune::MixedBatch): rows behind different prompt methods (prompt tuning,
// composite, P-tuning, prefix tuning with and without projection, dynamic, none), with different
// token counts and numbers of virtual tokens, run as one forward pass; every row must give what
// it gives alone: text logits within the model's rounding tolerance (tolerance.h), the same
// greedy tokens (up to near-ties), the same sampled tokens with its own seed, its own
// max_new_tokens and pad id.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "ptune/ptune.h"
#include "family_models.h"
#include "test_support.h"
#include "tolerance.h"

namespace {

using ptune::PromptEncoderType;
using ptune::PromptMethod;
using ptune::PromptModel;
using ptune_test::makeSpec;

ptune::GenerateOptions options(int64_t n, bool greedy = true, int64_t seed = 0, int64_t pad = 0) {
  ptune::GenerateOptions o{};
  o.max_new_tokens = n;
  o.greedy = greedy;
  o.temperature = greedy ? 1.0 : 0.8;
  o.top_k = greedy ? 0 : 40;
  o.top_p = greedy ? 1.0 : 0.95;
  o.seed = seed;
  o.pad_token_id = pad;
  return o;
}

struct Row {
  std::string label;
  const PromptModel* prompt;
  std::vector<int64_t> ids;
  ptune::GenerateOptions options;
};

class MixedBatchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = new ptune::Model(ptune_test::kStoriesDir.c_str(), ptune_test::stories260kConfig());
    const auto make = [](const ptune::PromptSpec& spec, std::vector<int64_t> blocks = {}) {
      return new PromptModel(*model_, spec, blocks.empty() ? nullptr : blocks.data(),
                             static_cast<int64_t>(blocks.size()));
    };
    prompt_tuning_ = make(makeSpec(PromptMethod::kPromptTuning, 5, 0, PromptEncoderType::kMlp, 0, false, 21));
    composite_ = make(makeSpec(PromptMethod::kPromptTuning, 3, 0, PromptEncoderType::kMlp, 0, false, 22), {1, 2});
    p_tuning_ = make(makeSpec(PromptMethod::kPTuning, 3, 16, PromptEncoderType::kMlp, 0, false, 23));
    p_tuning_lstm_ = make(makeSpec(PromptMethod::kPTuning, 2, 8, PromptEncoderType::kLstm, 2, false, 24));
    prefix_ = make(makeSpec(PromptMethod::kPrefixTuning, 6, 0, PromptEncoderType::kMlp, 0, false, 25));
    prefix_projection_ = make(makeSpec(PromptMethod::kPrefixTuning, 2, 16, PromptEncoderType::kMlp, 0, true, 26));
    dynamic_ = make(makeSpec(PromptMethod::kDynamic, 4, 16, PromptEncoderType::kMlp, 0, false, 27));
    // The generator's last layer starts at zero (a static prompt): make it read the input.
    const int64_t n = dynamic_->parameterNumel("generator.2.weight");
    std::vector<float> w(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) w[static_cast<size_t>(i)] = 0.05f * static_cast<float>((i * 7919 % 201) - 100) / 100.0f;
    dynamic_->writeParameter("generator.2.weight", w.data());
  }
  static void TearDownTestSuite() {
    for (PromptModel* p : {prompt_tuning_, composite_, p_tuning_, p_tuning_lstm_, prefix_, prefix_projection_, dynamic_}) {
      delete p;
    }
    delete model_;
  }

  /// Rows of every method (and none), of 2..16 tokens, 2..6 virtual tokens or prefix slots.
  static std::vector<Row> mixedRows(int64_t n) {
    const std::vector<int64_t> lily = ptune_test::lilyWithBos();
    const std::vector<int64_t> cat(ptune_test::kCatIds.begin(), ptune_test::kCatIds.begin() + 7);
    const std::vector<int64_t> tom(ptune_test::kTomIds.begin(), ptune_test::kTomIds.begin() + 11);
    return {
        {"prompt tuning", prompt_tuning_, {lily.begin(), lily.begin() + 3}, options(n)},
        {"prefix", prefix_, lily, options(n)},
        {"none", nullptr, cat, options(n)},
        {"P-tuning MLP", p_tuning_, tom, options(n)},
        {"prefix + projection", prefix_projection_, {1, 300}, options(n)},
        {"dynamic", dynamic_, cat, options(n)},
        {"composite", composite_, {lily.begin(), lily.begin() + 9}, options(n)},
        {"P-tuning LSTM", p_tuning_lstm_, tom, options(n)},
        {"prefix, short", prefix_, {1, 300, 290}, options(n)},
    };
  }

  static std::unique_ptr<ptune::MixedBatch> batch(const std::vector<Row>& rows) {
    auto b = std::make_unique<ptune::MixedBatch>(*model_);
    for (const Row& r : rows) b->addRow(r.prompt, r.ids.data(), static_cast<int64_t>(r.ids.size()), r.options);
    return b;
  }

  /// Logits (T, V) of a row's text positions, alone.
  static std::vector<float> aloneLogits(const Row& r) {
    const int64_t T = static_cast<int64_t>(r.ids.size()), V = model_->vocabSize();
    const int64_t S = model_->inputVirtualTokens(r.prompt) + T;
    const std::vector<int64_t> mask(r.ids.size(), 1);
    std::vector<float> out(static_cast<size_t>(S * V));
    model_->logits(r.prompt, r.ids.data(), mask.data(), nullptr, 1, T, out.data());
    return std::vector<float>(out.end() - T * V, out.end());
  }

  /// A row generated alone (B = 1) through Model::generate.
  static std::vector<int64_t> aloneTokens(const Row& r, const std::vector<int64_t>& eos = {}) {
    const int64_t T = static_cast<int64_t>(r.ids.size()), N = r.options.max_new_tokens;
    const std::vector<int64_t> mask(r.ids.size(), 1);
    std::vector<int64_t> tokens(static_cast<size_t>(N)), length(1);
    model_->generate(r.prompt, r.ids.data(), mask.data(), 1, T, eos.data(), static_cast<int64_t>(eos.size()),
                     r.options, tokens.data(), length.data());
    return std::vector<int64_t>(tokens.begin(), tokens.begin() + length[0]);
  }

  /// Each row's generated tokens (lengths applied) and the full (B, N) output.
  static std::vector<std::vector<int64_t>> mixedTokens(const std::vector<Row>& rows, std::vector<int64_t>* all = nullptr,
                                                       const std::vector<int64_t>& eos = {}) {
    const auto b = batch(rows);
    const int64_t B = b->size(), N = b->maxNewTokens();
    std::vector<int64_t> tokens(static_cast<size_t>(B * N), -7), lengths(static_cast<size_t>(B), -7);
    b->generate(eos.data(), static_cast<int64_t>(eos.size()), tokens.data(), lengths.data());
    std::vector<std::vector<int64_t>> out;
    for (int64_t r = 0; r < B; ++r) {
      out.emplace_back(tokens.begin() + r * N, tokens.begin() + r * N + lengths[static_cast<size_t>(r)]);
    }
    if (all != nullptr) *all = tokens;
    return out;
  }

  /// Next-token logits (V) after ids, alone (for near-tie checks of greedy tokens).
  static std::vector<float> nextLogits(const PromptModel* prompt, const std::vector<int64_t>& ids) {
    Row r{"", prompt, ids, options(1)};
    const std::vector<float> all = aloneLogits(r);
    return std::vector<float>(all.end() - model_->vocabSize(), all.end());
  }

  static ptune::Model* model_;
  static PromptModel *prompt_tuning_, *composite_, *p_tuning_, *p_tuning_lstm_, *prefix_, *prefix_projection_,
      *dynamic_;
};

ptune::Model* MixedBatchTest::model_ = nullptr;
PromptModel* MixedBatchTest::prompt_tuning_ = nullptr;
PromptModel* MixedBatchTest::composite_ = nullptr;
PromptModel* MixedBatchTest::p_tuning_ = nullptr;
PromptModel* MixedBatchTest::p_tuning_lstm_ = nullptr;
PromptModel* MixedBatchTest::prefix_ = nullptr;
PromptModel* MixedBatchTest::prefix_projection_ = nullptr;
PromptModel* MixedBatchTest::dynamic_ = nullptr;

TEST_F(MixedBatchTest, TextLogitsOfEveryRowEqualTheRowAlone) {
  const std::vector<Row> rows = mixedRows(1);
  const auto b = batch(rows);
  const int64_t B = b->size(), T = b->maxTokens(), V = model_->vocabSize();
  ASSERT_EQ(B, static_cast<int64_t>(rows.size()));
  ASSERT_EQ(T, 16);
  std::vector<float> logits(static_cast<size_t>(B * T * V), -7.0f);
  b->logits(logits.data());
  std::set<std::vector<float>> distinct;
  for (int64_t r = 0; r < B; ++r) {
    const Row& row = rows[static_cast<size_t>(r)];
    const int64_t Tr = static_cast<int64_t>(row.ids.size());
    const std::vector<float> alone = aloneLogits(row);
    const size_t start = static_cast<size_t>((r * T + T - Tr) * V);
    const std::vector<float> mixed(logits.begin() + static_cast<std::ptrdiff_t>(start),
                                   logits.begin() + static_cast<std::ptrdiff_t>(start + Tr * V));
    const double tolerance = ptune_test::fp32Tolerance(ptune_test::maxAbs(alone));
    double worst = 0.0;
    for (size_t i = 0; i < alone.size(); ++i) worst = std::max(worst, std::abs(double(mixed[i]) - alone[i]));
    EXPECT_LE(worst, tolerance) << row.label << ": max |mixed - alone| over its text logits";
    for (int64_t i = r * T * V; i < static_cast<int64_t>(start); ++i) {
      ASSERT_EQ(logits[static_cast<size_t>(i)], 0.0f) << row.label << ": padding columns are 0";
    }
    distinct.insert(std::vector<float>(alone.end() - V, alone.end()));
  }
  EXPECT_EQ(distinct.size(), rows.size()) << "every row's next-token logits differ (the prompts enter)";
}

TEST_F(MixedBatchTest, GreedyTokensOfEveryRowEqualTheRowAlone) {
  const int N = 12;
  const std::vector<Row> rows = mixedRows(N);
  const auto mixed = mixedTokens(rows);
  std::set<std::vector<int64_t>> distinct;
  for (size_t r = 0; r < rows.size(); ++r) {
    const Row& row = rows[r];
    const std::vector<int64_t> alone = aloneTokens(row);
    ASSERT_EQ(alone.size(), static_cast<size_t>(N)) << row.label;
    EXPECT_EQ(ptune_test::greedyMismatch(alone, mixed[r], [&](size_t i) {
                std::vector<int64_t> prefix = row.ids;
                prefix.insert(prefix.end(), alone.begin(), alone.begin() + static_cast<std::ptrdiff_t>(i));
                return nextLogits(row.prompt, prefix);
              }),
              "")
        << row.label;
    distinct.insert(alone);
  }
  EXPECT_GE(distinct.size(), rows.size() - 2) << "the rows' continuations differ";
}

TEST_F(MixedBatchTest, SampledRowsDrawWithTheirOwnSeedAsAlone) {
  std::vector<Row> rows = mixedRows(0);
  rows.resize(5);
  const std::vector<int64_t> seeds = {3, 3, 11, 12, 0};
  for (size_t r = 0; r < rows.size(); ++r) rows[r].options = options(10, /*greedy=*/r == 4, seeds[r]);
  const auto mixed = mixedTokens(rows);
  for (size_t r = 0; r < rows.size(); ++r) {
    EXPECT_EQ(mixed[r], aloneTokens(rows[r])) << rows[r].label;
  }
  // Another seed draws another continuation.
  std::vector<Row> reseeded = rows;
  reseeded[0].options.seed = 4;
  EXPECT_NE(mixedTokens(reseeded)[0], mixed[0]);
}

TEST_F(MixedBatchTest, RowsStopAtTheirOwnMaxNewTokensAndPadWithTheirOwnId) {
  std::vector<Row> rows = mixedRows(0);
  rows.resize(4);
  rows[0].options = options(7, true, 0, -1);
  rows[1].options = options(2, true, 0, -2);
  rows[2].options = options(0, true, 0, -3);
  rows[3].options = options(5, true, 0, -4);
  std::vector<int64_t> all;
  const auto mixed = mixedTokens(rows, &all);
  const int64_t N = 7;
  ASSERT_EQ(all.size(), rows.size() * N);
  for (size_t r = 0; r < rows.size(); ++r) {
    const int64_t n = rows[r].options.max_new_tokens;
    ASSERT_EQ(static_cast<int64_t>(mixed[r].size()), n) << rows[r].label;
    EXPECT_EQ(mixed[r], aloneTokens(rows[r])) << rows[r].label;
    for (int64_t i = n; i < N; ++i) EXPECT_EQ(all[r * N + static_cast<size_t>(i)], rows[r].options.pad_token_id);
  }
}

TEST_F(MixedBatchTest, EosEndsARowAsItDoesAlone) {
  std::vector<Row> rows = mixedRows(12);
  // The first token each row generates, as EOS: the row ends after one token, the others run on.
  const std::vector<int64_t> first = {aloneTokens(rows[0])[0]};
  const auto mixed = mixedTokens(rows, nullptr, first);
  for (size_t r = 0; r < rows.size(); ++r) {
    EXPECT_EQ(mixed[r], aloneTokens(rows[r], first)) << rows[r].label;
  }
  EXPECT_EQ(mixed[0].size(), 1u);
}

TEST_F(MixedBatchTest, RejectsWhatCannotRunWithAClearError) {
  const std::vector<int64_t> ids = {1, 300};
  ptune::MixedBatch b(*model_);
  const auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { b.addRow(nullptr, ids.data(), 0, options(1)); }).find("row 0: ids must be non-empty"),
            std::string::npos);
  ptune::GenerateOptions bad = options(1, false);
  bad.temperature = 0;
  EXPECT_NE(message([&] { b.addRow(nullptr, ids.data(), 2, bad); }).find("row 0: temperature must be > 0"),
            std::string::npos);
  ptune::Model other(ptune_test::kStoriesDir.c_str(), ptune_test::stories260kConfig());
  PromptModel foreign(other, makeSpec(PromptMethod::kPromptTuning, 2), nullptr, 0);
  EXPECT_NE(message([&] { b.addRow(&foreign, ids.data(), 2, options(1)); }).find("belongs to another model"),
            std::string::npos);
  PromptModel two_stage(*model_, makeSpec(PromptMethod::kPromptTuning, 2), nullptr, 0);
  two_stage.unfreezeTopLayers(1, 1e-5);
  EXPECT_NE(message([&] { b.addRow(&two_stage, ids.data(), 2, options(1)); }).find("unfrozen transformer layers"),
            std::string::npos);
  const std::vector<int64_t> outside = {1, 100000};
  b.addRow(nullptr, outside.data(), 2, options(1));
  std::vector<int64_t> tokens(1), lengths(1);
  EXPECT_NE(message([&] { b.generate(nullptr, 0, tokens.data(), lengths.data()); }).find("outside the vocabulary"),
            std::string::npos);
  ptune::MixedBatch empty(*model_);
  EXPECT_NE(message([&] { empty.generate(nullptr, 0, tokens.data(), lengths.data()); }).find("at least one row"),
            std::string::npos);
  ptune::MixedBatch too_long(*model_);
  too_long.addRow(prefix_, ids.data(), 2, options(505));
  EXPECT_NE(message([&] { too_long.generate(nullptr, 0, tokens.data(), lengths.data()); }).find("exceed the model's 512"),
            std::string::npos);
}

TEST_F(MixedBatchTest, TheBatchKeepsItsPromptsAlive) {
  const std::vector<int64_t> ids = {1, 300, 290};
  auto prompt = std::make_unique<PromptModel>(*model_, makeSpec(PromptMethod::kPrefixTuning, 3, 0,
                                                                PromptEncoderType::kMlp, 0, false, 5),
                                              nullptr, 0);
  Row row{"prefix", prompt.get(), ids, options(6)};
  const std::vector<int64_t> expected = aloneTokens(row);
  ptune::MixedBatch b(*model_);
  b.addRow(prompt.get(), ids.data(), 3, options(6));
  prompt.reset();  // the batch still holds the prompt's parameters
  std::vector<int64_t> tokens(6), lengths(1);
  b.generate(nullptr, 0, tokens.data(), lengths.data());
  EXPECT_EQ(tokens, expected);
}

// Continuous batching (ptune::DecodeSession): rows join a running decode at different steps and
// leave when done; each must still give what it gives alone.

/// Runs a session where row r joins before step joins[r]; returns each row's tokens.
std::vector<std::vector<int64_t>> sessionTokens(const ptune::Model& model, const std::vector<Row>& rows,
                                                const std::vector<int>& joins, const std::vector<int64_t>& eos = {},
                                                int64_t* max_running = nullptr) {
  ptune::DecodeSession session(model, eos.data(), static_cast<int64_t>(eos.size()));
  std::vector<std::vector<int64_t>> out(rows.size());
  std::vector<bool> done(rows.size(), false);
  std::vector<int64_t> ids_of(rows.size(), -1);
  size_t finished = 0;
  for (int step = 0; finished < rows.size(); ++step) {
    EXPECT_LT(step, 1000) << "the session does not end";
    if (step >= 1000) break;
    for (size_t r = 0; r < rows.size(); ++r) {
      if (joins[r] != step) continue;
      const int64_t id = session.add(rows[r].prompt, rows[r].ids.data(), static_cast<int64_t>(rows[r].ids.size()),
                                     rows[r].options);
      ids_of[r] = id;
    }
    const int64_t n = session.size();
    if (max_running != nullptr) *max_running = std::max(*max_running, n);
    std::vector<int64_t> id(static_cast<size_t>(n)), token(static_cast<size_t>(n)), end(static_cast<size_t>(n));
    const int64_t written = session.step(id.data(), token.data(), end.data());
    EXPECT_LE(written, n);
    for (int64_t i = 0; i < written; ++i) {
      const auto r = static_cast<size_t>(std::find(ids_of.begin(), ids_of.end(), id[static_cast<size_t>(i)]) -
                                         ids_of.begin());
      EXPECT_LT(r, rows.size()) << "unknown id " << id[static_cast<size_t>(i)];
      if (r >= rows.size()) continue;
      EXPECT_FALSE(done[r]) << rows[r].label << " stepped after it ended";
      out[r].push_back(token[static_cast<size_t>(i)]);
      if (end[static_cast<size_t>(i)] != 0) {
        done[r] = true;
        ++finished;
      }
    }
  }
  EXPECT_EQ(session.size(), 0);
  return out;
}

TEST_F(MixedBatchTest, SessionRowsJoiningAndLeavingMidDecodeEqualTheRowsAlone) {
  std::vector<Row> rows = mixedRows(0);
  const std::vector<int64_t> lengths = {6, 12, 3, 9, 10, 4, 8, 12, 5};
  const std::vector<int> joins = {0, 0, 0, 2, 2, 3, 5, 5, 9};
  for (size_t r = 0; r < rows.size(); ++r) rows[r].options = options(lengths[r]);
  int64_t most = 0;
  const auto session = sessionTokens(*model_, rows, joins, {}, &most);
  EXPECT_GE(most, 5) << "rows should have run together";
  for (size_t r = 0; r < rows.size(); ++r) {
    const Row& row = rows[r];
    const std::vector<int64_t> alone = aloneTokens(row);
    ASSERT_EQ(session[r].size(), alone.size()) << row.label;
    EXPECT_EQ(ptune_test::greedyMismatch(alone, session[r], [&](size_t i) {
                std::vector<int64_t> prefix = row.ids;
                prefix.insert(prefix.end(), alone.begin(), alone.begin() + static_cast<std::ptrdiff_t>(i));
                return nextLogits(row.prompt, prefix);
              }),
              "")
        << row.label;
  }
}

TEST_F(MixedBatchTest, SessionSampledRowsDrawWithTheirOwnSeedAndEosEndsARow) {
  std::vector<Row> rows = mixedRows(0);
  rows.resize(6);
  const std::vector<int64_t> seeds = {3, 3, 11, 12, 0, 5};
  for (size_t r = 0; r < rows.size(); ++r) rows[r].options = options(10, /*greedy=*/r == 4, seeds[r]);
  const std::vector<int> joins = {0, 1, 1, 4, 0, 7};
  const auto session = sessionTokens(*model_, rows, joins);
  for (size_t r = 0; r < rows.size(); ++r) EXPECT_EQ(session[r], aloneTokens(rows[r])) << rows[r].label;
  // The first token row 0 generates, as EOS, ends it (and any other row generating it) at once.
  const std::vector<int64_t> eos = {session[0][0]};
  const auto ended = sessionTokens(*model_, rows, joins, eos);
  EXPECT_EQ(ended[0].size(), 1u);
  for (size_t r = 0; r < rows.size(); ++r) EXPECT_EQ(ended[r], aloneTokens(rows[r], eos)) << rows[r].label;
}

TEST_F(MixedBatchTest, SessionCancelDropsARowAndTheOthersGoOn) {
  std::vector<Row> rows = mixedRows(8);
  rows.resize(4);
  ptune::DecodeSession session(*model_, nullptr, 0);
  std::vector<int64_t> ids;
  for (const Row& r : rows) ids.push_back(session.add(r.prompt, r.ids.data(), static_cast<int64_t>(r.ids.size()), r.options));
  EXPECT_EQ(ids, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_TRUE(session.cancel(3));  // still queued
  EXPECT_FALSE(session.cancel(3));
  EXPECT_FALSE(session.cancel(42));
  std::vector<std::vector<int64_t>> got(3);
  std::vector<int64_t> id(4), token(4), end(4);
  for (int step = 0; session.size() > 0 && step < 20; ++step) {
    if (step == 2) {
      EXPECT_TRUE(session.cancel(1));  // running: it leaves the batch
    }
    const int64_t n = session.step(id.data(), token.data(), end.data());
    for (int64_t i = 0; i < n; ++i) got[static_cast<size_t>(id[static_cast<size_t>(i)])].push_back(token[static_cast<size_t>(i)]);
  }
  EXPECT_EQ(got[1].size(), 2u);
  const std::vector<int64_t> alone1 = aloneTokens(rows[1]);
  EXPECT_EQ(got[1], std::vector<int64_t>(alone1.begin(), alone1.begin() + 2));
  EXPECT_EQ(got[0], aloneTokens(rows[0]));
  EXPECT_EQ(got[2], aloneTokens(rows[2]));
  EXPECT_EQ(session.step(id.data(), token.data(), end.data()), 0);  // an empty session steps nothing
}

TEST_F(MixedBatchTest, SessionRejectsWhatCannotRunWithAClearError) {
  const auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  ptune::DecodeSession session(*model_, nullptr, 0);
  const std::vector<int64_t> ids = {1, 300};
  EXPECT_NE(message([&] { session.add(nullptr, ids.data(), 2, options(0)); }).find("at least one token"),
            std::string::npos);
  const std::vector<int64_t> outside = {1, 100000};
  EXPECT_NE(message([&] { session.add(nullptr, outside.data(), 2, options(1)); }).find("outside the vocabulary"),
            std::string::npos);
  EXPECT_NE(message([&] { session.add(prefix_, ids.data(), 2, options(505)); }).find("exceed the model's 512"),
            std::string::npos);
  PromptModel two_stage(*model_, makeSpec(PromptMethod::kPromptTuning, 2), nullptr, 0);
  two_stage.unfreezeTopLayers(1, 1e-5);
  EXPECT_NE(message([&] { session.add(&two_stage, ids.data(), 2, options(1)); }).find("unfrozen transformer layers"),
            std::string::npos);
  EXPECT_EQ(session.size(), 0);  // nothing was queued
}

}  // namespace

// The same on the other decoder families: GPT-2 (learned positions) and BLOOM (ALiBi, whose key
// positions count the mask's real slots), where a wrong position or an unmasked padding slot
// would show at once.
namespace {

class MixedBatchFamilyTest : public ::testing::TestWithParam<std::string> {};

/// n token ids below V, varied by salt.
std::vector<int64_t> saltedIds(int64_t V, int64_t n, int64_t salt) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) out.push_back((i * 37 + salt * 101 + 5) % V);
  return out;
}

/// Next-token logits (V) after ids and the first i generated tokens, the row alone.
std::vector<float> nextLogitsAlone(const ptune::Model& model, const PromptModel* prompt, const std::vector<int64_t>& ids,
                                   const std::vector<int64_t>& generated, size_t i) {
  std::vector<int64_t> seq = ids;
  seq.insert(seq.end(), generated.begin(), generated.begin() + static_cast<std::ptrdiff_t>(i));
  const int64_t V = model.vocabSize(), n = static_cast<int64_t>(seq.size()), s = model.inputVirtualTokens(prompt) + n;
  std::vector<float> all(static_cast<size_t>(s * V));
  const std::vector<int64_t> mask(seq.size(), 1);
  model.logits(prompt, seq.data(), mask.data(), nullptr, 1, n, all.data());
  return std::vector<float>(all.end() - V, all.end());
}

TEST_P(MixedBatchFamilyTest, RowsBehindDifferentMethodsEqualTheRowsAlone) {
  const std::string dir = ptune_test::kFamiliesDir + "/" + GetParam() + "/model";
  ptune::Model model(dir.c_str(), ptune_test::familySpec(GetParam()));
  const int64_t V = model.vocabSize();
  PromptModel prompt(model, makeSpec(PromptMethod::kPromptTuning, 3, 0, PromptEncoderType::kMlp, 0, false, 31),
                     nullptr, 0);
  PromptModel prefix(model, makeSpec(PromptMethod::kPrefixTuning, 5, 0, PromptEncoderType::kMlp, 0, false, 32),
                     nullptr, 0);
  PromptModel short_prefix(model, makeSpec(PromptMethod::kPrefixTuning, 2, 0, PromptEncoderType::kMlp, 0, false, 33),
                           nullptr, 0);
  PromptModel p_tuning(model, makeSpec(PromptMethod::kPTuning, 4, 16, PromptEncoderType::kMlp, 0, false, 34),
                       nullptr, 0);
  const auto ids = [&](int64_t n, int64_t salt) { return saltedIds(V, n, salt); };
  const std::vector<std::pair<const PromptModel*, std::vector<int64_t>>> rows = {
      {&prompt, ids(3, 1)}, {&prefix, ids(9, 2)}, {nullptr, ids(5, 3)}, {&short_prefix, ids(2, 4)},
      {&p_tuning, ids(7, 5)}, {&prefix, ids(1, 6)}};
  const int N = 6;
  ptune::MixedBatch batch(model);
  for (const auto& [p, r] : rows) batch.addRow(p, r.data(), static_cast<int64_t>(r.size()), options(N));
  const int64_t B = batch.size(), T = batch.maxTokens();
  std::vector<float> logits(static_cast<size_t>(B * T * V));
  batch.logits(logits.data());
  std::vector<int64_t> tokens(static_cast<size_t>(B * N)), lengths(static_cast<size_t>(B));
  batch.generate(nullptr, 0, tokens.data(), lengths.data());
  for (int64_t b = 0; b < B; ++b) {
    const auto& [p, r] = rows[static_cast<size_t>(b)];
    const int64_t Tr = static_cast<int64_t>(r.size()), S = model.inputVirtualTokens(p) + Tr;
    std::vector<float> alone(static_cast<size_t>(S * V));
    const std::vector<int64_t> mask(r.size(), 1);
    model.logits(p, r.data(), mask.data(), nullptr, 1, Tr, alone.data());
    const std::vector<float> text(alone.end() - Tr * V, alone.end());
    const size_t start = static_cast<size_t>((b * T + T - Tr) * V);
    double worst = 0.0;
    for (size_t i = 0; i < text.size(); ++i) worst = std::max(worst, std::abs(double(logits[start + i]) - text[i]));
    EXPECT_LE(worst, ptune_test::fp32Tolerance(ptune_test::maxAbs(text))) << GetParam() << ", row " << b;
    std::vector<int64_t> expected(N), length(1);
    model.generate(p, r.data(), mask.data(), 1, Tr, nullptr, 0, options(N), expected.data(), length.data());
    const std::vector<int64_t> mixed(tokens.begin() + b * N, tokens.begin() + (b + 1) * N);
    EXPECT_EQ(ptune_test::greedyMismatch(expected, mixed, [&](size_t i) { return nextLogitsAlone(model, p, r, expected, i); }),
              "")
        << GetParam() << ", row " << b;
  }
}

TEST_P(MixedBatchFamilyTest, SessionRowsJoiningMidDecodeEqualTheRowsAlone) {
  const std::string dir = ptune_test::kFamiliesDir + "/" + GetParam() + "/model";
  ptune::Model model(dir.c_str(), ptune_test::familySpec(GetParam()));
  const int64_t V = model.vocabSize();
  PromptModel prompt(model, makeSpec(PromptMethod::kPromptTuning, 3, 0, PromptEncoderType::kMlp, 0, false, 31),
                     nullptr, 0);
  PromptModel prefix(model, makeSpec(PromptMethod::kPrefixTuning, 5, 0, PromptEncoderType::kMlp, 0, false, 32),
                     nullptr, 0);
  const auto ids = [&](int64_t n, int64_t salt) { return saltedIds(V, n, salt); };
  const std::vector<Row> rows = {{"prompt", &prompt, ids(3, 1), options(7)},
                                 {"prefix", &prefix, ids(9, 2), options(3)},
                                 {"none", nullptr, ids(5, 3), options(6)},
                                 {"prefix late", &prefix, ids(2, 4), options(5)},
                                 {"prompt late", &prompt, ids(11, 5), options(4)}};
  const auto session = sessionTokens(model, rows, {0, 0, 1, 3, 4});
  for (size_t r = 0; r < rows.size(); ++r) {
    const Row& row = rows[r];
    const int64_t T = static_cast<int64_t>(row.ids.size()), N = row.options.max_new_tokens;
    const std::vector<int64_t> mask(row.ids.size(), 1);
    std::vector<int64_t> expected(static_cast<size_t>(N)), length(1);
    model.generate(row.prompt, row.ids.data(), mask.data(), 1, T, nullptr, 0, row.options, expected.data(),
                   length.data());
    ASSERT_EQ(session[r].size(), expected.size()) << GetParam() << ", " << row.label;
    EXPECT_EQ(ptune_test::greedyMismatch(expected, session[r], [&](size_t i) {
                return nextLogitsAlone(model, row.prompt, row.ids, expected, i);
              }),
              "")
        << GetParam() << ", " << row.label;
  }
}

INSTANTIATE_TEST_SUITE_P(Decoders, MixedBatchFamilyTest, ::testing::Values("gpt2", "bloom"));

}  // namespace
