#include "models/elementwise/fused.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <type_traits>

#include "core/check.h"
#include "models/elementwise/kernel.h"

namespace ptune::models::elementwise {
namespace {

namespace k = elementwise_kernel;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// Values per thread chunk: below this a pass runs on one thread (the small model's tensors).
constexpr int64_t kGrainValues = 32768;

template <typename T>
struct Kernels {
  void (*rms_forward)(const k::RmsNormArgs<T>&, int64_t, int64_t);
  void (*rms_backward)(const k::RmsNormArgs<T>&, int64_t, int64_t);
  void (*rotary_forward)(const k::RotaryArgs<T>&, int64_t, int64_t);
  void (*rotary_backward)(const k::RotaryArgs<T>&, int64_t, int64_t);
  void (*silu_forward)(const k::SiluMulArgs<T>&, int64_t, int64_t);
  void (*silu_backward)(const k::SiluMulArgs<T>&, int64_t, int64_t);
};

/// The build for this dtype and variant (fp64 has only the portable build).
template <typename T>
Kernels<T> kernels(KernelVariant variant) {
  if constexpr (std::is_same_v<T, float>) {
    if (variant == KernelVariant::kAvx2) {
      return {k::rmsNormForwardAvx2, k::rmsNormBackwardAvx2, k::rotaryForwardAvx2,
              k::rotaryBackwardAvx2,  k::siluMulForwardAvx2,  k::siluMulBackwardAvx2};
    }
  }
  return {k::rmsNormForwardBase, k::rmsNormBackwardBase, k::rotaryForwardBase,
          k::rotaryBackwardBase,  k::siluMulForwardBase,  k::siluMulBackwardBase};
}

void checkVariant(KernelVariant variant, const at::Tensor& x) {
  PTUNE_CHECK(variant == KernelVariant::kBase || cpuHasAvx2Fma() || x.scalar_type() == at::kDouble,
              "fused elementwise kernels: this CPU has no AVX2/FMA");
}

/// Runs fn(begin, end) over [0, n) tasks of `values_per_task` values each on libtorch's threads.
template <typename Fn>
void runTasks(int64_t n, int64_t values_per_task, const Fn& fn) {
  const int64_t grain = std::max<int64_t>(1, kGrainValues / std::max<int64_t>(1, values_per_task));
  at::parallel_for(0, n, grain, fn);
}

class RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
 public:
  // x (..., C), weight (C) -> (..., C)
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& weight_in, double eps,
                            int64_t variant) {
    RECORD_FUNCTION("ptune::rms_norm", std::vector<c10::IValue>());
    const at::Tensor x = x_in.contiguous(), weight = weight_in.contiguous();
    const int64_t C = x.size(-1), rows = x.numel() / std::max<int64_t>(1, C);
    at::Tensor y = at::empty_like(x), rstd = at::empty({rows}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ptune rms_norm", [&] {
      k::RmsNormArgs<scalar_t> a{};
      a.x = x.data_ptr<scalar_t>();
      a.weight = weight.data_ptr<scalar_t>();
      a.C = C;
      a.eps = static_cast<scalar_t>(eps);
      a.y = y.data_ptr<scalar_t>();
      a.rstd = rstd.data_ptr<scalar_t>();
      const auto run = kernels<scalar_t>(static_cast<KernelVariant>(variant)).rms_forward;
      runTasks(rows, C, [&](int64_t begin, int64_t end) { run(a, begin, end); });
    });
    ctx->save_for_backward({x, weight, rstd});
    ctx->saved_data["variant"] = variant;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1], &rstd = saved[2];
    const at::Tensor grad = grad_outputs[0].contiguous();
    const int64_t C = x.size(-1), rows = rstd.numel();
    at::Tensor grad_x, grad_weight;
    if (ctx->needs_input_grad(0)) {
      grad_x = at::empty_like(x);
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ptune rms_norm backward", [&] {
        k::RmsNormArgs<scalar_t> a{};
        a.x = x.data_ptr<scalar_t>();
        a.weight = weight.data_ptr<scalar_t>();
        a.C = C;
        a.rstd = rstd.data_ptr<scalar_t>();
        a.grad_y = grad.data_ptr<scalar_t>();
        a.grad_x = grad_x.data_ptr<scalar_t>();
        const auto run = kernels<scalar_t>(static_cast<KernelVariant>(ctx->saved_data["variant"].toInt())).rms_backward;
        runTasks(rows, C, [&](int64_t begin, int64_t end) { run(a, begin, end); });
      });
    }
    if (ctx->needs_input_grad(1)) {
      // Unfrozen layers only: sum over rows of grad * normalised x.
      grad_weight = (grad.reshape({rows, C}) * (x.reshape({rows, C}) * rstd.unsqueeze(1))).sum(0);
    }
    return {grad_x, grad_weight, at::Tensor(), at::Tensor()};
  }
};

