// Device and dtype seam (issue 12), everything a CPU-only build can check: LoadOptions through the
// façade, bf16 against fp32, master (fp32) parameters behind a bf16 model, mask fill values per
// dtype, the errors for devices and dtypes this build lacks, and the fp16 loss scaler.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/dtypes.h"
#include "family_models.h"
#include "internal_support.h"
#include "models/blocks.h"
#include "optim/adamw.h"
#include "optim/loss_scaler.h"
#include "test_support.h"

namespace {

using namespace ptune_test;

// Tolerances of bf16 against fp32, from bf16's precision. bf16 keeps an 8-bit significand (7
// stored bits + the implicit one), so one rounding has a relative error of at most u = 2^-8 ~ 3.9e-3,
// roughly uniform, RMS u/sqrt(3). A Llama layer rounds about 8 results on the way to the residual
// stream (norm output, q/k/v/o, attention output, gate/up/down, the two adds); with the frozen
// weights' own rounding, 5 layers and the LM head that is ~45 roundings which, independent, add
// like a random walk: sqrt(45) * u/sqrt(3) ~ 3.9u. So:
//  - logits: relative RMS error (||a - b|| / ||a||) <= 4u ~ 1.6e-2 (measured 0.6-1.5e-2), and the
//    largest error, the tail of ~12k such errors (~4 sigma), <= 16u of the logits' largest magnitude;
//  - the loss, a mean of log-softmax terms, averages the logit errors: relative <= 4u;
//  - prompt gradients: backward rounds as many results again and multiplies rounded factors
//    (~sqrt(2) * 2 * 4u ~ 11u expected); allowed 24u relative RMS (measured <= 12u), i.e. a
//    direction within cos > 1 - (24u)^2 / 2 ~ 0.995; checked at 0.99.
// Measured the same under libtorch's default, AVX2 and AVX-512 kernels and every OpenBLAS core.
constexpr double kBf16Unit = 1.0 / 256.0;              // u = 2^-8
constexpr double kLogitRmsTol = 4 * kBf16Unit;         // relative RMS
constexpr double kLogitScaleTol = 16 * kBf16Unit;      // of max |logit|
constexpr double kLossRelTol = 4 * kBf16Unit;          // relative
constexpr double kGradRmsTol = 24 * kBf16Unit;         // relative RMS
constexpr double kGradMinCosine = 0.99;

ptune::LoadOptions loadOptions(ptune::DeviceType device, int32_t index, ptune::DType dtype) {
  return ptune::LoadOptions{static_cast<int32_t>(device), index, static_cast<int32_t>(dtype)};
}

/// max |a - b| / max |a| (a the fp32 reference).
double scaledError(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor ad = a.to(at::kDouble), bd = b.to(at::kDouble);
  return (ad - bd).abs().max().item<double>() / ad.abs().max().item<double>();
}

/// ||a - b|| / ||a||.
double relativeRms(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor ad = a.to(at::kDouble), bd = b.to(at::kDouble);
  return ((ad - bd).norm() / ad.norm()).item<double>();
}

double cosine(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor ad = a.to(at::kDouble).flatten(), bd = b.to(at::kDouble).flatten();
  return (ad.dot(bd) / (ad.norm() * bd.norm())).item<double>();
}

// ---------------------------------------------------------------------------------------
TEST(MaskFill, Fp32AndFp64KeepTheLowestValue) {
  EXPECT_EQ(ptune::maskFillValue(at::kFloat), static_cast<double>(std::numeric_limits<float>::lowest()));
  EXPECT_EQ(ptune::maskFillValue(at::kDouble), std::numeric_limits<double>::lowest());
}

TEST(MaskFill, HalfPrecisionLeavesHeadroomAndIsRepresentable) {
  for (const at::ScalarType dtype : {at::kBFloat16, at::kHalf}) {
    const double fill = ptune::maskFillValue(dtype);
    const at::Tensor t = at::full({1}, fill, at::TensorOptions().dtype(dtype));
    EXPECT_TRUE(std::isfinite(t.item<double>())) << dtype;
    EXPECT_EQ(t.item<double>(), fill) << "the fill value is exact in " << dtype;
    // A large negative score added to it stays finite (the point of the headroom).
    const at::Tensor sum = t + at::full({1}, -1000.0, t.options());
    EXPECT_TRUE(at::isfinite(sum).all().item<bool>()) << dtype;
  }
}

TEST(MaskFill, Bf16AttentionOfPaddedRowsIsFinite) {
  // Left padding: row 1's first three keys are padding, so its first three queries see no key at
  // all (a fully masked row) under the causal mask.
  const int64_t B = 2, H = 2, S = 6, D = 4;
  const at::Tensor key_mask = at::tensor({1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1}, at::kLong).view({B, S}).ne(0);
  const at::Tensor bias = ptune::models::attentionBias(key_mask, S, at::kBFloat16);  // (B, 1, S, S)
  EXPECT_EQ(bias.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::isfinite(bias).all().item<bool>());
  at::manual_seed(3);
  const auto bf16 = at::TensorOptions().dtype(at::kBFloat16);
  const at::Tensor q = (at::randn({B, H, S, D}) * 30).to(at::kBFloat16);
  const at::Tensor k = (at::randn({B, H, S, D}) * 30).to(at::kBFloat16);
  const at::Tensor v = at::randn({B, H, S, D}).to(at::kBFloat16);
  const at::Tensor out = ptune::models::attention(q, k, v, bias, 1.0 / std::sqrt(double(D)), true);
  EXPECT_EQ(out.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::isfinite(out).all().item<bool>());
  (void)bf16;
}

TEST(MaskFill, Bf16BackboneOnALeftPaddedBatchIsFinite) {
  const auto model = storiesBackbone(at::kBFloat16);
  const std::vector<int64_t> lily = lilyWithBos();
  at::Tensor ids = at::zeros({2, 10}, at::kLong), mask = at::zeros({2, 10}, at::kLong);
  for (int64_t t = 0; t < 10; ++t) {
    ids[0][t] = lily[static_cast<size_t>(t)];
    mask[0][t] = 1;
    if (t >= 4) {
      ids[1][t] = lily[static_cast<size_t>(t)];
      mask[1][t] = 1;
    }
  }
  ptune::prompt::PreparedInput in = ptune::prompt::prepareInput(*model, nullptr, ids, mask, false);
  const at::Tensor hidden = model->forward(in.input, &in.cache);
  EXPECT_EQ(hidden.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::isfinite(hidden).all().item<bool>());
}

class FamilyBf16Test : public ::testing::TestWithParam<std::string> {};

TEST_P(FamilyBf16Test, PaddedBatchFollowsFp32) {
  // GPT-2 (learned positions), BLOOM (ALiBi added to the mask) and BERT (bidirectional): a
  // left-padded row and a full one, hidden states in bf16 within the logits' tolerances of fp32's.
  const std::string name = GetParam();
  const ptune::io::WeightStore weights(kFamiliesDir + "/" + name + "/model");
  const auto fp32 = ptune::models::loadBackbone(weights, familySpec(name), at::kFloat);
  const auto bf16 = ptune::models::loadBackbone(weights, familySpec(name), at::kBFloat16);
  const int64_t T = 8;
  at::Tensor ids = at::arange(3, 3 + 2 * T, at::kLong).remainder(fp32->vocab()).view({2, T});
  at::Tensor mask = at::ones({2, T}, at::kLong);
  mask[1].narrow(0, 0, 3).fill_(0);
  at::NoGradGuard no_grad;
  const auto hidden = [&](const ptune::models::Backbone& model) {
    ptune::prompt::PreparedInput in = ptune::prompt::prepareInput(model, nullptr, ids, mask, false);
    return model.forward(in.input, &in.cache).to(at::kFloat);  // (B, T, C)
  };
  const at::Tensor ref = hidden(*fp32), got = hidden(*bf16);
  ASSERT_TRUE(at::isfinite(got).all().item<bool>()) << name;
  // Compared on real positions only: a padding query's output is arbitrary (and discarded).
  const at::Tensor real = mask.ne(0).unsqueeze(-1).expand_as(ref);
  // These are tiny random-weight models: their residual sums cancel much more than a trained
  // model's (terms larger than the sum), which scales the relative rounding up, and their final
  // hidden states are normalised (LayerNorm) again in bf16. Measured 4.4u-10.5u relative RMS;
  // allowed 16u, the bound of the stories260K logits' largest error.
  EXPECT_LE(relativeRms(ref.masked_select(real), got.masked_select(real)), kLogitScaleTol) << name;
}

INSTANTIATE_TEST_SUITE_P(Families, FamilyBf16Test,
                         ::testing::Values("gpt2", "bloom", "bloom_pow2", "bert", "bert_base"));

// ---------------------------------------------------------------------------------------
struct Bf16Result {
  at::Tensor logits;  // (B, Pin+T, V) fp32
  double loss;
  at::Tensor grad;    // of the prompt's first parameter, fp32
  at::ScalarType param_dtype, grad_dtype;
};

/// Logits, loss and the first parameter's gradient of `spec` (seeded) in front of stories260K
/// loaded in `dtype`, with parameters in the master dtype as the façade makes them.
Bf16Result run(const ptune::PromptSpec& spec, at::ScalarType dtype) {
  const auto model = storiesBackbone(dtype);
  ptune::prompt::ModelDims dims = storiesDims(ptune::masterType(dtype));
  auto method = ptune::prompt::createMethod(spec, dims, {});
  at::Tensor ids, mask, labels;
  paddedBatch(ids, mask, labels);
  Bf16Result r;
  {
    at::NoGradGuard no_grad;
    ptune::prompt::PreparedInput in = ptune::prompt::prepareInput(*model, method.get(), ids, mask, false);
    r.logits = model->requireHead().logits(model->forward(in.input, &in.cache)).to(at::kFloat);
  }
  const at::Tensor loss = methodLoss(*model, method.get(), ids, mask, labels);
  EXPECT_EQ(loss.scalar_type(), at::kFloat) << "the loss stays fp32 behind a " << dtype << " model";
  loss.backward();
  r.loss = loss.item<double>();
  const at::Tensor& p = method->parameters().front().tensor;
  r.param_dtype = p.scalar_type();
  r.grad_dtype = p.grad().scalar_type();
  r.grad = p.grad().clone();
  return r;
}

void expectBf16CloseToFp32(const ptune::PromptSpec& spec) {
  const Bf16Result ref = run(spec, at::kFloat);
  const Bf16Result bf = run(spec, at::kBFloat16);
  EXPECT_TRUE(at::isfinite(bf.logits).all().item<bool>());
  EXPECT_LE(relativeRms(ref.logits, bf.logits), kLogitRmsTol);
  EXPECT_LE(scaledError(ref.logits, bf.logits), kLogitScaleTol);
  EXPECT_NEAR(bf.loss, ref.loss, kLossRelTol * std::abs(ref.loss));
  EXPECT_LE(relativeRms(ref.grad, bf.grad), kGradRmsTol);
  EXPECT_GT(cosine(ref.grad, bf.grad), kGradMinCosine);
  // Master parameters and their gradients stay fp32 behind the bf16 model.
  EXPECT_EQ(bf.param_dtype, at::kFloat);
  EXPECT_EQ(bf.grad_dtype, at::kFloat);
}

TEST(Bf16VsFp32, PromptTuning) {
  expectBf16CloseToFp32(makeSpec(ptune::PromptMethod::kPromptTuning, 4, 0, ptune::PromptEncoderType::kMlp, 0,
                                 false, /*seed=*/11));
}

TEST(Bf16VsFp32, PrefixTuning) {
  expectBf16CloseToFp32(makeSpec(ptune::PromptMethod::kPrefixTuning, 4, 0, ptune::PromptEncoderType::kMlp, 0,
                                 false, /*seed=*/12));
}

TEST(Bf16VsFp32, PrefixTuningWithProjection) {
  expectBf16CloseToFp32(makeSpec(ptune::PromptMethod::kPrefixTuning, 4, 16, ptune::PromptEncoderType::kMlp, 0,
                                 true, /*seed=*/13));
}

TEST(Bf16VsFp32, PTuningMlp) {
  expectBf16CloseToFp32(makeSpec(ptune::PromptMethod::kPTuning, 4, 16, ptune::PromptEncoderType::kMlp, 0, false,
                                 /*seed=*/14));
}

TEST(Bf16VsFp32, DynamicPrompt) {
  expectBf16CloseToFp32(makeSpec(ptune::PromptMethod::kDynamic, 4, 16, ptune::PromptEncoderType::kMlp, 0, false,
                                 /*seed=*/16));
}

TEST(Bf16VsFp32, MasterMomentsStayFp32) {
  // What the trainer does with a bf16 model's prompt: AdamW moments like the parameter (fp32).
  const Bf16Result bf = run(makeSpec(ptune::PromptMethod::kPromptTuning, 4, 0, ptune::PromptEncoderType::kMlp, 0,
                                     false, 15),
                            at::kBFloat16);
  at::Tensor param = at::zeros_like(bf.grad);
  at::Tensor m = at::zeros_like(param), v = at::zeros_like(param);
  ptune::optim::adamwStep(param, bf.grad, m, v, 1, {1e-2, 0.9, 0.999, 1e-8, 0.0});
  EXPECT_EQ(m.scalar_type(), at::kFloat);
  EXPECT_EQ(v.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::isfinite(param).all().item<bool>());
  // A bf16 parameter is refused: AdamW works on master weights only.
  at::Tensor half = param.to(at::kBFloat16), hm = m.to(at::kBFloat16), hv = v.to(at::kBFloat16);
  EXPECT_THROW(ptune::optim::adamwStep(half, bf.grad.to(at::kBFloat16), hm, hv, 1, {1e-2, 0.9, 0.999, 1e-8, 0.0}),
               std::exception);
}

// ---------------------------------------------------------------------------------------
TEST(LoadOptionsFacade, Fp32OnCpuIsBitIdenticalToTheDefault) {
  const ptune::Model plain(kStoriesDir.c_str(), stories260kConfig());
  const ptune::Model explicit_fp32(kStoriesDir.c_str(), stories260kConfig(),
                                   loadOptions(ptune::DeviceType::kCpu, 0, ptune::DType::kFp32));
  const ptune::LoadOptions got = explicit_fp32.loadOptions();
  EXPECT_EQ(got.device_type, 0);
  EXPECT_EQ(got.dtype, 0);
  const Batch b = makeBatch({lilyWithBos()});
  const int64_t V = plain.vocabSize();
  std::vector<float> a(static_cast<size_t>(b.B * b.T * V)), c(a.size());
  plain.logits(nullptr, b.ids.data(), b.mask.data(), nullptr, b.B, b.T, a.data());
  explicit_fp32.logits(nullptr, b.ids.data(), b.mask.data(), nullptr, b.B, b.T, c.data());
  EXPECT_EQ(a, c);
}

TEST(LoadOptionsFacade, CudaOnThisBuildIsOneClearLine) {
  if (ptune::cudaDeviceCount() > 0) GTEST_SKIP() << "a GPU is available here";
  const std::string message = thrownMessage([] {
    ptune::Model m(kStoriesDir.c_str(), stories260kConfig(),
                   loadOptions(ptune::DeviceType::kCuda, 0, ptune::DType::kFp32));
  });
  EXPECT_EQ(message.rfind("--device cuda: no CUDA device is available (", 0), 0u) << message;
  EXPECT_NE(message.find("use --device cpu"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

TEST(LoadOptionsFacade, UnknownDeviceAndDtypeAreNamed) {
  EXPECT_NE(thrownMessage([] {
              ptune::Model m(kStoriesDir.c_str(), stories260kConfig(), ptune::LoadOptions{7, 0, 0});
            }).find("--device"),
            std::string::npos);
  EXPECT_NE(thrownMessage([] {
              ptune::Model m(kStoriesDir.c_str(), stories260kConfig(), ptune::LoadOptions{0, 0, 9});
            }).find("--dtype"),
            std::string::npos);
  EXPECT_NE(thrownMessage([] {
              ptune::Model m(kStoriesDir.c_str(), stories260kConfig(), ptune::LoadOptions{0, 1, 0});
            }).find("--device cpu takes no device index"),
            std::string::npos);
}

TEST(LoadOptionsFacade, Fp16OnCpuSaysToUseBf16) {
  const std::string message = thrownMessage([] {
    ptune::Model m(kStoriesDir.c_str(), stories260kConfig(),
                   loadOptions(ptune::DeviceType::kCpu, 0, ptune::DType::kFp16));
  });
  EXPECT_EQ(message, "--dtype fp16 needs --device cuda; use bf16 on CPU");
}

TEST(LoadOptionsFacade, Bf16TrainingReducesTheLoss) {
  const ptune::Model model(kStoriesDir.c_str(), stories260kConfig(),
                           loadOptions(ptune::DeviceType::kCpu, 0, ptune::DType::kBf16));
  ptune::PromptModel prompt(model, makeSpec(ptune::PromptMethod::kPromptTuning, 4, 0,
                                            ptune::PromptEncoderType::kMlp, 0, false, 21),
                            nullptr, 0);
  ptune::PromptTrainer trainer(model, prompt, options(0.1, 1, 20));
  const Batch b = makeBatch({lilyWithBos()});
  std::vector<double> losses;
  for (int step = 0; step < 20; ++step) {
    const ptune::StepStats s = trainer.trainMicroBatch(b.ids.data(), b.mask.data(), b.labels.data(), b.B, b.T);
    ASSERT_TRUE(std::isfinite(s.loss));
    ASSERT_TRUE(s.optimizer_stepped);
    losses.push_back(s.loss);
  }
  EXPECT_LT(losses.back(), 0.9 * losses.front());
  // The prompt and its moments read back as finite fp32 values.
  std::vector<float> p(static_cast<size_t>(prompt.parameterNumel("embedding")));
  std::vector<float> m(p.size()), v(p.size());
  prompt.readParameter("embedding", p.data());
  trainer.readMoments("embedding", m.data(), v.data());
  for (size_t i = 0; i < p.size(); ++i) {
    ASSERT_TRUE(std::isfinite(p[i]) && std::isfinite(m[i]) && std::isfinite(v[i]));
  }
}

TEST(LoadOptionsFacade, Bf16GenerationAndPrefixLogitsRun) {
  const ptune::Model model(kStoriesDir.c_str(), stories260kConfig(),
                           loadOptions(ptune::DeviceType::kCpu, 0, ptune::DType::kBf16));
  ptune::PromptModel prefix(model, makeSpec(ptune::PromptMethod::kPrefixTuning, 3, 0,
                                            ptune::PromptEncoderType::kMlp, 0, false, 22),
                            nullptr, 0);
  const std::vector<int64_t> ids = lilyWithBos();
  const std::vector<int64_t> mask(ids.size(), 1);
  const int64_t T = static_cast<int64_t>(ids.size());
  std::vector<float> logits(static_cast<size_t>(T * model.vocabSize()));
  model.logits(&prefix, ids.data(), mask.data(), nullptr, 1, T, logits.data());
  for (float x : logits) ASSERT_TRUE(std::isfinite(x));
  ptune::GenerateOptions g{};
  g.max_new_tokens = 5;
  g.greedy = false;
  g.temperature = 1.0;
  g.top_p = 1.0;
  g.seed = 3;
  std::vector<int64_t> tokens(5), lengths(1);
  const int64_t eos[] = {kEos};
  model.generate(&prefix, ids.data(), mask.data(), 1, T, eos, 1, g, tokens.data(), lengths.data());
  EXPECT_GE(lengths[0], 1);
}

TEST(LoadOptionsFacade, Bf16ClassifierHeadsTrainAndScoreInFp32) {
  const ptune::Model model(kStoriesDir.c_str(), stories260kConfig(),
                           loadOptions(ptune::DeviceType::kCpu, 0, ptune::DType::kBf16));
  ptune::PromptModel prompt(model, makeSpec(ptune::PromptMethod::kPromptTuning, 3, 0,
                                            ptune::PromptEncoderType::kMlp, 0, false, 23),
                            nullptr, 0);
  // Label words: class 0 "Lily" (token 376), class 1 "Tom" (274); slots at the last text token.
  const int64_t word_class[] = {0, 1}, word_offsets[] = {0, 1, 2}, word_tokens[] = {376, 274};
  for (const ptune::ClassifierHead head : {ptune::ClassifierHead::kLinearHead, ptune::ClassifierHead::kVerbalizerHead,
                                           ptune::ClassifierHead::kSoftVerbalizerHead}) {
    ptune::ClassifierSpec spec{};
    spec.head = static_cast<int32_t>(head);
    spec.num_classes = 2;
    spec.pooling = static_cast<int32_t>(ptune::Pooling::kPoolMean);
    spec.head_bias = true;
    spec.multi_token = static_cast<int32_t>(ptune::MultiToken::kFirstPiece);
    spec.seed = 5;
    const bool words = head != ptune::ClassifierHead::kLinearHead;
    ptune::Classifier classifier(model, spec, words ? word_class : nullptr, words ? word_offsets : nullptr,
                                 words ? word_tokens : nullptr, words ? 2 : 0);
    const Batch b = makeBatch({std::vector<int64_t>(kLilyIds.begin(), kLilyIds.begin() + 8),
                               std::vector<int64_t>(kTomIds.begin(), kTomIds.begin() + 8)});
    const int64_t labels[] = {0, 1}, slots[] = {7, 7};
    ptune::TrainOptions o = options(0.05, 1, 10);
    ptune::PromptTrainer trainer(model, &prompt, classifier, o);
    std::vector<double> losses;
    for (int step = 0; step < 10; ++step) {
      const ptune::StepStats st =
          trainer.trainClassBatch(b.ids.data(), b.mask.data(), nullptr, slots, labels, b.B, b.T);
      ASSERT_TRUE(std::isfinite(st.loss)) << static_cast<int>(head);
      losses.push_back(st.loss);
    }
    EXPECT_LT(losses.back(), losses.front()) << static_cast<int>(head);
    std::vector<float> scores(4);
    classifier.scores(&prompt, b.ids.data(), b.mask.data(), nullptr, slots, b.B, b.T, scores.data());
    for (float x : scores) EXPECT_TRUE(std::isfinite(x)) << static_cast<int>(head);
  }
}

TEST(LoadOptionsFacade, Bf16MixedBatchOfPrefixAndPromptRows) {
  const ptune::Model model(kStoriesDir.c_str(), stories260kConfig(),
                           loadOptions(ptune::DeviceType::kCpu, 0, ptune::DType::kBf16));
  ptune::PromptModel prefix(model, makeSpec(ptune::PromptMethod::kPrefixTuning, 3, 0,
                                            ptune::PromptEncoderType::kMlp, 0, false, 24),
                            nullptr, 0);
  ptune::PromptModel soft(model, makeSpec(ptune::PromptMethod::kPromptTuning, 2, 0,
                                          ptune::PromptEncoderType::kMlp, 0, false, 25),
                          nullptr, 0);
  ptune::GenerateOptions g{};
  g.max_new_tokens = 3;
  g.greedy = true;
  g.temperature = 1.0;
  g.top_p = 1.0;
  ptune::MixedBatch batch(model);
  const std::vector<int64_t> lily = lilyWithBos(), tom(kTomIds.begin(), kTomIds.begin() + 6);
  batch.addRow(&prefix, lily.data(), static_cast<int64_t>(lily.size()), g);
  batch.addRow(&soft, tom.data(), static_cast<int64_t>(tom.size()), g);
  batch.addRow(nullptr, tom.data(), static_cast<int64_t>(tom.size()), g);
  std::vector<float> logits(static_cast<size_t>(batch.size() * batch.maxTokens() * model.vocabSize()));
  batch.logits(logits.data());
  for (float x : logits) ASSERT_TRUE(std::isfinite(x));
  std::vector<int64_t> tokens(static_cast<size_t>(batch.size() * batch.maxNewTokens())), lengths(3);
  const int64_t eos[] = {kEos};
  batch.generate(eos, 1, tokens.data(), lengths.data());
  for (int64_t n : lengths) EXPECT_GE(n, 1);
}

TEST(LoadOptionsFacade, Bf16DecodeSessionRowsJoinAndEnd) {
  const ptune::Model model(kStoriesDir.c_str(), stories260kConfig(),
                           loadOptions(ptune::DeviceType::kCpu, 0, ptune::DType::kBf16));
  ptune::PromptModel prefix(model, makeSpec(ptune::PromptMethod::kPrefixTuning, 3, 0,
                                            ptune::PromptEncoderType::kMlp, 0, false, 24),
                            nullptr, 0);
  ptune::GenerateOptions g{};
  g.max_new_tokens = 6;
  g.greedy = true;
  g.temperature = 1.0;
  g.top_p = 1.0;
  ptune::DecodeSession session(model, nullptr, 0);
  const std::vector<int64_t> lily = lilyWithBos(), tom(kTomIds.begin(), kTomIds.begin() + 6);
  session.add(&prefix, lily.data(), static_cast<int64_t>(lily.size()), g);
  std::vector<int64_t> ids(2), tokens(2), done(2), produced(2, 0);
  for (int step = 0; step < 20 && (step < 2 || session.size() > 0); ++step) {
    if (step == 2) session.add(nullptr, tom.data(), static_cast<int64_t>(tom.size()), g);  // joins mid-decode
    const int64_t n = session.step(ids.data(), tokens.data(), done.data());
    for (int64_t i = 0; i < n; ++i) {
      const auto k = static_cast<size_t>(i);
      ASSERT_GE(tokens[k], 0);
      ASSERT_LT(tokens[k], model.vocabSize());
      ++produced[static_cast<size_t>(ids[k])];
    }
  }
  EXPECT_EQ(session.size(), 0);
  EXPECT_EQ(produced, (std::vector<int64_t>{6, 6}));
}

// ---------------------------------------------------------------------------------------
TEST(LossScaler, ScalesUnscalesAndSkipsOnInf) {
  ptune::optim::DynamicLossScaler scaler(1024.0, /*growth_interval=*/2);
  const at::Tensor loss = at::tensor(0.5);
  EXPECT_DOUBLE_EQ(scaler.scaled(loss).item<double>(), 512.0);

  // Clean gradients: unscaled in place, finite.
  at::Tensor g1 = at::full({3}, 1024.0), g2 = at::full({2, 2}, -2048.0);
  EXPECT_TRUE(scaler.unscale({g1, g2}));
  EXPECT_TRUE(at::equal(g1, at::ones({3})));
  EXPECT_TRUE(at::equal(g2, at::full({2, 2}, -2.0)));
  scaler.update(false);
  EXPECT_EQ(scaler.scale(), 1024.0);
  EXPECT_EQ(scaler.cleanSteps(), 1);

  // An injected inf (and a NaN) is found; the scale halves and the clean count restarts.
  at::Tensor bad = at::ones({4});
  bad[2] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(scaler.unscale({g1, bad}));
  scaler.update(true);
  EXPECT_EQ(scaler.scale(), 512.0);
  EXPECT_EQ(scaler.cleanSteps(), 0);
  at::Tensor nan = at::ones({2});
  nan[0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(scaler.unscale({nan}));
  scaler.update(true);
  EXPECT_EQ(scaler.scale(), 256.0);

  // growth_interval clean steps in a row double it.
  scaler.update(false);
  EXPECT_EQ(scaler.scale(), 256.0);
  scaler.update(false);
  EXPECT_EQ(scaler.scale(), 512.0);
  EXPECT_EQ(scaler.cleanSteps(), 0);
}

TEST(LossScaler, RejectsBadSettings) {
  EXPECT_THROW(ptune::optim::DynamicLossScaler(0.0), std::exception);
  EXPECT_THROW(ptune::optim::DynamicLossScaler(1.0, 0), std::exception);
  EXPECT_THROW(ptune::optim::DynamicLossScaler(1.0, 10, 1.0), std::exception);
  EXPECT_THROW(ptune::optim::DynamicLossScaler(1.0, 10, 2.0, 1.0), std::exception);
}

}  // namespace
