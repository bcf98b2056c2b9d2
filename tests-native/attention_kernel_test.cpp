// The fused CPU attention kernel (models/attention) against the same attention composed from
// libtorch's own ops (matmul, softmax, matmul; models::attentionComposed), forward and the
// gradients of q, k and v, for every mask the model families build: causal with left padding,
// a KV cache / prefix before the queries and grouped-query heads (Llama), a sliding window
// (Mistral, Qwen2), ALiBi's per-head bias (BLOOM), bidirectional with right padding (BERT), and
// sizes that are no multiple of the vector width. Fully hidden queries (padding in a left-padded
// causal batch) must come out as the composed softmax makes them: uniform over all keys. Both
// builds of the kernel (portable, AVX2 + FMA where the CPU has them) in fp32 and fp64, and
// central finite differences through the kernel's own backward in fp64. In a PyTorch 2.x build,
// libtorch's scaled_dot_product_attention (the CUDA path) against the same reference.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not in ATen.h of libtorch 2.x)

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gradient_check.h"
#include "models/attention/fused_attention.h"
#include "models/blocks.h"
#include "tolerance.h"

namespace {

namespace models = ptune::models;
namespace kernel = ptune::models::attention_kernel;
using ptune_test::fp32Tolerance;
using ptune_test::fp64Tolerance;

struct Case {
  std::string name;
  int64_t B, H, G, S, past, D;
  bool causal;
  int64_t window;  // causal sliding window (0: none)
  bool alibi;      // add BLOOM's per-head bias
  bool left_pad;   // row 1 left-padded (causal) / right-padded (bidirectional)
};

std::vector<Case> cases() {
  return {{"causal_gqa_cache_left_padded", 3, 4, 2, 5, 3, 8, true, 0, false, true},
          {"causal_sliding_window", 2, 4, 4, 9, 2, 8, true, 3, false, true},
          {"causal_alibi_per_head", 2, 6, 6, 7, 0, 4, true, 0, true, true},
          {"bidirectional_right_padded", 3, 2, 2, 11, 0, 16, false, 0, false, true},
          {"odd_sizes_no_padding", 2, 3, 1, 19, 4, 5, true, 0, false, false}};
}

/// key_mask (B, K) bool: row 1 hides its first three slots (left padding, cache included) or,
/// bidirectional, its last three (right padding).
at::Tensor keyMask(const Case& c) {
  const int64_t K = c.past + c.S;
  at::Tensor mask = at::ones({c.B, K}, at::kBool);
  if (c.left_pad) {
    if (c.causal) mask[1].narrow(0, 0, 3).fill_(false);
    else mask[1].narrow(0, K - 3, 3).fill_(false);
  }
  return mask;
}

/// The bias the families pass to attention(): (B, 1, S, K), or (B, H, S, K) with ALiBi.
at::Tensor biasOf(const Case& c, at::ScalarType dtype) {
  const at::Tensor mask = keyMask(c);
  at::Tensor bias = models::attentionBias(mask, c.S, dtype, c.causal, c.window);
  if (c.alibi) bias = bias + models::alibiBias(models::alibiSlopes(c.H), mask, dtype);
  return bias;
}

struct Result {
  at::Tensor out, dq, dk, dv;
};

/// out and the gradients of sum(out * w) for q (B, H, S, D), k, v (B, G, K, D).
template <typename F>
Result run(const at::Tensor& q0, const at::Tensor& k0, const at::Tensor& v0, const at::Tensor& w, F attend) {
  at::Tensor q = q0.clone().requires_grad_(true), k = k0.clone().requires_grad_(true),
             v = v0.clone().requires_grad_(true);
  // The families pass q, k, v as transposed views of (B, S, heads, D) projections.
  const at::Tensor out = attend(q.transpose(1, 2).contiguous().transpose(1, 2), k, v);
  (out * w).sum().backward();
  return {out.detach(), q.grad(), k.grad(), v.grad()};
}

struct Inputs {
  at::Tensor q, k, v, w;
};

Inputs inputs(const Case& c, at::ScalarType dtype, uint64_t seed) {
  at::manual_seed(static_cast<int64_t>(seed));
  const auto o = at::TensorOptions().dtype(at::kDouble);
  const int64_t K = c.past + c.S;
  // Scores of a few units, as in a trained model, so the softmax is neither flat nor one-hot.
  return {(at::randn({c.B, c.H, c.S, c.D}, o) * 1.5).to(dtype), (at::randn({c.B, c.G, K, c.D}, o) * 1.5).to(dtype),
          at::randn({c.B, c.G, K, c.D}, o).to(dtype), at::randn({c.B, c.H, c.S, c.D}, o).to(dtype)};
}

/// Ulps of the magnitude between two evaluations that round differently: a dot product of
/// length D, a softmax over K keys (exp within 2 ulps, a sum of K terms) and a weighted sum of K
/// values, each reduction of n terms ~sqrt(n) ulps; the backward chains twice as many. 8x that
/// leaves room for other vector widths; a wrong mask or term is off by 1e-2 of the magnitude.
double ulpsFor(const Case& c) {
  const double K = static_cast<double>(c.past + c.S);
  return 8 * 2 * (std::sqrt(static_cast<double>(c.D)) + 2 * std::sqrt(K) + 2);
}

void expectClose(const std::string& what, const at::Tensor& actual, const at::Tensor& expected, double ulps,
                 bool fp32) {
  const double scale = expected.abs().max().item<double>();
  const double tolerance = fp32 ? fp32Tolerance(scale, ulps) : fp64Tolerance(scale, ulps);
  const double error = (actual.to(at::kDouble) - expected.to(at::kDouble)).abs().max().item<double>();
  EXPECT_LE(error, tolerance) << what << ": max |fused - composed| " << error << " (magnitude " << scale << ")";
}

std::vector<kernel::Variant> variants() {
  std::vector<kernel::Variant> out = {kernel::Variant::kBase};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) out.push_back(kernel::Variant::kAvx2);
  return out;
}

