// Optimizer pieces against their references: the fused AdamW kernel vs torch::optim::AdamW,
// global-norm clipping vs a hand computation, and the learning-rate schedules vs the formulas
// of transformers' get_{constant,linear,cosine}_schedule_with_warmup.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/check.h"
#include "optim/adamw.h"
#include "test_support.h"
#include "tolerance.h"

namespace {

using ptune::LrSchedule;
using ptune::optim::adamwStep;
using ptune::optim::AdamWHyper;
using ptune::optim::clipGradNorm;
using ptune::optim::scheduleFactor;

// The key of a parameter in torch::optim's state map: its TensorImpl's address, formatted as a
// string in libtorch 1.x (c10::guts::to_string) and the pointer itself in libtorch 2.x.
template <typename Key>
Key optimizerStateKey(const at::Tensor& param) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream key;
    key << param.unsafeGetTensorImpl();
    return key.str();
  } else {
    return param.unsafeGetTensorImpl();
  }
}

TEST(AdamWTest, MatchesTorchAdamWOverTenSteps) {
  at::manual_seed(3);
  const AdamWHyper hyper{1e-2, 0.9, 0.999, 1e-8, 0.01};
  // Two parameters of different shapes, as a prompt and an encoder weight would be.
  std::vector<at::Tensor> ours = {at::randn({5, 7}), at::randn({13})};
  std::vector<at::Tensor> initial, torch_params, exp_avg, exp_avg_sq;
  for (const auto& p : ours) {
    initial.push_back(p.clone());
    torch_params.push_back(p.clone().set_requires_grad(true));
    exp_avg.push_back(at::zeros_like(p));
    exp_avg_sq.push_back(at::zeros_like(p));
  }
  torch::optim::AdamW reference(
      torch_params, torch::optim::AdamWOptions(hyper.lr)
                        .betas(std::make_tuple(hyper.beta1, hyper.beta2))
                        .eps(hyper.eps)
                        .weight_decay(hyper.weight_decay));
  using StateKey = std::decay_t<decltype(reference.state())>::key_type;
  double worst_update = 0.0, worst_v = 0.0;
  for (int64_t step = 1; step <= 10; ++step) {
    // fp32, the same elementwise formulas in another order: a few ulps per step, accumulated.
    const double tol = static_cast<double>(step) * ptune_test::fp32Tolerance(1.0, ptune_test::kElementwiseUlps);
    for (size_t i = 0; i < ours.size(); ++i) {
      const at::Tensor grad = at::randn(ours[i].sizes()) * (0.1 * static_cast<double>(i + 1));
      adamwStep(ours[i], grad, exp_avg[i], exp_avg_sq[i], step, hyper);
      torch_params[i].mutable_grad() = grad.clone();
    }
    reference.step();
    for (size_t i = 0; i < ours.size(); ++i) {
      const at::Tensor expected = torch_params[i].detach();
      // relative error of the total update so far (parameter values near 0 make an elementwise
      // relative error meaningless), and elementwise on entries of magnitude >= 0.1
      const double update_rel = (ours[i] - expected).norm().item<double>() /
                                (expected - initial[i]).norm().item<double>();
      EXPECT_LE(update_rel, tol) << "parameter " << i << " after step " << step;
      const at::Tensor big = expected.abs().ge(0.1);
      const double rel = ((ours[i] - expected).abs() / expected.abs()).masked_select(big).max().item<double>();
      EXPECT_LE(rel, tol) << "parameter " << i << " after step " << step;
      // The moments agree too (torch forms 1 - beta in double, then rounds once to fp32).
      const auto& state = static_cast<const torch::optim::AdamWParamState&>(
          *reference.state().at(optimizerStateKey<StateKey>(torch_params[i])));
      const double m_rel = (exp_avg[i] - state.exp_avg()).norm().item<double>() /
                           state.exp_avg().norm().item<double>();
      const double v_rel = (exp_avg_sq[i] - state.exp_avg_sq()).norm().item<double>() /
                           state.exp_avg_sq().norm().item<double>();
      EXPECT_LE(m_rel, tol) << "exp_avg of parameter " << i << " after step " << step;
      EXPECT_LE(v_rel, tol) << "exp_avg_sq of parameter " << i << " after step " << step;
      worst_update = std::max(worst_update, update_rel);
      worst_v = std::max(worst_v, v_rel);
    }
  }
  std::cout << "[ adamw     ] vs torch::optim::AdamW: worst relative update error " << worst_update
            << ", worst exp_avg_sq relative error " << worst_v << std::endl;
  // The parameters really moved (about lr per step).
  EXPECT_GT((ours[0] - initial[0]).abs().mean().item<double>(), 0.02);
}

