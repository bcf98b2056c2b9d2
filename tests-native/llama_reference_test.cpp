// The key correctness test: ptune::Model (HF safetensors, rotate_half RoPE, batched ATen)
// against an independent forward written here in plain loops, in the manner of karpathy's
// llama2.c run.c, reading the ORIGINAL llama2.c checkpoint (interleaved-pair RoPE, no HF
// conversion involved). The two share nothing but the numbers in the files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <vector>

#include "ptune/ptune.h"
#include "test_support.h"
#include "tolerance.h"

namespace {

using ptune_test::kBos;
using ptune_test::stories260kConfig;

/// llama2.c checkpoint: 7 int32 header, then float32 arrays (models/README.md).
struct Llama2cWeights {
  int dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0,
      seq_len = 0;
  int head_size = 0, kv_dim = 0;
  std::vector<float> blob;
  const float* token_embedding = nullptr;  // (vocab, dim)
  const float* rms_att = nullptr;          // (layer, dim)
  const float* wq = nullptr;               // (layer, dim, dim)
  const float* wk = nullptr;               // (layer, kv_dim, dim)
  const float* wv = nullptr;               // (layer, kv_dim, dim)
  const float* wo = nullptr;               // (layer, dim, dim)
  const float* rms_ffn = nullptr;          // (layer, dim)
  const float* w1 = nullptr;               // (layer, hidden, dim)
  const float* w2 = nullptr;               // (layer, dim, hidden)
  const float* w3 = nullptr;               // (layer, hidden, dim)
  const float* rms_final = nullptr;        // (dim)
};

Llama2cWeights loadLlama2c(const std::string& path) {
  Llama2cWeights w;
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot open " + path);
  const std::streamsize size = in.tellg();
  in.seekg(0);
  int32_t header[7];
  in.read(reinterpret_cast<char*>(header), sizeof(header));
  w.dim = header[0];
  w.hidden_dim = header[1];
  w.n_layers = header[2];
  w.n_heads = header[3];
  w.n_kv_heads = header[4];
  w.vocab_size = header[5];  // positive: classifier shared with the embedding
  w.seq_len = header[6];
  if (w.vocab_size <= 0) throw std::runtime_error("expected a shared classifier");
  w.head_size = w.dim / w.n_heads;
  w.kv_dim = w.dim * w.n_kv_heads / w.n_heads;
  const size_t L = static_cast<size_t>(w.n_layers), dim = static_cast<size_t>(w.dim),
               hid = static_cast<size_t>(w.hidden_dim), kv = static_cast<size_t>(w.kv_dim);
  const size_t floats = static_cast<size_t>(w.vocab_size) * dim + L * dim + L * dim * dim +
                        2 * L * kv * dim + L * dim * dim + L * dim + 3 * L * hid * dim + dim +
                        2 * static_cast<size_t>(w.seq_len) * static_cast<size_t>(w.head_size / 2);
  if (static_cast<size_t>(size) != sizeof(header) + 4 * floats) {
    throw std::runtime_error("unexpected size of " + path);
  }
  w.blob.resize(floats);
  in.read(reinterpret_cast<char*>(w.blob.data()), static_cast<std::streamsize>(4 * floats));
  const float* p = w.blob.data();
  auto take = [&p](size_t n) {
    const float* at = p;
    p += n;
    return at;
  };
  w.token_embedding = take(static_cast<size_t>(w.vocab_size) * dim);
  w.rms_att = take(L * dim);
  w.wq = take(L * dim * dim);
  w.wk = take(L * kv * dim);
  w.wv = take(L * kv * dim);
  w.wo = take(L * dim * dim);
  w.rms_ffn = take(L * dim);
  w.w1 = take(L * hid * dim);
  w.w2 = take(L * dim * hid);
  w.w3 = take(L * hid * dim);
  w.rms_final = take(dim);
  return w;
}

/// out (d) = w (d, n) @ x (n), accumulated in double.
void matmul(float* out, const float* x, const float* w, int n, int d) {
  for (int i = 0; i < d; ++i) {
    double sum = 0.0;
    for (int j = 0; j < n; ++j) sum += static_cast<double>(w[i * n + j]) * x[j];
    out[i] = static_cast<float>(sum);
  }
}

/// out (n) = weight * x / sqrt(mean(x^2) + 1e-5)
void rmsnorm(float* out, const float* x, const float* weight, int n) {
  double ss = 0.0;
  for (int j = 0; j < n; ++j) ss += static_cast<double>(x[j]) * x[j];
  const double scale = 1.0 / std::sqrt(ss / n + 1e-5);
  for (int j = 0; j < n; ++j) out[j] = static_cast<float>(weight[j] * (scale * x[j]));
}

/// A run.c-style decoder: one position per call, keys/values cached per layer.
class Llama2cRunner {
 public:
  explicit Llama2cRunner(const Llama2cWeights& w) : w_(w) {
    const size_t cache = static_cast<size_t>(w.n_layers) * w.seq_len * w.kv_dim;
    key_cache_.assign(cache, 0.0f);
    value_cache_.assign(cache, 0.0f);
  }