class AttentionKernelTest : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionKernelTest, EqualsComposedOpsInDouble) {
  const Case& c = GetParam();
  const Inputs in = inputs(c, at::kDouble, 1);
  const at::Tensor bias = biasOf(c, at::kDouble);
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));
  const Result want = run(in.q, in.k, in.v, in.w, [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
    return models::attentionComposed(q, k, v, bias, scale);
  });
  const Result got = run(in.q, in.k, in.v, in.w, [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
    return kernel::fused(q, k, v, bias, scale, c.causal, kernel::Variant::kBase);
  });
  const double ulps = ulpsFor(c);
  expectClose(c.name + " out", got.out, want.out, ulps, false);
  expectClose(c.name + " dq", got.dq, want.dq, 2 * ulps, false);
  expectClose(c.name + " dk", got.dk, want.dk, 2 * ulps, false);
  expectClose(c.name + " dv", got.dv, want.dv, 2 * ulps, false);
  // attention() itself takes the fused path for CPU fp64.
  const at::Tensor via_blocks = models::attention(in.q, in.k, in.v, bias, scale, c.causal);
  expectClose(c.name + " attention()", via_blocks, want.out, ulps, false);
}

TEST_P(AttentionKernelTest, EveryBuildEqualsComposedOpsInFloat) {
  const Case& c = GetParam();
  const Inputs ref = inputs(c, at::kDouble, 2);
  const at::Tensor bias64 = biasOf(c, at::kDouble), bias32 = biasOf(c, at::kFloat);
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));
  // The reference: the composed ops in fp64 on the fp32 inputs.
  const at::Tensor q32 = ref.q.to(at::kFloat), k32 = ref.k.to(at::kFloat), v32 = ref.v.to(at::kFloat),
                   w32 = ref.w.to(at::kFloat);
  const Result want = run(q32.to(at::kDouble), k32.to(at::kDouble), v32.to(at::kDouble), w32.to(at::kDouble),
                          [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
                            return models::attentionComposed(q, k, v, bias64, scale);
                          });
  const Result composed32 = run(q32, k32, v32, w32, [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
    return models::attentionComposed(q, k, v, bias32, scale);
  });
  const double ulps = ulpsFor(c);
  expectClose(c.name + " composed fp32 out", composed32.out, want.out, ulps, true);
  for (const kernel::Variant variant : variants()) {
    const std::string label = c.name + (variant == kernel::Variant::kAvx2 ? " avx2" : " base");
    const Result got = run(q32, k32, v32, w32, [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
      return kernel::fused(q, k, v, bias32, scale, c.causal, variant);
    });
    expectClose(label + " out", got.out, want.out, ulps, true);
    expectClose(label + " dq", got.dq, want.dq, 2 * ulps, true);
    expectClose(label + " dk", got.dk, want.dk, 2 * ulps, true);
    expectClose(label + " dv", got.dv, want.dv, 2 * ulps, true);
  }
}

