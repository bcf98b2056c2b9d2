// The fused elementwise kernels (models/elementwise: RMSNorm, rotary embedding with the heads'
// move, the SiLU-gated product) against the same computations composed from libtorch's own ops
// (models::applyRotary, at::silu, the RMSNorm formula of transformers' LlamaRMSNorm), forward and
// every gradient, in fp32 and fp64, in both builds (portable; AVX2 + FMA where the CPU has them),
// at sizes that are and are not multiples of the vector width; and central finite differences
// through the kernels' own backward in fp64. Plus the dispatch in models/blocks.cpp: bf16 keeps
// the composed ops, bad shapes get a clear error; GPT-2's GELU is transformers' formula.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not in ATen.h of libtorch 2.x)

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/check.h"
#include "gradient_check.h"
#include "models/blocks.h"
#include "models/elementwise/fused.h"
#include "tolerance.h"

namespace {

namespace models = ptune::models;
namespace fused = ptune::models::elementwise;
using ptune::KernelVariant;

std::vector<KernelVariant> variants() {
  std::vector<KernelVariant> out = {KernelVariant::kBase};
  if (ptune::cpuHasAvx2Fma()) out.push_back(KernelVariant::kAvx2);
  return out;
}

std::string nameOf(KernelVariant v, at::ScalarType dtype) {
  return std::string(v == KernelVariant::kAvx2 ? "avx2" : "base") + (dtype == at::kFloat ? " fp32" : " fp64");
}

/// max |actual - expected| within `ulps` of the expected values' magnitude in the dtype's precision.
void expectClose(const std::string& what, const at::Tensor& actual, const at::Tensor& expected, double ulps,
                 at::ScalarType dtype) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const double scale = expected.abs().max().item<double>();
  const double tolerance = dtype == at::kFloat ? ptune_test::fp32Tolerance(scale, ulps)
                                               : ptune_test::fp64Tolerance(scale, ulps);
  const double error = (actual.to(at::kDouble) - expected.to(at::kDouble)).abs().max().item<double>();
  EXPECT_LE(error, tolerance) << what << ": max |fused - composed| " << error << " (magnitude " << scale << ")";
}

/// Outputs and the input gradients of sum(f(inputs) * w), inputs cloned as leaves.
struct Outcome {
  at::Tensor out;
  std::vector<at::Tensor> grads;
};
Outcome run(const std::vector<at::Tensor>& inputs, const at::Tensor& w,
        const std::function<at::Tensor(const std::vector<at::Tensor>&)>& f) {
  std::vector<at::Tensor> leaves;
  for (const auto& t : inputs) leaves.push_back(t.clone().requires_grad_(true));
  const at::Tensor out = f(leaves);
  (out * w).sum().backward();
  Outcome r{out.detach(), {}};
  for (const auto& l : leaves) r.grads.push_back(l.grad());
  return r;
}

at::Tensor composedRmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  return weight * (x * at::rsqrt(x.pow(2).mean(-1, true) + eps));
}

// A reduction over C values rounds to ~sqrt(C) ulps, the normalisation adds a few; the backward
// chains two such reductions. 8x for other vector widths; a wrong term is off by 1e-2 or more.
double rmsUlps(int64_t C) { return 8 * (4 * std::sqrt(static_cast<double>(C)) + 8); }

