#include "models/attention/fused_attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/custom_function.h>

#include <type_traits>

#include "core/check.h"
#include "models/attention/kernel.h"

namespace ptune::models::attention_kernel {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// x (B, G, K, D) as the kernel reads it: rows of D contiguous, the (b, g) blocks evenly spaced
/// (a contiguous tensor, or the first K slots of a (B, G, capacity, D) one), with the strides of
/// `like` when given; a contiguous copy otherwise.
at::Tensor kvLayout(const at::Tensor& x, at::IntArrayRef like = {}) {
  const bool rows_ok = x.stride(3) == 1 && x.stride(2) == x.size(3) && x.stride(0) == x.size(1) * x.stride(1) &&
                       x.stride(1) >= x.size(2) * x.size(3);
  if (rows_ok && (like.empty() || x.strides() == like)) return x;
  const at::Tensor c = x.contiguous();
  return like.empty() || c.strides() == like ? c : at::empty_strided(x.sizes(), like, x.options()).copy_(x);
}

template <typename T>
Args<T> argsOf(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias, double scale,
               bool causal) {
  Args<T> a{};
  a.q = q.data_ptr<T>();
  a.k = k.data_ptr<T>();
  a.v = v.data_ptr<T>();
  a.bias = bias.data_ptr<T>();
  a.B = q.size(0);
  a.H = q.size(1);
  a.S = q.size(2);
  a.D = q.size(3);
  a.G = k.size(1);
  a.K = k.size(2);
  a.bias_b = bias.size(0) == 1 ? 0 : bias.stride(0);
  a.bias_h = bias.size(1) == 1 ? 0 : bias.stride(1);
  a.bias_s = bias.size(2) == 1 ? 0 : bias.stride(2);
  a.kv_task = k.stride(1);
  a.scale = static_cast<T>(scale);
  a.causal_past = causal ? a.K - a.S : -1;
  return a;
}

/// Runs kernel(args, begin, end, scratch) over the B*G tasks on libtorch's intra-op threads,
/// each chunk with its own scratch.
template <typename T, typename Kernel>
void runTasks(const Args<T>& a, Kernel kernel) {
  const auto options = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  at::parallel_for(0, a.B * a.G, 1, [&](int64_t begin, int64_t end) {
    at::Tensor scratch = at::empty({scratchSize(a.K, a.D)}, options);
    kernel(a, begin, end, scratch.data_ptr<T>());
  });
}

enum class Pass { kForward, kBackward };

/// The kernel build for this dtype, pass and variant (fp64 has only the portable build).
template <typename T>
void runPass(const Args<T>& a, Pass pass, Variant variant) {
  using Fn = void (*)(const Args<T>&, int64_t, int64_t, T*);
  Fn fn = pass == Pass::kForward ? static_cast<Fn>(forwardBase) : static_cast<Fn>(backwardBase);
  if constexpr (std::is_same_v<T, float>) {
    if (variant == Variant::kAvx2) fn = pass == Pass::kForward ? forwardAvx2 : backwardAvx2;
  }
  runTasks(a, fn);
}

class FusedAttentionFunction : public torch::autograd::Function<FusedAttentionFunction> {
 public:
  // q (B, H, S, D), k and v (B, G, K, D), bias (B|1, H|1, S|1, K) -> (B, H, S, D)
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q_in, const at::Tensor& k_in,
                            const at::Tensor& v_in, const at::Tensor& bias_in, double scale, bool causal,
                            int64_t variant) {
    RECORD_FUNCTION("ptune::fused_attention", std::vector<c10::IValue>());  // named in profiles
    // Keys and values may be the first K slots of a preallocated KV cache (B, G, capacity, D).
    const at::Tensor q = q_in.contiguous(), k = kvLayout(k_in), v = kvLayout(v_in, k.strides());
    const at::Tensor bias = bias_in.stride(3) == 1 ? bias_in : bias_in.contiguous();
    at::Tensor out = at::empty_like(q);
    at::Tensor lse = at::empty({q.size(0), q.size(1), q.size(2)}, q.options());
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "fused attention", [&] {
      Args<scalar_t> a = argsOf<scalar_t>(q, k, v, bias, scale, causal);
      a.out = out.data_ptr<scalar_t>();
      a.lse = lse.data_ptr<scalar_t>();
      runPass(a, Pass::kForward, static_cast<Variant>(variant));
    });
    ctx->save_for_backward({q, k, v, bias, out, lse});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["variant"] = variant;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &bias = saved[3], &out = saved[4],
                     &lse = saved[5];
    const at::Tensor grad_out = grad_outputs[0].contiguous();
    at::Tensor grad_q = at::empty_like(q), grad_k = at::empty(k.sizes(), k.options()),
               grad_v = at::empty(v.sizes(), v.options());  // (B, G, K, D) contiguous
    const double scale = ctx->saved_data["scale"].toDouble();
    const bool causal = ctx->saved_data["causal"].toBool();
    const auto variant = static_cast<Variant>(ctx->saved_data["variant"].toInt());
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "fused attention backward", [&] {
      Args<scalar_t> a = argsOf<scalar_t>(q, k, v, bias, scale, causal);
      a.out = out.data_ptr<scalar_t>();
      a.lse = lse.data_ptr<scalar_t>();
      a.grad_out = grad_out.data_ptr<scalar_t>();
      a.grad_q = grad_q.data_ptr<scalar_t>();
      a.grad_k = grad_k.data_ptr<scalar_t>();
      a.grad_v = grad_v.data_ptr<scalar_t>();
      runPass(a, Pass::kBackward, variant);
    });
    return {grad_q, grad_k, grad_v, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

bool applies(const at::Tensor& q, const at::Tensor& bias) {
  return q.device().is_cpu() && (q.scalar_type() == at::kFloat || q.scalar_type() == at::kDouble) &&
         bias.defined() && bias.scalar_type() == q.scalar_type() && !bias.requires_grad();
}

at::Tensor fused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                 double scale, bool causal, Variant variant) {
  PTUNE_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && bias.dim() == 4, "fused attention: 4-d inputs expected");
  const int64_t B = q.size(0), H = q.size(1), S = q.size(2), D = q.size(3), G = k.size(1), K = k.size(2);
  PTUNE_CHECK(k.size(0) == B && v.sizes() == k.sizes() && k.size(3) == D && G > 0 && H % G == 0,
              "fused attention: q ", q.sizes(), ", k ", k.sizes(), ", v ", v.sizes(), " do not fit");
  PTUNE_CHECK((bias.size(0) == B || bias.size(0) == 1) && (bias.size(1) == H || bias.size(1) == 1) &&
                  (bias.size(2) == S || bias.size(2) == 1) && bias.size(3) == K,
              "fused attention: bias ", bias.sizes(), " does not broadcast to (", B, ", ", H, ", ", S, ", ", K, ")");
  PTUNE_CHECK(!causal || K >= S, "fused attention: causal with fewer keys than queries");
  PTUNE_CHECK(applies(q, bias) && k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(),
              "fused attention: CPU fp32/fp64 tensors of one dtype expected");
  PTUNE_CHECK(variant == Variant::kBase || (cpuHasAvx2Fma() && q.scalar_type() == at::kFloat) ||
                  q.scalar_type() == at::kDouble,
              "fused attention: this CPU has no AVX2/FMA");
  return FusedAttentionFunction::apply(q, k, v, bias, scale, causal, static_cast<int64_t>(variant));
}

}  // namespace ptune::models::attention_kernel