  const float* tokenEmbedding(int64_t token) const {
    return w_.token_embedding + static_cast<size_t>(token) * w_.dim;
  }

  /// Runs the input vector x_in (dim) at position pos; returns the logits (vocab).
  std::vector<float> forward(const float* x_in, int pos) {
    const int dim = w_.dim, hid = w_.hidden_dim, kv_dim = w_.kv_dim, hs = w_.head_size;
    const int kv_mul = w_.n_heads / w_.n_kv_heads;
    std::vector<float> x(x_in, x_in + dim), xb(dim), xb2(dim), q(dim), hb(hid), hb2(hid);
    std::vector<double> att(static_cast<size_t>(pos) + 1);
    for (int l = 0; l < w_.n_layers; ++l) {
      rmsnorm(xb.data(), x.data(), w_.rms_att + l * dim, dim);
      float* k = key_cache_.data() + (static_cast<size_t>(l) * w_.seq_len + pos) * kv_dim;
      float* v = value_cache_.data() + (static_cast<size_t>(l) * w_.seq_len + pos) * kv_dim;
      matmul(q.data(), xb.data(), w_.wq + static_cast<size_t>(l) * dim * dim, dim, dim);
      matmul(k, xb.data(), w_.wk + static_cast<size_t>(l) * kv_dim * dim, dim, kv_dim);
      matmul(v, xb.data(), w_.wv + static_cast<size_t>(l) * kv_dim * dim, dim, kv_dim);
      // RoPE on interleaved pairs (i, i+1): freq = 1 / 10000^((i mod hs) / hs)
      for (int i = 0; i < dim; i += 2) {
        const int head_dim = i % hs;
        const double freq = 1.0 / std::pow(10000.0, static_cast<double>(head_dim) / hs);
        const double angle = pos * freq;
        const double fcr = std::cos(angle), fci = std::sin(angle);
        const int rotations = i < kv_dim ? 2 : 1;  // q always, k only within kv_dim
        for (int r = 0; r < rotations; ++r) {
          float* vec = r == 0 ? q.data() : k;
          const double v0 = vec[i], v1 = vec[i + 1];
          vec[i] = static_cast<float>(v0 * fcr - v1 * fci);
          vec[i + 1] = static_cast<float>(v0 * fci + v1 * fcr);
        }
      }
      // grouped-query attention over positions 0..pos
      for (int h = 0; h < w_.n_heads; ++h) {
        const float* qh = q.data() + h * hs;
        const int kvh = h / kv_mul;
        double max_score = -1e300;
        for (int t = 0; t <= pos; ++t) {
          const float* kt = key_cache_.data() + (static_cast<size_t>(l) * w_.seq_len + t) * kv_dim + kvh * hs;
          double score = 0.0;
          for (int i = 0; i < hs; ++i) score += static_cast<double>(qh[i]) * kt[i];
          att[static_cast<size_t>(t)] = score / std::sqrt(static_cast<double>(hs));
          max_score = std::max(max_score, att[static_cast<size_t>(t)]);
        }
        double sum = 0.0;
        for (int t = 0; t <= pos; ++t) {
          att[static_cast<size_t>(t)] = std::exp(att[static_cast<size_t>(t)] - max_score);
          sum += att[static_cast<size_t>(t)];
        }
        for (int i = 0; i < hs; ++i) {
          double acc = 0.0;
          for (int t = 0; t <= pos; ++t) {
            const float* vt = value_cache_.data() + (static_cast<size_t>(l) * w_.seq_len + t) * kv_dim + kvh * hs;
            acc += att[static_cast<size_t>(t)] / sum * vt[i];
          }
          xb[static_cast<size_t>(h * hs + i)] = static_cast<float>(acc);
        }
      }
      matmul(xb2.data(), xb.data(), w_.wo + static_cast<size_t>(l) * dim * dim, dim, dim);
      for (int i = 0; i < dim; ++i) x[static_cast<size_t>(i)] += xb2[static_cast<size_t>(i)];
      // FFN: w2(silu(w1 x) * w3 x)
      rmsnorm(xb.data(), x.data(), w_.rms_ffn + l * dim, dim);
      matmul(hb.data(), xb.data(), w_.w1 + static_cast<size_t>(l) * hid * dim, dim, hid);
      matmul(hb2.data(), xb.data(), w_.w3 + static_cast<size_t>(l) * hid * dim, dim, hid);
      for (int i = 0; i < hid; ++i) {
        const double a = hb[static_cast<size_t>(i)];
        hb[static_cast<size_t>(i)] = static_cast<float>(a / (1.0 + std::exp(-a)) * hb2[static_cast<size_t>(i)]);
      }
      matmul(xb.data(), hb.data(), w_.w2 + static_cast<size_t>(l) * dim * hid, hid, dim);
      for (int i = 0; i < dim; ++i) x[static_cast<size_t>(i)] += xb[static_cast<size_t>(i)];
    }
    rmsnorm(x.data(), x.data(), w_.rms_final, dim);
    std::vector<float> logits(static_cast<size_t>(w_.vocab_size));
    matmul(logits.data(), x.data(), w_.token_embedding, dim, w_.vocab_size);  // tied classifier
    return logits;
  }

