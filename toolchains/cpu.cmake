# CPU build on Debian 12: the system libtorch (apt libtorch-dev 1.13) with OpenBLAS.
# Selected by `cmake -DCMAKE_TOOLCHAIN_FILE=toolchains/cpu.cmake` (the Maven build does this).
set(PTUNE_WITH_CUDA OFF CACHE BOOL "Build the CUDA kernels (needs a CUDA libtorch)")
list(APPEND CMAKE_PREFIX_PATH /usr/lib/x86_64-linux-gnu/cmake /usr/share/cmake)
