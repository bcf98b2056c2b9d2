// Classification pieces against independent references written by tests-java/peft/classification_refs.py
// (tests-java/resources/classification, float64; semantics in tests-java/peft/CLASSIFICATION.md):
// the losses (cross-entropy with class weights and label smoothing, focal loss) with their
// gradients; OpenPrompt's ManualVerbalizer on the tiny BERT MLM and GPT-2 (every multi-token rule,
// with and without contextual calibration); the soft verbalizer's initialisation and scores; and
// finite differences through every head.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not in ATen.h of libtorch 2.x)

#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "family_models.h"
#include "gradient_check.h"
#include "heads/classifier.h"
#include "io/safetensors.h"
#include "loss/classification_loss.h"
#include "models/backbone.h"
#include "prompt/prompt_method.h"
#include "prompt/prompted_input.h"
#include "test_support.h"
#include "tolerance.h"

namespace {

using nlohmann::json;
using ptune::models::Backbone;
using ptune_test::familyModel;
namespace heads = ptune::heads;
namespace loss = ptune::loss;

const std::string kClassification = PTUNE_FAMILIES_DIR "/../classification";

json readJson(const std::string& name) {
  std::ifstream in(kClassification + "/" + name);
  if (!in) throw std::runtime_error("cannot open " + name + " (classification_refs.py writes it)");
  return json::parse(in);
}

at::Tensor toTensor(const json& rows) {
  std::vector<double> flat;
  int64_t n = 0, k = 0;
  for (const auto& row : rows) {
    k = 0;
    for (const auto& v : row) {
      flat.push_back(v.get<double>());
      ++k;
    }
    ++n;
  }
  return at::tensor(flat, at::TensorOptions().dtype(at::kDouble)).view({n, k});
}

/// Double results of a short chain of elementwise operations and reductions over <= 10 values:
/// a few dozen ulps of their magnitude (tolerance.h).
double closeTolerance(const at::Tensor& expected) {
  return ptune_test::fp64Tolerance(std::max(1.0, expected.abs().max().item<double>()), 64);
}

TEST(ClassLossTest, EveryLossAndItsGradientMatchTorch) {
  const json cases = readJson("losses.json").at("cases");
  int checked = 0;
  for (const auto& [name, c] : cases.items()) {
    const at::Tensor logits0 = toTensor(c.at("logits"));
    const at::Tensor labels = at::tensor(c.at("labels").get<std::vector<int64_t>>(), at::kLong);
    const std::string alpha_name = c.at("alphas").begin().key();
    const at::Tensor alpha =
        at::tensor(c.at("alphas").at(alpha_name).get<std::vector<double>>(), at::TensorOptions().dtype(at::kDouble));
    for (const auto& [loss_name, expected] : c.at("losses").items()) {
      loss::ClassLoss spec;
      const bool weighted = loss_name.find("_" + alpha_name) != std::string::npos &&
                            loss_name.find("alpha_none") == std::string::npos;
      if (weighted) spec.alpha = alpha;
      if (loss_name.rfind("focal", 0) == 0) {
        spec.kind = loss::ClassLossKind::kFocal;
        spec.gamma = loss_name.find("gamma2") != std::string::npos ? 2.0 : 0.0;
      }
      if (loss_name.find("label_smoothing_0.1") != std::string::npos) spec.label_smoothing = 0.1;
      const at::Tensor logits = logits0.clone().set_requires_grad(true);
      const at::Tensor per_example = loss::classLossPerExample(logits, labels, spec);
      per_example.sum().backward();
      const at::Tensor want = at::tensor(expected.at("per_example").get<std::vector<double>>(),
                                         at::TensorOptions().dtype(at::kDouble));
      const at::Tensor want_grad = toTensor(expected.at("grad_per_example"));
      EXPECT_LE((per_example.detach() - want).abs().max().item<double>(), closeTolerance(want)) << name << " " << loss_name;
      EXPECT_LE((logits.grad() - want_grad).abs().max().item<double>(), closeTolerance(want_grad))
          << name << " " << loss_name << ": gradient";
      // The batch loss: torch's weighted mean (sum / sum of the true classes' weights) with weights.
      const std::string reduction = expected.contains("sum_over_alpha_sum") ? "sum_over_alpha_sum" : "mean";
      const double value = expected.at(reduction).at("value").get<double>();
      const at::Tensor mean = loss::classLossMean(logits0, labels, spec);
      if (!weighted && reduction == "sum_over_alpha_sum") continue;  // (/N: the plain mean below)
      EXPECT_NEAR(mean.item<double>(), weighted || reduction == "mean" ? value : value, closeTolerance(mean))
          << name << " " << loss_name << " " << reduction;
      ++checked;
    }
  }
  EXPECT_GE(checked, 12);
}

TEST(ClassLossTest, FocalWithGammaZeroIsCrossEntropyAndBadSettingsAreRefused) {
  at::manual_seed(3);
  const at::Tensor logits = at::randn({5, 4}, at::TensorOptions().dtype(at::kDouble));
  const at::Tensor labels = at::tensor(std::vector<int64_t>{0, 3, 1, 1, 2}, at::kLong);
  loss::ClassLoss focal{loss::ClassLossKind::kFocal, 0.0, 0.0, at::Tensor()};
  const at::Tensor ce = at::cross_entropy_loss(logits, labels);
  EXPECT_NEAR(loss::classLossMean(logits, labels, focal).item<double>(), ce.item<double>(), closeTolerance(ce));
  focal.gamma = -1;
  EXPECT_NE(ptune_test::thrownMessage<ptune::Error>([&] { loss::classLossMean(logits, labels, focal); })
                .find("focal gamma must be >= 0"),
            std::string::npos);
  loss::ClassLoss smooth{loss::ClassLossKind::kCrossEntropy, 0.0, 1.0, at::Tensor()};
  EXPECT_NE(ptune_test::thrownMessage<ptune::Error>([&] { loss::classLossMean(logits, labels, smooth); })
                .find("label smoothing must lie in [0, 1)"),
            std::string::npos);
  const at::Tensor bad = at::tensor(std::vector<int64_t>{0, 4, 1, 1, 2}, at::kLong);
  EXPECT_NE(ptune_test::thrownMessage<ptune::Error>(
                [&] { loss::classLossMean(logits, bad, loss::ClassLoss{}); })
                .find("a class label lies outside [0, 4)"),
            std::string::npos);
}

/// The label words of verbalizer.json's family as the façade passes them (flat).
heads::LabelWords labelWords(const json& family, int64_t vocab) {
  std::vector<int64_t> word_class, offsets = {0}, tokens;
  int64_t c = 0;
  for (const auto& words : family.at("label_word_ids")) {
    for (const auto& word : words) {
      for (const auto& id : word) tokens.push_back(id.get<int64_t>());
      word_class.push_back(c);
      offsets.push_back(static_cast<int64_t>(tokens.size()));
    }
    ++c;
  }
  return heads::layoutLabelWords(c, word_class, offsets, tokens, vocab);
}

ptune::ClassifierSpec spec(ptune::ClassifierHead head, int64_t K, ptune::MultiToken multi = ptune::MultiToken::kFirstPiece,
                           ptune::Pooling pooling = ptune::Pooling::kPoolCls) {
  ptune::ClassifierSpec s{};
  s.head = static_cast<int32_t>(head);
  s.num_classes = K;
  s.pooling = static_cast<int32_t>(pooling);
  s.head_bias = true;
  s.multi_token = static_cast<int32_t>(multi);
  s.seed = 5;
  return s;
}

class VerbalizerTest : public ::testing::TestWithParam<std::string> {};

TEST_P(VerbalizerTest, ScoresFollowOpenPromptsManualVerbalizer) {
  const std::string fam = GetParam();
  const json ref = readJson("verbalizer.json");
  const json& family = ref.at("families").at(fam);
  const ptune::io::SafetensorsFile tensors(kClassification + "/verbalizer.safetensors");
  const auto model = familyModel(fam == "bert" ? "bert" : "gpt2");
  const at::Tensor slot_logits = tensors.tensor(fam + "/slot_logits/f64");  // (3, V)
  int checked = 0;
  for (const auto& handler : ref.at("handlers")) {
    const std::string h = handler.get<std::string>();
    const auto multi = h == "first" ? ptune::MultiToken::kFirstPiece : h == "mean" ? ptune::MultiToken::kMeanOfPieces
                                                                             : ptune::MultiToken::kMaxOfPieces;
    heads::Classifier verbalizer(*model, spec(ptune::ClassifierHead::kVerbalizerHead, 3, multi),
                                 labelWords(family, model->vocab()));
    for (const std::string cal : {"none", "empty", "na", "empty_na"}) {
      verbalizer.setCalibration(cal == "none" ? at::Tensor() : tensors.tensor(fam + "/calibrate_logits/" + cal));
      const at::Tensor want = tensors.tensor(fam + "/scores/" + h + "/log_softmax/" + cal);
      const at::Tensor got = verbalizer.verbalizerScores(slot_logits);
      EXPECT_LE((got - want).abs().max().item<double>(), closeTolerance(want)) << fam << " " << h << " " << cal;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 12);

  // The slots' logits of ptune's own forward (float64) against transformers' (float64).
  at::NoGradGuard no_grad;
  heads::Classifier verbalizer(*model, spec(ptune::ClassifierHead::kVerbalizerHead, 3), labelWords(family, model->vocab()));
  double worst = 0;
  for (int i = 0; i < 3; ++i) {
    const auto ids = family.at("inputs")[i].at("input_ids").get<std::vector<int64_t>>();
    const int64_t slot = family.at("inputs")[i].at("slot").get<int64_t>();
    const at::Tensor t = at::tensor(ids, at::kLong).unsqueeze(0);
    ptune::prompt::PreparedInput in = ptune::prompt::prepareInput(*model, nullptr, t, at::ones_like(t), false);
    const at::Tensor hidden = model->forward(in.input, &in.cache);
    const at::Tensor logits = verbalizer.slotLogits(*model, hidden, 0, at::tensor(std::vector<int64_t>{slot}, at::kLong));
    const at::Tensor want = slot_logits[i];
    const double err = (logits.squeeze(0) - want).abs().max().item<double>();
    worst = std::max(worst, err);
    // float64 against float64 through the whole model: model-level rounding (tolerance.h).
    EXPECT_LE(err, ptune_test::fp64Tolerance(want.abs().max().item<double>())) << fam << " input " << i;
  }
  std::cout << "[ verbalizer] " << fam << ": slot logits vs transformers (float64) " << worst << std::endl;
}

TEST_P(VerbalizerTest, SoftVerbalizerStartsFromTheFirstLabelWordAndScoresTheSlot) {
  const std::string fam = GetParam();
  const json family = readJson("verbalizer.json").at("families").at(fam);
  const ptune::io::SafetensorsFile tensors(kClassification + "/verbalizer.safetensors");
  const auto model = familyModel(fam);
  heads::Classifier soft(*model, spec(ptune::ClassifierHead::kSoftVerbalizerHead, 3), labelWords(family, model->vocab()));
  const at::Tensor vectors = tensors.tensor(fam + "/soft_verbalizer/class_vectors");
  EXPECT_LE((soft.parameters()[0].tensor.detach() - vectors).abs().max().item<double>(), closeTolerance(vectors));
  // Scores of the slots' hidden states (3, C), through the MLM transform for BERT.
  at::NoGradGuard no_grad;
  const at::Tensor hidden = tensors.tensor(fam + "/slot_hidden/f64").unsqueeze(1);  // (3, 1, C)
  const at::Tensor got = soft.scores(*model, hidden, at::ones({3, 1}, at::kBool), 0, at::zeros({3}, at::kLong));
  const at::Tensor want = tensors.tensor(fam + "/soft_verbalizer/scores");
  EXPECT_LE((got - want).abs().max().item<double>(), closeTolerance(want));
}

INSTANTIATE_TEST_SUITE_P(Families, VerbalizerTest, ::testing::Values("bert", "gpt2"),
                         [](const auto& info) { return info.param; });

/// Finite differences through every head, behind a soft prompt: prompt and head parameters.
TEST(ClassifierGradientTest, EveryHeadBehindASoftPrompt) {
  const auto model = familyModel("bert");
  const json family = readJson("verbalizer.json").at("families").at("bert");
  const ptune::prompt::ModelDims dims{model->hidden(), model->layers(), model->kvHeads(), model->headDim(), at::kDouble, at::kCPU};
  auto method = ptune::prompt::createMethod(ptune_test::makeSpec(ptune::PromptMethod::kPromptTuning, 2), dims, {});
  {
    at::NoGradGuard no_grad;
    method->parameter("embedding").tensor.mul_(0.3);
  }
  const at::Tensor ids = at::tensor(family.at("inputs")[0].at("input_ids").get<std::vector<int64_t>>(), at::kLong)
                             .unsqueeze(0)
                             .repeat({2, 1});
  const at::Tensor mask = at::ones_like(ids);
  const at::Tensor slots = at::full({2}, family.at("inputs")[0].at("slot").get<int64_t>(), at::kLong);
  const at::Tensor labels = at::tensor(std::vector<int64_t>{2, 0}, at::kLong);
  const loss::ClassLoss focal{loss::ClassLossKind::kFocal, 2.0, 0.0,
                              at::tensor(std::vector<double>{0.2, 0.3, 0.5}, at::TensorOptions().dtype(at::kDouble))};
  struct Case {
    std::string label;
    ptune::ClassifierSpec spec;
  };
  const std::vector<Case> cases = {
      {"linear, [CLS] pooling", spec(ptune::ClassifierHead::kLinearHead, 3, ptune::MultiToken::kFirstPiece, ptune::Pooling::kPoolCls)},
      {"linear, mean pooling", spec(ptune::ClassifierHead::kLinearHead, 3, ptune::MultiToken::kFirstPiece, ptune::Pooling::kPoolMean)},
      {"verbalizer (mean of word pieces)", spec(ptune::ClassifierHead::kVerbalizerHead, 3, ptune::MultiToken::kMeanOfPieces)},
      {"soft verbalizer", spec(ptune::ClassifierHead::kSoftVerbalizerHead, 3)}};
  for (const Case& c : cases) {
    heads::Classifier head(*model, c.spec, labelWords(family, model->vocab()));
    if (c.spec.head == static_cast<int32_t>(ptune::ClassifierHead::kLinearHead)) {
      at::NoGradGuard no_grad;
      head.parameters()[0].tensor.normal_(0.0, 0.5);  // a head that matters
    }
    const auto loss_value = [&] {
      ptune::prompt::PreparedInput in = ptune::prompt::prepareInput(*model, method.get(), ids, mask, false);
      const at::Tensor hidden = model->forward(in.input, &in.cache);
      return loss::classLossMean(head.scores(*model, hidden, mask.ne(0), in.input_virtual_tokens, slots), labels, focal);
    };
    std::vector<at::Tensor> params = {method->parameter("embedding").tensor};
    for (auto& p : head.parameters()) params.push_back(p.tensor);
    for (auto& p : params) p.mutable_grad() = at::Tensor();
    loss_value().backward();
    at::NoGradGuard no_grad;
    std::mt19937 rng(7);
    ptune_test::GradientReport report;
    for (auto& p : params) {
      ASSERT_TRUE(p.grad().defined()) << c.label;
      ptune_test::checkComponents(c.label, p, p.grad(), 8, rng, [&] { return loss_value().item<double>(); }, report);
    }
    std::cout << "[ gradient  ] " << c.label << ": worst error " << report.worst_ratio << " of its bound" << std::endl;
  }
}

}  // namespace