TEST(ElementwiseKernelTest, RmsNormEqualsComposedOps) {
  for (const at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    for (const int64_t C : {64, 37, 512}) {
      at::manual_seed(C);
      const auto o = at::TensorOptions().dtype(at::kDouble);
      // Rows of unequal scale, as hidden states are; weights around 1.
      const at::Tensor x = (at::randn({3, 5, C}, o) * at::rand({3, 5, 1}, o) * 4).to(dtype);
      const at::Tensor weight = (1 + 0.3 * at::randn({C}, o)).to(dtype), w = at::randn({3, 5, C}, o).to(dtype);
      const Outcome want = run({x, weight}, w, [](const auto& in) { return composedRmsNorm(in[0], in[1], 1e-5); });
      for (const KernelVariant v : variants()) {
        const std::string label = nameOf(v, dtype) + " C=" + std::to_string(C);
        const Outcome got = run({x, weight}, w, [&](const auto& in) { return fused::rmsNorm(in[0], in[1], 1e-5, v); });
        expectClose(label + " out", got.out, want.out, rmsUlps(C), dtype);
        expectClose(label + " d x", got.grads[0], want.grads[0], rmsUlps(C), dtype);
        expectClose(label + " d weight", got.grads[1], want.grads[1], rmsUlps(C) * 8, dtype);  // sum of 15 rows
      }
    }
  }
}

TEST(ElementwiseKernelTest, RmsNormThroughBlocksKeepsComposedOpsForBf16) {
  // models::rmsNorm takes the kernel for fp32 and the composed ops (fp32 maths, bf16 result) for bf16.
  at::manual_seed(1);
  const at::Tensor x = at::randn({2, 3, 16}), weight = 1 + 0.1 * at::randn({16});
  expectClose("fp32", models::rmsNorm(x, weight, 1e-6), composedRmsNorm(x, weight, 1e-6), rmsUlps(16), at::kFloat);
  const at::Tensor x16 = x.to(at::kBFloat16), w16 = weight.to(at::kBFloat16);
  const at::Tensor want = w16 * (x16.to(at::kFloat) * at::rsqrt(x16.to(at::kFloat).pow(2).mean(-1, true) + 1e-6))
                                    .to(at::kBFloat16);
  EXPECT_TRUE(at::equal(models::rmsNorm(x16, w16, 1e-6), want));
}

/// cos, sin (B or 1, 1, S, D) of the rotate_half convention (as models::Rotary::tables), at
/// positions with left padding so rows differ.
void rotaryTables(int64_t B, int64_t S, int64_t D, at::ScalarType dtype, at::Tensor& cos, at::Tensor& sin) {
  const auto o = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor positions = at::arange(S, o).unsqueeze(0) + at::arange(B, o).unsqueeze(1) * 3;  // (B, S)
  const at::Tensor inv_freq = 1.0 / at::pow(10000.0, at::arange(0, D, 2, o) / static_cast<double>(D));
  const at::Tensor freqs = positions.unsqueeze(-1) * inv_freq;  // (B, S, D/2)
  const at::Tensor emb = at::cat({freqs, freqs}, -1);
  cos = emb.cos().unsqueeze(1).to(dtype);
  sin = emb.sin().unsqueeze(1).to(dtype);
}

TEST(ElementwiseKernelTest, RotaryHeadsEqualsComposedOps) {
  struct Shape {
    int64_t B, S, N, D;
    bool shared_tables;  // cos/sin (1, 1, S, D) for every row
  };
  for (const at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    for (const Shape sh : {Shape{2, 7, 3, 8, false}, Shape{3, 5, 2, 64, false}, Shape{1, 9, 4, 6, true},
                           Shape{2, 4, 2, 16, true}}) {
      at::manual_seed(sh.D);
      at::Tensor cos, sin;
      rotaryTables(sh.shared_tables ? 1 : sh.B, sh.S, sh.D, dtype, cos, sin);
      const auto o = at::TensorOptions().dtype(at::kDouble);
      // x as the projection makes it: a (B, S, N*D) tensor viewed as heads; here a slice of a wider
      // one, so the batch and position strides are not those of a contiguous tensor.
      const at::Tensor wide = at::randn({sh.B, sh.S, sh.N * sh.D + 5}, o).to(dtype);
      const at::Tensor x = wide.narrow(2, 2, sh.N * sh.D).view({sh.B, sh.S, sh.N, sh.D});
      const at::Tensor w = at::randn({sh.B, sh.N, sh.S, sh.D}, o).to(dtype);
      const Outcome want = run({x}, w, [&](const auto& in) { return models::applyRotary(in[0].transpose(1, 2), cos, sin); });
      for (const KernelVariant v : variants()) {
        const std::string label = nameOf(v, dtype) + " D=" + std::to_string(sh.D);
        const Outcome got = run({x}, w, [&](const auto& in) { return fused::rotaryHeads(in[0], cos, sin, v); });
        EXPECT_TRUE(got.out.is_contiguous()) << label;
        expectClose(label + " out", got.out, want.out, 8, dtype);  // two products and a sum
        expectClose(label + " d x", got.grads[0], want.grads[0], 8, dtype);
      }
    }
  }
}