TEST_P(AttentionKernelTest, ReadsKeysFromAPreallocatedCache) {
  // Decoding keeps keys/values in (B, G, capacity, D) storage and attends to its first K slots
  // (KvCache::reserve): the kernel reads that view in place, with the contiguous result.
  const Case& c = GetParam();
  const Inputs in = inputs(c, at::kFloat, 5);
  const at::Tensor bias = biasOf(c, at::kFloat);
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));
  const int64_t K = c.past + c.S;
  at::Tensor k_storage = at::full({c.B, c.G, K + 5, c.D}, 1e30, at::kFloat);
  at::Tensor v_storage = at::full({c.B, c.G, K + 5, c.D}, -1e30, at::kFloat);
  k_storage.narrow(2, 0, K).copy_(in.k);
  v_storage.narrow(2, 0, K).copy_(in.v);
  at::NoGradGuard no_grad;
  for (const kernel::Variant variant : variants()) {
    const at::Tensor want = kernel::fused(in.q, in.k, in.v, bias, scale, c.causal, variant);
    const at::Tensor got =
        kernel::fused(in.q, k_storage.narrow(2, 0, K), v_storage.narrow(2, 0, K), bias, scale, c.causal, variant);
    EXPECT_TRUE(at::equal(got, want)) << c.name << ": a strided cache view gives another result";
  }
}

TEST_P(AttentionKernelTest, FullyHiddenQueriesAreUniformOverAllKeys) {
  const Case& c = GetParam();
  if (!c.causal || !c.left_pad || c.past >= 3) GTEST_SKIP() << "no query of this case is fully hidden";
  // Row 1's first 3 - past queries are padding that sees no key: the composed softmax of equal
  // (lowest) scores averages every value row of the key/value head.
  const Inputs in = inputs(c, at::kFloat, 3);
  const at::Tensor bias = biasOf(c, at::kFloat);
  const at::Tensor out = kernel::fused(in.q, in.k, in.v, bias, 1.0 / std::sqrt(static_cast<double>(c.D)), true);
  const int64_t groups = c.H / c.G;
  for (int64_t h = 0; h < c.H; ++h) {
    const at::Tensor mean = in.v[1][h / groups].mean(0);
    for (int64_t i = 0; i < 3 - c.past; ++i) {
      EXPECT_TRUE(at::allclose(out[1][h][i], mean, 1e-5, 1e-6)) << c.name << " head " << h << " query " << i;
    }
  }
}

TEST_P(AttentionKernelTest, BackwardMatchesFiniteDifferences) {
  const Case& c = GetParam();
  const Inputs in = inputs(c, at::kDouble, 4);
  const at::Tensor bias = biasOf(c, at::kDouble);
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));
  at::Tensor q = in.q.clone(), k = in.k.clone(), v = in.v.clone();
  // Fully hidden queries are padding, which no loss reads: their scores all round to the lowest
  // value, so a finite difference cannot see the (shift-invariant) softmax gradient autograd
  // gives them. Their weight in the loss is 0, as padding's is.
  at::Tensor w = in.w.clone();
  if (c.causal && c.left_pad && c.past < 3) w[1].narrow(1, 0, 3 - c.past).zero_();
  const auto loss = [&] {
    at::NoGradGuard no_grad;
    return (kernel::fused(q, k, v, bias, scale, c.causal, kernel::Variant::kBase) * w).sum().item<double>();
  };
  const Result grads = run(q, k, v, w, [&](const at::Tensor& a, const at::Tensor& b, const at::Tensor& d) {
    return kernel::fused(a, b, d, bias, scale, c.causal, kernel::Variant::kBase);
  });
  std::mt19937 rng(7);
  ptune_test::GradientReport report;
  ptune_test::checkComponents(c.name + " q", q, grads.dq, 12, rng, loss, report);
  ptune_test::checkComponents(c.name + " k", k, grads.dk, 12, rng, loss, report);
  ptune_test::checkComponents(c.name + " v", v, grads.dv, 12, rng, loss, report);
  std::cout << "[ fused attention FD ] " << c.name << ": worst error / bound " << report.worst_ratio << std::endl;
}

