// Attention on CUDA: models::attention() takes libtorch's scaled_dot_product_attention there
// (models::attentionSdpa; flash / memory-efficient kernels), checked against the composed ops
// (matmul, softmax, matmul) in fp64 on the CPU, forward and the q/k/v gradients, for the masks
// the families build: causal with left padding, a KV cache and grouped-query heads (Llama),
// a sliding window (Mistral, Qwen2), ALiBi's per-head bias (BLOOM), bidirectional with right
// padding (BERT). Outputs of fully hidden queries (padding) are compared, their gradients are not
// (their loss weight is 0, as in a model). Relative to the largest magnitude: fp32 within 1e-5,
// bf16 within 1e-2 (inputs rounded to bf16 first, the reference computed from those). Built only
// with PTUNE_WITH_CUDA (toolchains/cuda.cmake); skipped where no GPU is visible.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/cuda.h>

#include <cmath>
#include <string>
#include <vector>

#include "models/blocks.h"

namespace {

namespace models = ptune::models;

struct Case {
  std::string name;
  int64_t B, H, G, S, past, D;
  bool causal;
  int64_t window;
  bool alibi;
};

std::vector<Case> cases() {
  return {{"causal_gqa_cache_left_padded", 3, 8, 2, 37, 11, 64, true, 0, false},
          {"causal_sliding_window", 2, 4, 4, 29, 3, 64, true, 8, false},
          {"causal_alibi_per_head", 2, 6, 6, 21, 0, 32, true, 0, true},
          {"bidirectional_right_padded", 3, 4, 4, 33, 0, 64, false, 0, false}};
}

/// The bias the families pass: row 1 hides three key slots (left padding, or right padding
/// when bidirectional).
at::Tensor biasOf(const Case& c, at::ScalarType dtype) {
  const int64_t K = c.past + c.S;
  at::Tensor mask = at::ones({c.B, K}, at::kBool);
  if (c.causal) mask[1].narrow(0, 0, 3).fill_(false);
  else mask[1].narrow(0, K - 3, 3).fill_(false);
  at::Tensor bias = models::attentionBias(mask, c.S, dtype, c.causal, c.window);
  if (c.alibi) bias = bias + models::alibiBias(models::alibiSlopes(c.H), mask, dtype);
  return bias;
}

struct Result {
  at::Tensor out, dq, dk, dv;
};

/// out and the gradients of sum(out * w); every tensor returned on the CPU in fp64.
Result run(const at::Tensor& q0, const at::Tensor& k0, const at::Tensor& v0, const at::Tensor& w,
           const at::Tensor& bias, double scale, bool causal, bool composed) {
  at::Tensor q = q0.clone().requires_grad_(true), k = k0.clone().requires_grad_(true),
             v = v0.clone().requires_grad_(true);
  const at::Tensor out = composed ? models::attentionComposed(q, k, v, bias, scale)
                                  : models::attention(q, k, v, bias, scale, causal);
  (out * w).sum().backward();
  const auto host = [](const at::Tensor& t) { return t.detach().cpu().to(at::kDouble); };
  return {host(out), host(q.grad()), host(k.grad()), host(v.grad())};
}

void expectRelativelyClose(const std::string& what, const at::Tensor& got, const at::Tensor& want, double rel) {
  const double scale = want.abs().max().item<double>();
  const double error = (got - want).abs().max().item<double>();
  EXPECT_LE(error, rel * scale) << what << ": max |sdpa - composed| " << error << " (magnitude " << scale << ")";
}

TEST(CudaAttentionTest, SdpaEqualsComposedOpsForEveryMask) {
  if (!torch::cuda::is_available()) {
    GTEST_SKIP() << "no CUDA device visible";
  }
  ASSERT_TRUE(models::sdpaAvailable());
  for (const Case& c : cases()) {
    for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
      at::manual_seed(11);
      const int64_t K = c.past + c.S;
      const auto o = at::TensorOptions().dtype(at::kDouble);
      // Inputs rounded to the dtype once; the reference reads those rounded values.
      const at::Tensor q = (at::randn({c.B, c.H, c.S, c.D}, o) * 1.5).to(dtype);
      const at::Tensor k = (at::randn({c.B, c.G, K, c.D}, o) * 1.5).to(dtype);
      const at::Tensor v = at::randn({c.B, c.G, K, c.D}, o).to(dtype);
      // Fully hidden queries (padding, row 1's first 3 - past with past < 3) get other gradients
      // from libtorch's kernels than from the composed softmax; no loss reads padding, so their
      // weight is 0, as in a model (AttentionKernelTest.LibtorchSdpaEqualsComposedOps does the same).
      at::Tensor w = at::randn({c.B, c.H, c.S, c.D}, o).to(dtype);
      if (c.causal && c.past < 3) w[1].narrow(1, 0, 3 - c.past).zero_();
      const double scale = 1.0 / std::sqrt(static_cast<double>(c.D));
      const Result want = run(q.to(at::kDouble), k.to(at::kDouble), v.to(at::kDouble), w.to(at::kDouble),
                              biasOf(c, at::kDouble), scale, c.causal, /*composed=*/true);
      const Result got = run(q.to(at::kCUDA), k.to(at::kCUDA), v.to(at::kCUDA), w.to(at::kCUDA),
                             biasOf(c, dtype).to(at::kCUDA), scale, c.causal, /*composed=*/false);
      const bool bf16 = dtype == at::kBFloat16;
      const double rel = bf16 ? 1e-2 : 1e-5;
      const std::string label = c.name + (bf16 ? " bf16" : " fp32");
      expectRelativelyClose(label + " out", got.out, want.out, rel);
      expectRelativelyClose(label + " dq", got.dq, want.dq, rel);
      expectRelativelyClose(label + " dk", got.dk, want.dk, rel);
      expectRelativelyClose(label + " dv", got.dv, want.dv, rel);
    }
  }
}

}  // namespace