TEST(ElementwiseKernelTest, SiluMulEqualsComposedOps) {
  for (const at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    at::manual_seed(3);
    const auto o = at::TensorOptions().dtype(at::kDouble);
    // 1000 + 3 values (no whole number of vectors), gates up to |8|, plus the tails of exp.
    at::Tensor gate = at::randn({17, 59}, o) * 3;
    gate[0][0] = -90;
    gate[0][1] = 90;
    gate[0][2] = 0;
    gate[0][3] = -30;
    gate = gate.to(dtype);
    const at::Tensor up = at::randn({17, 59}, o).to(dtype), w = at::randn({17, 59}, o).to(dtype);
    const Outcome want = run({gate, up}, w, [](const auto& in) { return at::silu(in[0]) * in[1]; });
    for (const KernelVariant v : variants()) {
      const std::string label = nameOf(v, dtype);
      const Outcome got = run({gate, up}, w, [&](const auto& in) { return fused::siluMul(in[0], in[1], v); });
      // exp within ~2 ulps, a division and a few products: each element within 16 ulps of the
      // magnitude of its terms (d gate = w up s (1 + g (1 - s)) cancels near g = -1.28).
      const at::Tensor g = gate.to(at::kDouble), s = at::sigmoid(g), wu = (w * up).to(at::kDouble).abs();
      const at::Tensor terms[] = {want.out.to(at::kDouble).abs(), wu * s * (1 + g.abs() * (1 - s)),
                                  want.grads[1].to(at::kDouble).abs()};
      for (int i = 0; i < 3; ++i) {
        const at::Tensor a = i == 0 ? got.out : got.grads[i - 1], b = i == 0 ? want.out : want.grads[i - 1];
        const double eps = dtype == at::kFloat ? ptune_test::kEps32 : ptune_test::kEps64;
        const at::Tensor err = (a.to(at::kDouble) - b.to(at::kDouble)).abs();
        const at::Tensor allowed = 16 * eps * terms[i] + 1e-30;
        EXPECT_TRUE(err.le(allowed).all().item<bool>())
            << label << (i == 0 ? " out" : i == 1 ? " d gate" : " d up") << ": worst error / allowed "
            << (err / allowed).max().item<double>();
      }
    }
  }
}

TEST(ElementwiseKernelTest, GatedActivationDispatch) {
  at::manual_seed(4);
  const at::Tensor gate = at::randn({4, 9}), up = at::randn({4, 9});
  // SiLU takes the kernel; other activations and bf16 the composed ops.
  expectClose("silu", models::gatedActivation(gate, up, ptune::Activation::kSilu), at::silu(gate) * up, 16,
              at::kFloat);
  EXPECT_TRUE(at::equal(models::gatedActivation(gate, up, ptune::Activation::kGeluExact), at::gelu(gate) * up));
  const at::Tensor g16 = gate.to(at::kBFloat16), u16 = up.to(at::kBFloat16);
  EXPECT_TRUE(at::equal(models::gatedActivation(g16, u16, ptune::Activation::kSilu), at::silu(g16) * u16));
}

