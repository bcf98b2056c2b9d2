#include "core/cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace ptune {

bool cpuHasAvx2Fma() {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

KernelVariant defaultKernelVariant() {
  const char* capability = std::getenv("ATEN_CPU_CAPABILITY");
  if (capability != nullptr && std::strcmp(capability, "default") == 0) return KernelVariant::kBase;
  return cpuHasAvx2Fma() ? KernelVariant::kAvx2 : KernelVariant::kBase;
}

}  // namespace ptune