  /// Logits (n, vocab) of a sequence of input vectors (n, dim) at positions 0..n-1.
  std::vector<std::vector<float>> run(const std::vector<std::vector<float>>& inputs) {
    std::vector<std::vector<float>> out;
    for (size_t pos = 0; pos < inputs.size(); ++pos) {
      out.push_back(forward(inputs[pos].data(), static_cast<int>(pos)));
    }
    return out;
  }

  std::vector<float> tokenVector(int64_t token) const {
    const float* e = tokenEmbedding(token);
    return std::vector<float>(e, e + w_.dim);
  }

 private:
  const Llama2cWeights& w_;
  std::vector<float> key_cache_, value_cache_;
};

int64_t argmax(const float* row, int64_t n) {
  return std::max_element(row, row + n) - row;
}

class LlamaReferenceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    weights_ = new Llama2cWeights(loadLlama2c(ptune_test::kStoriesBin));
    model_ = new ptune::Model(ptune_test::kStoriesDir.c_str(), stories260kConfig());
  }
  static void TearDownTestSuite() {
    delete model_;
    delete weights_;
  }

  /// BOS, the Lily sentence, then a few other ids (rare pieces, byte tokens, EOS).
  static std::vector<int64_t> testIds() {
    std::vector<int64_t> ids = ptune_test::lilyWithBos();
    for (int64_t id : {300, 5, 511, 2, 400, 259, 290}) ids.push_back(id);
    return ids;
  }

  /// max |ptune - reference| over rows (n, V) of ptune logits starting at out.
  static double maxError(const float* ours, const std::vector<std::vector<float>>& reference) {
    double err = 0.0;
    for (size_t t = 0; t < reference.size(); ++t) {
      for (size_t v = 0; v < reference[t].size(); ++v) {
        err = std::max(err, std::abs(static_cast<double>(ours[t * reference[t].size() + v]) -
                                     reference[t][v]));
      }
    }
    return err;
  }

  /// max |logit| of reference rows (the magnitude a comparison is relative to).
  static double largestOf(const std::vector<std::vector<float>>& reference) {
    double m = 0.0;
    for (const auto& row : reference) m = std::max(m, ptune_test::maxAbs(row));
    return m;
  }

  static Llama2cWeights* weights_;
  static ptune::Model* model_;
};