TEST(ElementwiseKernelTest, GeluTanhIsTransformersNewGelu) {
  // GPT-2's activation runs as libtorch's tanh-approximate GELU: the formula of transformers'
  // NewGELUActivation, forward and gradient, within a few ulps.
  for (const at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    at::manual_seed(8);
    const at::Tensor x = (at::randn({7, 33}, at::kDouble) * 3).to(dtype), w = at::randn({7, 33}).to(dtype);
    const Outcome want = run({x}, w, [](const auto& in) {
      return 0.5 * in[0] * (1.0 + at::tanh(std::sqrt(2.0 / M_PI) * (in[0] + 0.044715 * at::pow(in[0], 3.0))));
    });
    const Outcome got = run({x}, w, [](const auto& in) { return models::activate(in[0], ptune::Activation::kGeluTanh); });
    expectClose("gelu tanh out", got.out, want.out, 16, dtype);
    expectClose("gelu tanh d x", got.grads[0], want.grads[0], 16, dtype);
  }
}

TEST(ElementwiseKernelTest, BackwardMatchesFiniteDifferences) {
  // Each kernel's own backward in fp64 against central differences of sum(f(x) * w).
  at::manual_seed(5);
  const auto o = at::TensorOptions().dtype(at::kDouble);
  std::mt19937 rng(11);
  ptune_test::GradientReport report;
  const auto check = [&](const std::string& name, std::vector<at::Tensor> inputs, const at::Tensor& w,
                         const std::function<at::Tensor(const std::vector<at::Tensor>&)>& f) {
    const Outcome r = run(inputs, w, f);
    const auto loss = [&] {
      at::NoGradGuard no_grad;
      return (f(inputs) * w).sum().item<double>();
    };
    for (size_t i = 0; i < inputs.size(); ++i) {
      ptune_test::checkComponents(name + " input " + std::to_string(i), inputs[i], r.grads[i], 16, rng, loss,
                                  report);
    }
  };
  check("rms_norm", {at::randn({2, 3, 24}, o) * 2, 1 + 0.3 * at::randn({24}, o)}, at::randn({2, 3, 24}, o),
        [](const auto& in) { return fused::rmsNorm(in[0], in[1], 1e-6, KernelVariant::kBase); });
  at::Tensor cos, sin;
  rotaryTables(2, 5, 8, at::kDouble, cos, sin);
  check("rotary", {at::randn({2, 5, 3, 8}, o)}, at::randn({2, 3, 5, 8}, o),
        [&](const auto& in) { return fused::rotaryHeads(in[0], cos, sin, KernelVariant::kBase); });
  check("silu_mul", {at::randn({6, 11}, o) * 3, at::randn({6, 11}, o)}, at::randn({6, 11}, o),
        [](const auto& in) { return fused::siluMul(in[0], in[1], KernelVariant::kBase); });
  std::cout << "[ fused elementwise FD ] worst error / bound " << report.worst_ratio << " over "
            << report.components << " components" << std::endl;
}

TEST(ElementwiseKernelTest, BadShapesAreRefused) {
  at::Tensor cos, sin;
  rotaryTables(1, 4, 6, at::kFloat, cos, sin);
  EXPECT_THROW(fused::rotaryHeads(at::randn({1, 4, 2, 5}), cos, sin), ptune::Error);  // odd head dim
  EXPECT_THROW(fused::rotaryHeads(at::randn({1, 3, 2, 6}), cos, sin), ptune::Error);  // positions differ
  EXPECT_THROW(fused::rmsNorm(at::randn({2, 8}), at::ones({7}), 1e-6), ptune::Error);
  EXPECT_THROW(fused::siluMul(at::randn({2, 8}), at::randn({2, 7})), ptune::Error);
  EXPECT_THROW(fused::siluMul(at::randn({2, 8}).to(at::kBFloat16), at::randn({2, 8}).to(at::kBFloat16)),
               ptune::Error);
}

}  // namespace