template <typename T>
k::RotaryArgs<T> rotaryArgs(const at::Tensor& in, const at::Tensor& out, const at::Tensor& cos, const at::Tensor& sin,
                            bool in_heads_first) {
  // in/out: the (B, S, N, D) layout, or (B, N, S, D) where heads come first
  k::RotaryArgs<T> a{};
  a.in = in.data_ptr<T>();
  a.out = out.data_ptr<T>();
  a.cos = cos.data_ptr<T>();
  a.sin = sin.data_ptr<T>();
  const at::Tensor& bsnd = in_heads_first ? out : in;
  const at::Tensor& bnsd = in_heads_first ? in : out;
  a.B = bsnd.size(0);
  a.S = bsnd.size(1);
  a.N = bsnd.size(2);
  a.D = bsnd.size(3);
  const int64_t sb = bsnd.stride(0), ss = bsnd.stride(1), sn = bsnd.stride(2);
  const int64_t hb = bnsd.stride(0), hn = bnsd.stride(1), hs = bnsd.stride(2);
  if (in_heads_first) {
    a.in_b = hb, a.in_s = hs, a.in_n = hn, a.out_b = sb, a.out_s = ss, a.out_n = sn;
  } else {
    a.in_b = sb, a.in_s = ss, a.in_n = sn, a.out_b = hb, a.out_s = hs, a.out_n = hn;
  }
  a.cs_b = cos.size(0) == 1 ? 0 : cos.stride(0);
  return a;
}

class RotaryFunction : public torch::autograd::Function<RotaryFunction> {
 public:
  // x (B, S, N, D), cos and sin (B|1, S, D) contiguous -> (B, N, S, D) contiguous
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& cos,
                            const at::Tensor& sin, int64_t variant) {
    RECORD_FUNCTION("ptune::rotary", std::vector<c10::IValue>());
    const at::Tensor x = x_in.stride(3) == 1 ? x_in : x_in.contiguous();
    at::Tensor out = at::empty({x.size(0), x.size(2), x.size(1), x.size(3)}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ptune rotary", [&] {
      const k::RotaryArgs<scalar_t> a = rotaryArgs<scalar_t>(x, out, cos, sin, false);
      const auto run = kernels<scalar_t>(static_cast<KernelVariant>(variant)).rotary_forward;
      runTasks(a.B * a.S, a.N * a.D, [&](int64_t begin, int64_t end) { run(a, begin, end); });
    });
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["variant"] = variant;
    ctx->saved_data["x_sizes"] = x.sizes().vec();
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &cos = saved[0], &sin = saved[1];
    const at::Tensor grad = grad_outputs[0].stride(3) == 1 ? grad_outputs[0] : grad_outputs[0].contiguous();
    at::Tensor grad_x = at::empty(ctx->saved_data["x_sizes"].toIntVector(), grad.options());
    AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "ptune rotary backward", [&] {
      const k::RotaryArgs<scalar_t> a = rotaryArgs<scalar_t>(grad, grad_x, cos, sin, true);
      const auto run = kernels<scalar_t>(static_cast<KernelVariant>(ctx->saved_data["variant"].toInt())).rotary_backward;
      runTasks(a.B * a.S, a.N * a.D, [&](int64_t begin, int64_t end) { run(a, begin, end); });
    });
    return {grad_x, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class SiluMulFunction : public torch::autograd::Function<SiluMulFunction> {
 public:
  // gate, up (...) -> (...)
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gate_in, const at::Tensor& up_in,
                            int64_t variant) {
    RECORD_FUNCTION("ptune::silu_mul", std::vector<c10::IValue>());
    const at::Tensor gate = gate_in.contiguous(), up = up_in.contiguous();
    at::Tensor out = at::empty_like(gate);
    AT_DISPATCH_FLOATING_TYPES(gate.scalar_type(), "ptune silu_mul", [&] {
      k::SiluMulArgs<scalar_t> a{};
      a.gate = gate.data_ptr<scalar_t>();
      a.up = up.data_ptr<scalar_t>();
      a.out = out.data_ptr<scalar_t>();
      const auto run = kernels<scalar_t>(static_cast<KernelVariant>(variant)).silu_forward;
      runTasks(gate.numel(), 1, [&](int64_t begin, int64_t end) { run(a, begin, end); });
    });
    ctx->save_for_backward({gate, up});
    ctx->saved_data["variant"] = variant;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &gate = saved[0], &up = saved[1];
    const at::Tensor grad = grad_outputs[0].contiguous();
    at::Tensor grad_gate = at::empty_like(gate), grad_up = at::empty_like(up);
    AT_DISPATCH_FLOATING_TYPES(gate.scalar_type(), "ptune silu_mul backward", [&] {
      k::SiluMulArgs<scalar_t> a{};
      a.gate = gate.data_ptr<scalar_t>();
      a.up = up.data_ptr<scalar_t>();
      a.grad_out = grad.data_ptr<scalar_t>();
      a.grad_gate = grad_gate.data_ptr<scalar_t>();
      a.grad_up = grad_up.data_ptr<scalar_t>();
      const auto run = kernels<scalar_t>(static_cast<KernelVariant>(ctx->saved_data["variant"].toInt())).silu_backward;
      runTasks(gate.numel(), 1, [&](int64_t begin, int64_t end) { run(a, begin, end); });
    });
    return {grad_gate, grad_up, at::Tensor()};
  }
};

}  // namespace

