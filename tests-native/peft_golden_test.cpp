// PEFT semantics through the façade: golden/<case>.json holds parameters and fp32 logits written
// by an independent reference (reference/peft_semantics.py: Hugging Face Llama re-implemented
// in torch, PEFT's PromptEmbedding / PromptEncoder (MLP, bi-LSTM) / PrefixEncoder built from
// torch.nn modules, prefix cache as PEFT's get_prompt builds it). Each case loads its
// parameters into a ptune::PromptModel by name (writeParameter) and compares Model::logits
// and exportPeftEmbeddings (PEFT's saved `prompt_embeddings`) with the reference, within fp32
// rounding of their magnitude (tolerance.h).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "ptune/ptune.h"
#include "test_support.h"
#include "tolerance.h"

namespace {

using nlohmann::json;


json loadGolden(const std::string& name) {
  const std::string path = std::string(PTUNE_GOLDEN_DIR) + "/" + name + ".json";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path + " (run tests-native/reference/peft_semantics.py)");
  return json::parse(in);
}

ptune::PromptSpec specOf(const json& j) {
  const json& s = j.at("spec");
  ptune::PromptSpec spec{};
  spec.method = s.at("method").get<int32_t>();
  spec.num_virtual_tokens = s.at("num_virtual_tokens").get<int64_t>();
  spec.encoder_type = s.value("encoder_type", 0);
  spec.encoder_hidden_size = s.value("encoder_hidden_size", int64_t{0});
  spec.encoder_num_layers = s.value("encoder_num_layers", int64_t{0});
  spec.encoder_dropout = s.value("encoder_dropout", 0.0);
  spec.prefix_projection = s.value("prefix_projection", false);
  spec.seed = 0;
  return spec;
}

std::vector<int64_t> flat(const json& rows) {
  std::vector<int64_t> out;
  for (const auto& r : rows) {
    for (const auto& x : r) out.push_back(x.get<int64_t>());
  }
  return out;
}

class PeftGoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    model_ = new ptune::Model(ptune_test::kStoriesDir.c_str(), ptune_test::stories260kConfig());
  }
  static void TearDownTestSuite() { delete model_; }
  static ptune::Model* model_;
};

ptune::Model* PeftGoldenTest::model_ = nullptr;

/// Writes every golden parameter into prompt (names and shapes must match exactly).
void loadParameters(ptune::PromptModel& prompt, const json& golden) {
  std::set<std::string> ours, theirs;
  for (int64_t i = 0; i < prompt.numParameters(); ++i) ours.insert(prompt.parameterName(i));
  for (const auto& p : golden.at("parameters")) {
    const std::string name = p.at("name").get<std::string>();
    theirs.insert(name);
    int64_t dims[4] = {0, 0, 0, 0};
    const int64_t rank = prompt.parameterShape(name.c_str(), dims);
    EXPECT_EQ(std::vector<int64_t>(dims, dims + rank), p.at("shape").get<std::vector<int64_t>>()) << name;
    const std::vector<float> values = p.at("values").get<std::vector<float>>();
    ASSERT_EQ(static_cast<int64_t>(values.size()), prompt.parameterNumel(name.c_str())) << name;
    prompt.writeParameter(name.c_str(), values.data());
  }
  EXPECT_EQ(ours, theirs) << "ptune's parameter names must be PEFT's module names";
}