Llama2cWeights* LlamaReferenceTest::weights_ = nullptr;
ptune::Model* LlamaReferenceTest::model_ = nullptr;

TEST_F(LlamaReferenceTest, CheckpointHeaderMatchesConfig) {
  const ptune::ModelSpec c = stories260kConfig();
  EXPECT_EQ(weights_->dim, c.hidden_size);
  EXPECT_EQ(weights_->hidden_dim, c.intermediate_size);
  EXPECT_EQ(weights_->n_layers, c.num_hidden_layers);
  EXPECT_EQ(weights_->n_heads, c.num_attention_heads);
  EXPECT_EQ(weights_->n_kv_heads, c.num_key_value_heads);
  EXPECT_EQ(weights_->vocab_size, c.vocab_size);
  EXPECT_EQ(weights_->seq_len, c.max_position_embeddings);
  EXPECT_EQ(weights_->head_size, c.head_dim);
  EXPECT_EQ(model_->vocabSize(), 512);
  EXPECT_EQ(model_->hiddenSize(), 64);
  EXPECT_EQ(model_->numLayers(), 5);
}

TEST_F(LlamaReferenceTest, EmbeddingsEqualLlama2cTable) {
  const std::vector<int64_t> ids = {0, 1, 2, 403, 511};
  std::vector<float> out(ids.size() * 64);
  model_->embed(ids.data(), static_cast<int64_t>(ids.size()), out.data());
  for (size_t i = 0; i < ids.size(); ++i) {
    const float* expected = weights_->token_embedding + ids[i] * 64;
    for (int j = 0; j < 64; ++j) ASSERT_EQ(out[i * 64 + static_cast<size_t>(j)], expected[j]) << i;
  }
}

TEST_F(LlamaReferenceTest, LogitsMatchLlama2cReference) {
  const std::vector<int64_t> ids = testIds();
  const int64_t T = static_cast<int64_t>(ids.size()), V = 512;
  const std::vector<int64_t> mask(ids.size(), 1);
  std::vector<float> ours(static_cast<size_t>(T * V));
  model_->logits(nullptr, ids.data(), mask.data(), nullptr, 1, T, ours.data());

  Llama2cRunner runner(*weights_);
  std::vector<std::vector<float>> inputs;
  for (int64_t id : ids) inputs.push_back(runner.tokenVector(id));
  const auto reference = runner.run(inputs);

  const double err = maxError(ours.data(), reference);
  double largest = 0.0;
  for (const auto& row : reference) {
    for (float x : row) largest = std::max(largest, static_cast<double>(std::abs(x)));
  }
  std::cout << "[ reference ] max |logit - llama2.c reference| = " << err << " over " << T
            << " positions (largest |logit| " << largest << ")" << std::endl;
  // fp32 against an fp32 reference that accumulates in double: ptune's rounding, relative to
  // the logits' magnitude (tolerance.h).
  EXPECT_LE(err, ptune_test::fp32Tolerance(largest));
  EXPECT_GT(largest, 5.0);  // a trained model, not a degenerate one
  // The trained model predicts the sentence: after "Once upon a" comes " time".
  EXPECT_EQ(argmax(&ours[3 * V], V), 378);
}

