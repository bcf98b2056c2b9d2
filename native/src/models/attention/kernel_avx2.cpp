// The fused attention kernel compiled with -mavx2 -mfma (native/CMakeLists.txt); called only
// after fused_attention.cpp has checked that the CPU has both.
#include "models/attention/kernel_impl.h"

namespace ptune::models::attention_kernel {

void forwardAvx2(const Args<float>& a, int64_t begin, int64_t end, float* scratch) {
  forwardAnyD(a, begin, end, scratch);
}
void backwardAvx2(const Args<float>& a, int64_t begin, int64_t end, float* scratch) {
  backwardAnyD(a, begin, end, scratch);
}

}  // namespace ptune::models::attention_kernel