TEST(AdamWTest, FirstStepClosedFormInDouble) {
  // Step 1: m_hat = g, v_hat = g^2, so p <- p (1 - lr wd) - lr g / (|g| + eps).
  const AdamWHyper hyper{0.1, 0.8, 0.99, 1e-3, 0.5};
  at::Tensor p = at::tensor({1.0, -2.0, 0.5, 3.0}, at::TensorOptions().dtype(at::kDouble));
  const at::Tensor g = at::tensor({0.5, -0.01, 0.0, 2.0}, at::TensorOptions().dtype(at::kDouble));
  at::Tensor m = at::zeros_like(p), v = at::zeros_like(p);
  const std::vector<double> p0 = {1.0, -2.0, 0.5, 3.0}, g0 = {0.5, -0.01, 0.0, 2.0};
  adamwStep(p, g, m, v, 1, hyper);
  for (int i = 0; i < 4; ++i) {
    const double expected = p0[i] * (1 - 0.1 * 0.5) - 0.1 * g0[i] / (std::abs(g0[i]) + 1e-3);
    // double, a handful of elementwise operations: a few ulps of the values' magnitude.
    const auto tol = [](double x) { return ptune_test::fp64Tolerance(std::max(1.0, std::abs(x)), ptune_test::kElementwiseUlps); };
    EXPECT_NEAR(p[i].item<double>(), expected, tol(expected)) << i;
    EXPECT_NEAR(m[i].item<double>(), 0.2 * g0[i], tol(g0[i])) << i;
    EXPECT_NEAR(v[i].item<double>(), 0.01 * g0[i] * g0[i], tol(g0[i] * g0[i])) << i;
  }
}

TEST(AdamWTest, RejectsBadArguments) {
  const AdamWHyper hyper{1e-2, 0.9, 0.999, 1e-8, 0.0};
  at::Tensor p = at::zeros({4}), g = at::ones({4}), m = at::zeros({4}), v = at::zeros({4});
  EXPECT_NE(ptune_test::thrownMessage<ptune::Error>([&] { adamwStep(p, g, m, v, 0, hyper); })
                .find("step counts from 1"),
            std::string::npos);
  at::Tensor short_m = at::zeros({3});
  EXPECT_NE(ptune_test::thrownMessage<ptune::Error>([&] { adamwStep(p, g, short_m, v, 1, hyper); })
                .find("of one size"),
            std::string::npos);
  at::Tensor half = at::zeros({4}, at::TensorOptions().dtype(at::kHalf));
  at::Tensor half_g = half.clone(), half_m = half.clone(), half_v = half.clone();
  EXPECT_NE(ptune_test::thrownMessage<ptune::Error>(
                [&] { adamwStep(half, half_g, half_m, half_v, 1, hyper); })
                .find("fp32 or fp64"),
            std::string::npos);
}

TEST(AdamWTest, MultiTensorUpdateEqualsPerTensorKernel) {
  // The CUDA path of the trainer's optimizer step (libtorch's fused multi-tensor AdamW), run here
  // on CPU tensors against the single-pass kernel: three parameters, two learning rates (a
  // P-tuning encoder's own rate), one joining late (its bias correction starts at step 1).
  using ptune::optim::AdamWImpl;
  using ptune::optim::AdamWSlot;
  if (!ptune::optim::multiTensorAdamwAvailable()) {
    const AdamWSlot slot{at::zeros({2}), at::ones({2}), at::zeros({2}), at::zeros({2}), 1, 1e-3};
    EXPECT_THROW(ptune::optim::adamwStepAll({slot}, {1e-3, 0.9, 0.999, 1e-8, 0.0}, AdamWImpl::kMultiTensor),
                 ptune::Error);
    GTEST_SKIP() << "libtorch 1.x has no multi-tensor fused AdamW (its refusal checked)";
  }
  at::manual_seed(9);
  const AdamWHyper hyper{0.0, 0.9, 0.999, 1e-8, 0.01};
  const std::vector<at::Tensor> initial = {at::randn({5, 7}), at::randn({13}), at::randn({3, 4})};
  const double rates[] = {1e-2, 1e-2, 3e-3};
  struct State {
    std::vector<at::Tensor> p, m, v;
    std::vector<int64_t> step;
  };
  const auto fresh = [&] {
    State s;
    for (const auto& t : initial) {
      s.p.push_back(t.clone());
      s.m.push_back(at::zeros_like(t));
      s.v.push_back(at::zeros_like(t));
      s.step.push_back(0);
    }
    return s;
  };
  State per = fresh(), multi = fresh();
  for (int step = 0; step < 10; ++step) {
    for (auto* s : {&per, &multi}) {
      std::vector<AdamWSlot> slots;
      for (size_t i = 0; i < initial.size(); ++i) {
        if (i == 2 && step < 4) continue;  // joins at the fifth step
        at::manual_seed(100 + step * 10 + static_cast<int64_t>(i));
        s->step[i] += 1;
        slots.push_back({s->p[i], at::randn(initial[i].sizes()), s->m[i], s->v[i], s->step[i], rates[i]});
      }
      ptune::optim::adamwStepAll(slots, hyper, s == &per ? AdamWImpl::kPerTensor : AdamWImpl::kMultiTensor);
    }
  }
  for (size_t i = 0; i < initial.size(); ++i) {
    // Ten updates of a few rounded operations each, relative to each tensor's magnitude.
    for (const auto& [a, b] : {std::pair{multi.p[i], per.p[i]}, {multi.m[i], per.m[i]}, {multi.v[i], per.v[i]}}) {
      const double tol = ptune_test::fp32Tolerance(b.abs().max().item<double>(), 10 * ptune_test::kElementwiseUlps);
      EXPECT_LE((a - b).abs().max().item<double>(), tol) << "parameter " << i;
    }
  }
}