TEST_F(LlamaReferenceTest, PaddedBatchRowsMatchReference) {
  // Row 0: 10 tokens then right padding; row 1: left padding then 12 tokens; T = 14.
  const std::vector<int64_t> ids = testIds();
  const int64_t T = 14, V = 512;
  std::vector<int64_t> batch(2 * T, 0), mask(2 * T, 0);
  for (int64_t t = 0; t < 10; ++t) {
    batch[static_cast<size_t>(t)] = ids[static_cast<size_t>(t)];
    mask[static_cast<size_t>(t)] = 1;
  }
  for (int64_t t = 0; t < 12; ++t) {
    batch[static_cast<size_t>(T + 2 + t)] = ids[static_cast<size_t>(t + 4)];
    mask[static_cast<size_t>(T + 2 + t)] = 1;
  }
  batch[10] = 77;  // padding ids must not matter
  batch[T] = 311;
  std::vector<float> ours(static_cast<size_t>(2 * T * V));
  model_->logits(nullptr, batch.data(), mask.data(), nullptr, 2, T, ours.data());

  Llama2cRunner row0(*weights_), row1(*weights_);
  std::vector<std::vector<float>> in0, in1;
  for (int64_t t = 0; t < 10; ++t) in0.push_back(row0.tokenVector(ids[static_cast<size_t>(t)]));
  for (int64_t t = 0; t < 12; ++t) in1.push_back(row1.tokenVector(ids[static_cast<size_t>(t + 4)]));
  const auto ref0 = row0.run(in0), ref1 = row1.run(in1);
  // fp32 against the reference, relative to the logits' magnitude (tolerance.h).
  EXPECT_LE(maxError(ours.data(), ref0), ptune_test::fp32Tolerance(largestOf(ref0)));
  EXPECT_LE(maxError(ours.data() + (T + 2) * V, ref1), ptune_test::fp32Tolerance(largestOf(ref1)));
}

TEST_F(LlamaReferenceTest, GreedyGenerationMatchesReference) {
  const int N = 40;
  const int64_t bos = kBos, one = 1;
  ptune::GenerateOptions options{};
  options.max_new_tokens = N;
  options.greedy = true;
  options.temperature = 1.0;
  options.top_p = 1.0;
  options.pad_token_id = 0;
  std::vector<int64_t> ours(N), lengths(1);
  model_->generate(nullptr, &bos, &one, 1, 1, nullptr, 0, options, ours.data(), lengths.data());
  EXPECT_EQ(lengths[0], N);

  Llama2cRunner runner(*weights_);
  std::vector<int64_t> reference;
  std::vector<std::vector<float>> reference_logits;
  int64_t token = bos;
  for (int pos = 0; pos < N; ++pos) {
    reference_logits.push_back(runner.forward(runner.tokenEmbedding(token), pos));
    token = argmax(reference_logits.back().data(), static_cast<int64_t>(reference_logits.back().size()));
    reference.push_back(token);
  }
  // Identical tokens, unless the reference's top two logits tie within rounding (tolerance.h).
  EXPECT_EQ(ptune_test::greedyMismatch(reference, ours, [&](size_t i) { return reference_logits[i]; }), "");
  // models/README.md: greedy from BOS tells the story of Lily.
  const std::vector<int64_t> opening(reference.begin(), reference.begin() + 15);
  EXPECT_EQ(opening, ptune_test::kLilyIds);
}

