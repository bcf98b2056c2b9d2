// Which build of the hand-vectorised CPU kernels (models/attention, models/elementwise) runs.
#pragma once

namespace ptune {

/// kBase: the compiler's baseline ISA; kAvx2: compiled with -mavx2 -mfma.
enum class KernelVariant { kBase, kAvx2 };

/// Whether this CPU has AVX2 and FMA.
bool cpuHasAvx2Fma();

/// kAvx2 where the CPU has AVX2 and FMA, unless ATEN_CPU_CAPABILITY=default asks for the
/// portable code everywhere (as it does of libtorch).
KernelVariant defaultKernelVariant();

}  // namespace ptune
