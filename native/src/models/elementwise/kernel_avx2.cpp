// The fused elementwise kernels compiled with -mavx2 -mfma (native/CMakeLists.txt); called only
// after fused.cpp has checked that the CPU has both.
#define PTUNE_ELEMENTWISE_SUFFIX Avx2
#include "models/elementwise/kernel_impl.h"

PTUNE_DEFINE_ELEMENTWISE_KERNELS(float)