bool applies(const at::Tensor& x) {
  return x.device().is_cpu() && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble);
}

at::Tensor rmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps, KernelVariant variant) {
  PTUNE_CHECK(applies(x) && x.dim() >= 1 && weight.dim() == 1 && weight.size(0) == x.size(-1) &&
                  weight.scalar_type() == x.scalar_type() && weight.device() == x.device(),
              "fused RMSNorm: x ", x.sizes(), " and weight ", weight.sizes(), " must be CPU fp32/fp64 of one dtype");
  checkVariant(variant, x);
  return RmsNormFunction::apply(x, weight, eps, static_cast<int64_t>(variant));
}

at::Tensor rotaryHeads(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, KernelVariant variant) {
  PTUNE_CHECK(applies(x) && x.dim() == 4 && x.size(3) % 2 == 0, "fused rotary: x ", x.sizes(),
              " must be a CPU fp32/fp64 (B, S, N, D) tensor with D even");
  const int64_t B = x.size(0), S = x.size(1), D = x.size(3);
  PTUNE_CHECK(cos.dim() == 4 && cos.sizes() == sin.sizes() && (cos.size(0) == B || cos.size(0) == 1) &&
                  cos.size(1) == 1 && cos.size(2) == S && cos.size(3) == D && cos.scalar_type() == x.scalar_type() &&
                  sin.scalar_type() == x.scalar_type() && !cos.requires_grad() && !sin.requires_grad(),
              "fused rotary: cos/sin ", cos.sizes(), " do not fit x ", x.sizes());
  checkVariant(variant, x);
  return RotaryFunction::apply(x, cos.select(1, 0).contiguous(), sin.select(1, 0).contiguous(),
                               static_cast<int64_t>(variant));
}

at::Tensor siluMul(const at::Tensor& gate, const at::Tensor& up, KernelVariant variant) {
  PTUNE_CHECK(applies(gate) && gate.sizes() == up.sizes() && up.scalar_type() == gate.scalar_type() &&
                  up.device() == gate.device(),
              "fused SiLU product: gate ", gate.sizes(), " and up ", up.sizes(), " must be CPU fp32/fp64 of one shape");
  checkVariant(variant, gate);
  return SiluMulFunction::apply(gate, up, static_cast<int64_t>(variant));
}

}  // namespace ptune::models::elementwise