TEST(ClipGradNormTest, DevicePathEqualsHostPath) {
  // clipGradNormOnDevice (CUDA tensors: norms and factor on the device) on CPU tensors against
  // the double-precision host path, below and above the limit.
  at::manual_seed(6);
  for (const double max_norm : {100.0, 1.0, 0.0}) {
    const std::vector<at::Tensor> base = {at::randn({4, 9}), at::randn({31}) * 3.0};
    std::vector<at::Tensor> host = {base[0].clone(), base[1].clone()}, device = {base[0].clone(), base[1].clone()};
    const double want = clipGradNorm(host, max_norm), got = ptune::optim::clipGradNormOnDevice(device, max_norm);
    EXPECT_NEAR(got, want, ptune_test::fp32Tolerance(want)) << "max_norm " << max_norm;
    for (size_t i = 0; i < base.size(); ++i) {
      const double tol = ptune_test::fp32Tolerance(host[i].abs().max().item<double>(), ptune_test::kElementwiseUlps);
      EXPECT_LE((device[i] - host[i]).abs().max().item<double>(), tol) << "max_norm " << max_norm;
    }
  }
}

TEST(ClipGradNormTest, ScalesOnlyAboveMaxAndReturnsNormBeforeClipping) {
  // Global norm of {(3, 4), (12)} = sqrt(9 + 16 + 144) = 13.
  auto grads = [] {
    return std::vector<at::Tensor>{at::tensor({3.0f, 4.0f}), at::tensor({12.0f})};
  };
  // fp32 norms and scales of a few values: a few ulps of their magnitude.
  const double tol = ptune_test::fp32Tolerance(13.0, ptune_test::kElementwiseUlps);
  std::vector<at::Tensor> below = grads();
  EXPECT_NEAR(clipGradNorm(below, 20.0), 13.0, tol);
  EXPECT_EQ(below[0][1].item<float>(), 4.0f);  // untouched
  EXPECT_EQ(below[1][0].item<float>(), 12.0f);

  std::vector<at::Tensor> above = grads();
  EXPECT_NEAR(clipGradNorm(above, 6.5), 13.0, tol);
  const double coef = 6.5 / (13.0 + 1e-6);  // torch.nn.utils.clip_grad_norm_
  EXPECT_NEAR(above[0][0].item<float>(), 3.0 * coef, tol);
  EXPECT_NEAR(above[0][1].item<float>(), 4.0 * coef, tol);
  EXPECT_NEAR(above[1][0].item<float>(), 12.0 * coef, tol);
  double clipped = 0.0;
  for (const auto& g : above) clipped += g.pow(2).sum().item<double>();
  EXPECT_NEAR(std::sqrt(clipped), 6.5 * 13.0 / (13.0 + 1e-6), tol);

  std::vector<at::Tensor> disabled = grads();
  EXPECT_NEAR(clipGradNorm(disabled, 0.0), 13.0, tol);
  EXPECT_EQ(disabled[1][0].item<float>(), 12.0f);

  // A random case against the manual norm.
  at::manual_seed(5);
  std::vector<at::Tensor> random = {at::randn({4, 9}), at::randn({31}) * 3.0};
  double manual = 0.0;
  for (const auto& g : random) {
    const at::Tensor c = g.contiguous();
    for (int64_t i = 0; i < c.numel(); ++i) {
      const double x = c.data_ptr<float>()[i];
      manual += x * x;
    }
  }
  manual = std::sqrt(manual);
  const at::Tensor before = random[1].clone();
  // An fp32 norm of 67 values against a double one, relative to its magnitude.
  EXPECT_NEAR(clipGradNorm(random, 1.0), manual, ptune_test::fp32Tolerance(manual));
  EXPECT_LE((random[1] - before * (1.0 / (manual + 1e-6))).abs().max().item<double>(),
            ptune_test::fp32Tolerance(before.abs().max().item<double>() / manual, ptune_test::kElementwiseUlps));
}

