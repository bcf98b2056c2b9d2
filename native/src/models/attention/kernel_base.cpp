// The fused attention kernel for any x86-64 (or other) CPU: the compiler's baseline ISA.
#include "models/attention/kernel_impl.h"

namespace ptune::models::attention_kernel {

void forwardBase(const Args<float>& a, int64_t begin, int64_t end, float* scratch) {
  forwardAnyD(a, begin, end, scratch);
}
void backwardBase(const Args<float>& a, int64_t begin, int64_t end, float* scratch) {
  backwardAnyD(a, begin, end, scratch);
}
void forwardBase(const Args<double>& a, int64_t begin, int64_t end, double* scratch) {
  forwardAnyD(a, begin, end, scratch);
}
void backwardBase(const Args<double>& a, int64_t begin, int64_t end, double* scratch) {
  backwardAnyD(a, begin, end, scratch);
}

}  // namespace ptune::models::attention_kernel
