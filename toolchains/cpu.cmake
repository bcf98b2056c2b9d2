# CPU build on Debian 12: the system libtorch (apt libtorch-dev 1.13) with OpenBLAS.
# Selected by `cmake -DCMAKE_TOOLCHAIN_FILE=toolchains/cpu.cmake` (the Maven build does this).
set(PTUNE_WITH_CUDA OFF CACHE BOOL "Build the CUDA kernels (needs a CUDA libtorch)")
list(APPEND CMAKE_PREFIX_PATH /usr/lib/x86_64-linux-gnu/cmake /usr/share/cmake)
# OpenBLAS built for OpenMP (Debian libopenblas0-openmp), linked ahead of libtorch: see native/CMakeLists.txt.
set(PTUNE_OPENBLAS_DIR /usr/lib/x86_64-linux-gnu/openblas-openmp CACHE PATH "OpenBLAS (OpenMP build) directory")