TEST(ScheduleTest, TransformersFormulasWithWarmup) {
  // warmup 10, total 110: steps 0 (start), 5 (mid-warmup), 10 (end of warmup), 35 (quarter),
  // 60 (middle), 109 (last), 110 (past the end).
  const int64_t W = 10, N = 110;
  const auto f = [&](LrSchedule kind, int64_t step) { return scheduleFactor(kind, step, W, N); };
  // Scalar double formulas of values <= 1 (no BLAS): a few ulps.
  const double tol = ptune_test::fp64Tolerance(1.0, ptune_test::kElementwiseUlps);
  // get_constant_schedule_with_warmup: step / max(1, W) during warmup, then 1
  EXPECT_NEAR(f(LrSchedule::kConstant, 0), 0.0, tol);
  EXPECT_NEAR(f(LrSchedule::kConstant, 5), 0.5, tol);
  EXPECT_NEAR(f(LrSchedule::kConstant, 10), 1.0, tol);
  EXPECT_NEAR(f(LrSchedule::kConstant, 60), 1.0, tol);
  EXPECT_NEAR(f(LrSchedule::kConstant, 109), 1.0, tol);
  // get_linear_schedule_with_warmup: then max(0, (N - step) / max(1, N - W))
  EXPECT_NEAR(f(LrSchedule::kLinear, 0), 0.0, tol);
  EXPECT_NEAR(f(LrSchedule::kLinear, 5), 0.5, tol);
  EXPECT_NEAR(f(LrSchedule::kLinear, 10), 1.0, tol);
  EXPECT_NEAR(f(LrSchedule::kLinear, 35), 0.75, tol);
  EXPECT_NEAR(f(LrSchedule::kLinear, 60), 0.5, tol);
  EXPECT_NEAR(f(LrSchedule::kLinear, 109), 0.01, tol);
  EXPECT_NEAR(f(LrSchedule::kLinear, 110), 0.0, tol);
  EXPECT_NEAR(f(LrSchedule::kLinear, 130), 0.0, tol);
  // get_cosine_schedule_with_warmup (num_cycles 0.5): max(0, 0.5 (1 + cos(pi progress)))
  EXPECT_NEAR(f(LrSchedule::kCosine, 0), 0.0, tol);
  EXPECT_NEAR(f(LrSchedule::kCosine, 5), 0.5, tol);
  EXPECT_NEAR(f(LrSchedule::kCosine, 10), 1.0, tol);
  EXPECT_NEAR(f(LrSchedule::kCosine, 35), 0.8535533905932737, tol);  // (1 + 1/sqrt 2) / 2
  EXPECT_NEAR(f(LrSchedule::kCosine, 60), 0.5, tol);
  EXPECT_NEAR(f(LrSchedule::kCosine, 109), 0.00024671981713420, tol);  // (1 - cos(pi/100)) / 2
  EXPECT_NEAR(f(LrSchedule::kCosine, 110), 0.0, tol);
}

TEST(ScheduleTest, WithoutWarmup) {
  const double tol = ptune_test::fp64Tolerance(1.0, ptune_test::kElementwiseUlps);  // as above
  EXPECT_NEAR(scheduleFactor(LrSchedule::kConstant, 0, 0, 4), 1.0, tol);
  EXPECT_NEAR(scheduleFactor(LrSchedule::kLinear, 0, 0, 4), 1.0, tol);
  EXPECT_NEAR(scheduleFactor(LrSchedule::kLinear, 1, 0, 4), 0.75, tol);
  EXPECT_NEAR(scheduleFactor(LrSchedule::kLinear, 3, 0, 4), 0.25, tol);
  EXPECT_NEAR(scheduleFactor(LrSchedule::kCosine, 0, 0, 4), 1.0, tol);
  EXPECT_NEAR(scheduleFactor(LrSchedule::kCosine, 2, 0, 4), 0.5, tol);
  EXPECT_NEAR(scheduleFactor(LrSchedule::kCosine, 3, 0, 4), 0.14644660940672624, tol);
  // A single-step run must not divide by zero.
  EXPECT_NEAR(scheduleFactor(LrSchedule::kLinear, 0, 0, 1), 1.0, tol);
  EXPECT_NEAR(scheduleFactor(LrSchedule::kLinear, 0, 1, 1), 0.0, tol);
}

}  // namespace
