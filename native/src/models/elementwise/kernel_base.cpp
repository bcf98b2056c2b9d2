// The fused elementwise kernels for any x86-64 (or other) CPU: the compiler's baseline ISA.
#define PTUNE_ELEMENTWISE_SUFFIX Base
#include "models/elementwise/kernel_impl.h"

PTUNE_DEFINE_ELEMENTWISE_KERNELS(float)
PTUNE_DEFINE_ELEMENTWISE_KERNELS(double)
