#include "loss/linear_cross_entropy.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "core/check.h"
#include "core/dtypes.h"
#include "prompt/prompt_method.h"

namespace ptune::loss {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// A chunk holds about kChunkLogits logits, but at least kMinChunkRows rows: each chunk's two GEMMs
// read (and the BLAS packs) the whole (V, C) head weight, so below a few hundred rows that read
// outweighs the arithmetic. Measured on 151,936 x 896 (Qwen2's head), 1,024 rows, 2 cores:
// 55-row chunks 5.5-6.0 s, 128 rows 4.3, 256 rows 4.0, 512 rows 3.9 (bench/PROFILE.md).
constexpr int64_t kChunkLogits = int64_t{8} << 20;
constexpr int64_t kMinChunkRows = 256;

class LinearCrossEntropyFunction
    : public torch::autograd::Function<LinearCrossEntropyFunction> {
 public:
  // hidden (N, C), weight (V, C), labels (N), bias (V) or empty (0) -> scalar sum of losses
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden,
                            const at::Tensor& weight, const at::Tensor& labels,
                            int64_t chunk_rows, const at::Tensor& bias) {
    const bool has_bias = bias.numel() > 0;
    const int64_t V = weight.size(0);
    const at::Tensor rows = labels.ne(prompt::kIgnoreIndex).nonzero().squeeze(1);  // (M)
    const at::Tensor targets = labels.index_select(0, rows);                        // (M)
    if (targets.numel() > 0) {
      PTUNE_CHECK(targets.min().item<int64_t>() >= 0 && targets.max().item<int64_t>() < V,
                  "a label lies outside the vocabulary [0, ", V, ")");
    }
    const bool need_grad = hidden.requires_grad();
    at::Tensor grad_hidden = need_grad ? at::zeros_like(hidden) : at::Tensor();
    const at::ScalarType compute = hidden.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    at::Tensor total = at::zeros({}, hidden.options().dtype(compute));
    const int64_t M = rows.size(0);
    const int64_t chunk = chunk_rows > 0 ? chunk_rows : std::max(kMinChunkRows, kChunkLogits / V);
    // Every chunk's logits live in one buffer, allocated once per call: a buffer above glibc's
    // mmap threshold is mapped and faulted in afresh at each allocation (vocab150k's 148 MiB
    // chunks: 4 of them per step). fp16 / bf16 heads compute in their dtype, then convert.
    const bool logits_in_place = weight.scalar_type() == compute;
    const at::Tensor buffer = logits_in_place && M > 0
                                  ? at::empty({std::min(chunk, M), V}, hidden.options().dtype(compute))
                                  : at::Tensor();  // (chunk, V)
    for (int64_t start = 0; start < M; start += chunk) {
      const int64_t len = std::min(chunk, M - start);
      const at::Tensor chunk_rows_index = rows.narrow(0, start, len);
      const at::Tensor chunk_targets = targets.narrow(0, start, len).unsqueeze(1);  // (len, 1)
      const at::Tensor h = hidden.index_select(0, chunk_rows_index);               // (len, C)
      // The chunk's logits are computed into one buffer that then becomes, in place, exp(z - max),
      // the softmax and d loss / d logits: no other (len, V) tensor is allocated.
      at::Tensor logits;                                                           // (len, V)
      if (logits_in_place) {
        logits = buffer.narrow(0, 0, len);
        at::mm_out(logits, h.to(compute), weight.t());
      } else {
        logits = at::matmul(h, weight.t()).to(compute);
      }
      if (has_bias) logits.add_(bias.to(compute));
      const at::Tensor target_logits = logits.gather(1, chunk_targets);           // (len, 1)
      const at::Tensor row_max = logits.amax(1, /*keepdim=*/true);                 // (len, 1)
      logits.sub_(row_max).exp_();
      const at::Tensor sum_exp = logits.sum(1, /*keepdim=*/true);                  // (len, 1)
      // -log softmax(z)[t] = max + log sum exp(z - max) - z[t]
      total += (row_max + sum_exp.log() - target_logits).sum();
      if (need_grad) {
        // d loss / d logits = softmax - onehot; d loss / d h = that @ weight
        logits.div_(sum_exp);
        logits.scatter_add_(1, chunk_targets, at::full_like(chunk_targets, -1, logits.options()));
        grad_hidden.index_copy_(0, chunk_rows_index,
                                at::matmul(logits.to(weight.scalar_type()), weight));
      }
    }
    if (need_grad) ctx->save_for_backward({grad_hidden});
    return total.to(masterType(hidden.scalar_type()));  // the loss stays fp32 behind a bf16 / fp16 model
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const at::Tensor grad_hidden = ctx->get_saved_variables()[0];
    return {(grad_hidden * grad_outputs[0]).to(grad_hidden.scalar_type()), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor linearCrossEntropySum(const at::Tensor& hidden, const at::Tensor& weight,
                                 const at::Tensor& labels, int64_t chunk_rows, const at::Tensor& bias) {
  PTUNE_CHECK(hidden.dim() == 2 && weight.dim() == 2 && labels.dim() == 1 &&
                  hidden.size(0) == labels.size(0) && hidden.size(1) == weight.size(1),
              "linear cross-entropy: expected hidden (N, C), weight (V, C), labels (N); got ",
              hidden.sizes(), ", ", weight.sizes(), ", ", labels.sizes());
  PTUNE_CHECK(!weight.requires_grad(), "linear cross-entropy: the LM head must be frozen");
  PTUNE_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == weight.size(0) && !bias.requires_grad()),
              "linear cross-entropy: the head's bias must be a frozen (V) vector");
  // Autograd functions take defined tensors only: no bias travels as an empty one.
  return LinearCrossEntropyFunction::apply(hidden, weight, labels, chunk_rows,
                                           bias.defined() ? bias : at::empty({0}, weight.options()));
}

}  // namespace ptune::loss