TEST_F(LlamaReferenceTest, SoftPromptLogitsMatchReferenceWithVectorInputs) {
  const int64_t P = 3, C = 64, V = 512;
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  std::vector<float> prompt(static_cast<size_t>(P * C));
  for (float& x : prompt) x = normal(rng);
  const std::vector<int64_t> ids = ptune_test::lilyWithBos();
  const int64_t T = static_cast<int64_t>(ids.size());
  const std::vector<int64_t> mask(ids.size(), 1);
  std::vector<float> ours(static_cast<size_t>((P + T) * V));
  ptune::PromptSpec spec{};
  spec.method = static_cast<int32_t>(ptune::PromptMethod::kPromptTuning);
  spec.num_virtual_tokens = P;
  ptune::PromptModel soft(*model_, spec, nullptr, 0);
  soft.writeParameter("embedding", prompt.data());
  ASSERT_EQ(model_->inputVirtualTokens(&soft), P);
  model_->logits(&soft, ids.data(), mask.data(), nullptr, 1, T, ours.data());

  Llama2cRunner runner(*weights_);
  std::vector<std::vector<float>> inputs;
  for (int64_t p = 0; p < P; ++p) {
    inputs.emplace_back(prompt.begin() + p * C, prompt.begin() + (p + 1) * C);  // positions 0..2
  }
  for (int64_t id : ids) inputs.push_back(runner.tokenVector(id));  // text from position 3
  const auto reference = runner.run(inputs);
  const double err = maxError(ours.data(), reference);
  std::cout << "[ reference ] soft prompt: max |logit - reference| = " << err << std::endl;
  EXPECT_LE(err, ptune_test::fp32Tolerance(largestOf(reference)));  // relative to the logits (tolerance.h)

  // The prompt really changes the text logits (the comparison above is not vacuous).
  std::vector<float> plain(static_cast<size_t>(T * V));
  model_->logits(nullptr, ids.data(), mask.data(), nullptr, 1, T, plain.data());
  double moved = 0.0;
  for (int64_t i = 0; i < T * V; ++i) {
    moved = std::max(moved, std::abs(static_cast<double>(plain[static_cast<size_t>(i)]) -
                                     ours[static_cast<size_t>(P * V + i)]));
  }
  EXPECT_GT(moved, 1e-2);  // 10^3 x the comparison's tolerance
}

TEST_F(LlamaReferenceTest, FacadeRejectsBadInputsWithClearMessages) {
  const std::vector<int64_t> ids = {1, 512}, mask = {1, 1};
  std::vector<float> out(2 * 512);
  const std::string vocab = ptune_test::thrownMessage<std::runtime_error>(
      [&] { model_->logits(nullptr, ids.data(), mask.data(), nullptr, 1, 2, out.data()); });
  EXPECT_NE(vocab.find("token id outside the vocabulary [0, 512)"),
            std::string::npos)
      << vocab;
  // (The previous API's "prompt is null but P = 2" has no counterpart: the prompt is now a
  // PromptModel handle. Its misuse: a prompt made for another model instance.)
  const std::vector<int64_t> ok = {1, 2};
  ptune::PromptSpec spec{};
  spec.method = static_cast<int32_t>(ptune::PromptMethod::kPromptTuning);
  spec.num_virtual_tokens = 2;
  const ptune::Model other(ptune_test::kStoriesDir.c_str(), stories260kConfig());
  const ptune::PromptModel foreign(other, spec, nullptr, 0);
  const std::string wrong_model = ptune_test::thrownMessage<std::runtime_error>(
      [&] { model_->logits(&foreign, ok.data(), mask.data(), nullptr, 1, 2, out.data()); });
  EXPECT_NE(wrong_model.find("the prompt belongs to another model"), std::string::npos) << wrong_model;
  const std::string missing_dir = ptune_test::thrownMessage<std::runtime_error>(
      [&] { ptune::Model m("/nonexistent/model", stories260kConfig()); });
  EXPECT_NE(missing_dir.find("/nonexistent/model: not a directory"), std::string::npos)
      << missing_dir;
  ptune::ModelSpec wrong = stories260kConfig();
  wrong.intermediate_size = 128;
  const std::string shape = ptune_test::thrownMessage<std::runtime_error>(
      [&] { ptune::Model m(ptune_test::kStoriesDir.c_str(), wrong); });
  EXPECT_NE(shape.find("config.json and the weights disagree"), std::string::npos) << shape;
}

}  // namespace