TEST_P(AttentionKernelTest, LibtorchSdpaEqualsComposedOps) {
  // The path of CUDA tensors in a PyTorch 2.x build (models::attentionSdpa), checked here on the
  // CPU, where libtorch's scaled_dot_product_attention runs its own CPU kernels: every mask the
  // families build, grouped-query heads through enable_gqa, forward and q/k/v gradients, against
  // the composed ops in fp64. ptune_cuda_tests checks the same on a GPU.
  if (!models::sdpaAvailable()) {
    GTEST_SKIP() << "libtorch 1.x has no scaled_dot_product_attention (a PyTorch 2.x build runs this)";
  }
  const Case& c = GetParam();
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));
  const double ulps = ulpsFor(c);
  for (const at::ScalarType dtype : {at::kDouble, at::kFloat}) {
    const Inputs ref = inputs(c, at::kDouble, 6);
    const at::Tensor q = ref.q.to(dtype), k = ref.k.to(dtype), v = ref.v.to(dtype);
    // Fully hidden queries (padding that sees no key) come out uniform as in the composed ops,
    // but libtorch's backward gives them other gradients than autograd through the composed
    // softmax. No loss reads padding, so the weight on them is 0, as in a model: then q, k and v
    // gradients must agree everywhere.
    at::Tensor w = ref.w.to(dtype);
    if (c.causal && c.left_pad && c.past < 3) w[1].narrow(1, 0, 3 - c.past).zero_();
    const at::Tensor bias = biasOf(c, dtype), bias64 = biasOf(c, at::kDouble);
    const Result want = run(q.to(at::kDouble), k.to(at::kDouble), v.to(at::kDouble), w.to(at::kDouble),
                            [&](const at::Tensor& a, const at::Tensor& b, const at::Tensor& d) {
                              return models::attentionComposed(a, b, d, bias64, scale);
                            });
    const Result got = run(q, k, v, w, [&](const at::Tensor& a, const at::Tensor& b, const at::Tensor& d) {
      return models::attentionSdpa(a, b, d, bias, scale);
    });
    const bool fp32 = dtype == at::kFloat;
    const std::string label = c.name + (fp32 ? " sdpa fp32" : " sdpa fp64");
    expectClose(label + " out", got.out, want.out, ulps, fp32);
    expectClose(label + " dq", got.dq, want.dq, 2 * ulps, fp32);
    expectClose(label + " dk", got.dk, want.dk, 2 * ulps, fp32);
    expectClose(label + " dv", got.dv, want.dv, 2 * ulps, fp32);
  }
}

TEST(AttentionKernel, SdpaIsRefusedWithoutPyTorch2) {
  if (models::sdpaAvailable()) GTEST_SKIP() << "this build's libtorch has scaled_dot_product_attention";
  const at::Tensor q = at::randn({1, 2, 3, 4});
  try {
    models::attentionSdpa(q, q, q, at::zeros({1, 1, 3, 3}), 0.5);
    FAIL() << "attentionSdpa ran on libtorch 1.x";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("scaled_dot_product_attention"), std::string::npos) << e.what();
  }
}

TEST(AttentionKernel, RefusesWhatItDoesNotHandle) {
  const at::Tensor q = at::randn({1, 2, 3, 4}), k = at::randn({1, 2, 3, 4});
  const at::Tensor bias = at::zeros({1, 1, 3, 3});
  EXPECT_FALSE(kernel::applies(q.to(at::kHalf), bias.to(at::kHalf)));
  EXPECT_FALSE(kernel::applies(q, bias.to(at::kDouble)));
  EXPECT_THROW(kernel::fused(q, k, k, at::zeros({1, 1, 3, 5}), 0.5, false), std::exception);  // bias keys
  EXPECT_THROW(kernel::fused(q, at::randn({1, 3, 3, 4}), at::randn({1, 3, 3, 4}), bias, 0.5, false),
               std::exception);  // 2 query heads over 3 key/value heads
}

INSTANTIATE_TEST_SUITE_P(Masks, AttentionKernelTest, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

}  // namespace