TEST_P(PeftGoldenTest, LogitsAndSavedEmbeddingsMatchReference) {
  const json golden = loadGolden(GetParam());
  ptune::PromptModel prompt(*model_, specOf(golden), nullptr, 0);
  loadParameters(prompt, golden);

  const std::vector<int64_t> ids = flat(golden.at("ids")), mask = flat(golden.at("mask"));
  const int64_t B = static_cast<int64_t>(golden.at("ids").size());
  const int64_t T = static_cast<int64_t>(ids.size()) / B, V = golden.at("vocab_size").get<int64_t>();
  const int64_t vin = model_->inputVirtualTokens(&prompt);
  ASSERT_EQ(vin, golden.at("input_virtual_tokens").get<int64_t>());
  std::vector<float> ours(static_cast<size_t>(B * (vin + T) * V));
  model_->logits(&prompt, ids.data(), mask.data(), nullptr, B, T, ours.data());
  std::vector<float> plain(static_cast<size_t>(B * T * V));
  model_->logits(nullptr, ids.data(), mask.data(), nullptr, B, T, plain.data());

  const std::vector<float> reference = golden.at("logits").get<std::vector<float>>();
  const json& rows = golden.at("logit_rows");
  ASSERT_EQ(reference.size(), rows.size() * static_cast<size_t>(V));
  double err = 0.0, moved = 0.0;
  for (size_t r = 0; r < rows.size(); ++r) {
    const int64_t b = rows[r][0].get<int64_t>(), s = rows[r][1].get<int64_t>();
    const float* got = &ours[static_cast<size_t>((b * (vin + T) + s) * V)];
    for (int64_t v = 0; v < V; ++v) {
      err = std::max(err, std::abs(static_cast<double>(got[v]) - reference[r * V + static_cast<size_t>(v)]));
      if (s >= vin) {  // text position: how far the prompt moved it from the plain model
        const float base = plain[static_cast<size_t>((b * T + s - vin) * V + v)];
        moved = std::max(moved, std::abs(static_cast<double>(got[v]) - base));
      }
    }
  }
  std::cout << "[ peft      ] " << GetParam() << ": max |logit - reference| = " << err << " over "
            << rows.size() << " positions (the prompt moves text logits by up to " << moved << ")"
            << std::endl;
  // fp32 against fp32 torch: both round, relative to the logits' magnitude (tolerance.h).
  EXPECT_LE(err, ptune_test::fp32Tolerance(ptune_test::maxAbs(reference)));
  EXPECT_GT(moved, 0.5);  // the adapter matters: the comparison is not the plain model's

  // PEFT's saved tensor (get_prompt_embedding_to_save): encoder output / projected prefix.
  const std::vector<int64_t> shape = golden.at("peft_prompt_embeddings_shape").get<std::vector<int64_t>>();
  const std::vector<float> saved = golden.at("peft_prompt_embeddings").get<std::vector<float>>();
  ASSERT_EQ(prompt.peftEmbeddingsNumel(), shape[0] * shape[1]);
  std::vector<float> exported(saved.size());
  prompt.exportPeftEmbeddings(exported.data());
  double saved_err = 0.0;
  for (size_t i = 0; i < saved.size(); ++i) {
    saved_err = std::max(saved_err, std::abs(static_cast<double>(exported[i]) - saved[i]));
  }
  std::cout << "[ peft      ] " << GetParam() << ": max |prompt_embeddings - PEFT's| = " << saved_err
            << " (" << shape[0] << " x " << shape[1] << ")" << std::endl;
  EXPECT_LE(saved_err, ptune_test::fp32Tolerance(ptune_test::maxAbs(saved)));  // relative to the values
}

INSTANTIATE_TEST_SUITE_P(Cases, PeftGoldenTest,
                         ::testing::Values("prompt_tuning", "p_tuning_mlp", "p_tuning_lstm",
                                           "prefix", "prefix_projection"),
                         [](const auto& info) { return info.param; });

TEST_F(PeftGoldenTest, CompositeBlocksStackInOrder) {
  // A composite prompt of blocks (1, 3) holding the rows of the prompt-tuning case is that
  // prompt: same logits, and PEFT's prompt_embeddings is the concatenation.
  const json golden = loadGolden("prompt_tuning");
  const std::vector<float> rows = golden.at("parameters")[0].at("values").get<std::vector<float>>();
  const int64_t C = model_->hiddenSize();
  ptune::PromptSpec spec = specOf(golden);
  const int64_t blocks[] = {1, 3};
  ptune::PromptModel composite(*model_, spec, blocks, 2);
  EXPECT_EQ(composite.numParameters(), 2);
  EXPECT_EQ(composite.parameterName(0), "block.0");
  EXPECT_EQ(composite.parameterNumel("block.1"), 3 * C);
  composite.writeParameter("block.0", rows.data());
  composite.writeParameter("block.1", rows.data() + C);

  const std::vector<int64_t> ids = flat(golden.at("ids")), mask = flat(golden.at("mask"));
  const int64_t B = 2, T = static_cast<int64_t>(ids.size()) / B, V = 512, vin = 4;
  std::vector<float> ours(static_cast<size_t>(B * (vin + T) * V));
  model_->logits(&composite, ids.data(), mask.data(), nullptr, B, T, ours.data());
  const std::vector<float> reference = golden.at("logits").get<std::vector<float>>();
  const json& positions = golden.at("logit_rows");
  double err = 0.0;
  for (size_t r = 0; r < positions.size(); ++r) {
    const int64_t b = positions[r][0].get<int64_t>(), s = positions[r][1].get<int64_t>();
    for (int64_t v = 0; v < V; ++v) {
      err = std::max(err, std::abs(static_cast<double>(ours[static_cast<size_t>((b * (vin + T) + s) * V + v)]) -
                                   reference[r * V + static_cast<size_t>(v)]));
    }
  }
  EXPECT_LE(err, ptune_test::fp32Tolerance(ptune_test::maxAbs(reference)));  // as above
  std::vector<float> exported(rows.size());
  composite.exportPeftEmbeddings(exported.data());
  EXPECT_EQ(exported, rows);  // a concatenation of copies: exact
}

}  // namespace
