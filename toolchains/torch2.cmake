# PyTorch 2.x libtorch on CPU: a torch wheel's package folder or an unpacked libtorch archive.
# Selected by `cmake -DCMAKE_TOOLCHAIN_FILE=toolchains/torch2.cmake` or
# `mvn -Dnative.toolchain=toolchains/torch2.cmake ...`; toolchains/cuda.cmake builds on it.
# Where libtorch comes from, first found wins:
#   -DTorch_DIR=... or $Torch_DIR      the folder holding TorchConfig.cmake (libtorch archive:
#                                      libtorch/share/cmake/Torch)
#   $PTUNE_TORCH_PYTHON                a python that has the torch package (the folder its
#                                      torch.utils.cmake_prefix_path names), default python3
# libtorch 2.x needs C++20 for ATen code, so the ptune sources compile as C++20 (the .cu files stay
# C++17 and ATen-free, see native/src/cuda/). libptune.so records no path to libtorch (RUNPATH
# $ORIGIN only): at run time the Java side finds it through PTUNE_LIBTORCH_DIR or python's torch
# (io.ptune.nativebridge.NativeCalls); the test binaries keep the build's path to it.
set(PTUNE_CXX_STANDARD 20 CACHE STRING "C++ standard of the ptune sources")
set(PTUNE_WITH_CUDA OFF CACHE BOOL "Build the CUDA kernels (needs a CUDA libtorch)")
set(PTUNE_LIBTORCH_EXTERNAL ON CACHE BOOL "libtorch is found at run time (PTUNE_LIBTORCH_DIR), not from system paths")

# CMake reads this file again for every try_compile / try_run project (Caffe2's CUDA checks run
# some), without the cache: those need the compilers only, not libtorch.
get_property(_ptune_in_try_compile GLOBAL PROPERTY IN_TRY_COMPILE)
if(_ptune_in_try_compile)
  return()
endif()
if(NOT Torch_DIR AND DEFINED ENV{Torch_DIR})
  set(Torch_DIR "$ENV{Torch_DIR}" CACHE PATH "Folder holding TorchConfig.cmake")
endif()
if(NOT Torch_DIR)
  if(DEFINED ENV{PTUNE_TORCH_PYTHON})
    set(_ptune_python "$ENV{PTUNE_TORCH_PYTHON}")
  else()
    set(_ptune_python python3)
  endif()
  # find_spec instead of `import torch`: the same folder, without loading libtorch (seconds, and
  # the CUDA build's libraries would need the CUDA wheels importable).
  execute_process(
    COMMAND "${_ptune_python}" -c
      "import importlib.util, os; s = importlib.util.find_spec('torch'); print(os.path.join(s.submodule_search_locations[0], 'share', 'cmake'))"
    OUTPUT_VARIABLE _ptune_torch_cmake OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _ptune_rc ERROR_QUIET)
  if(NOT _ptune_rc EQUAL 0 OR NOT EXISTS "${_ptune_torch_cmake}/Torch/TorchConfig.cmake")
    message(FATAL_ERROR "toolchains/torch2.cmake: no PyTorch 2.x found: '${_ptune_python}' has no torch "
      "package with share/cmake/Torch. Set PTUNE_TORCH_PYTHON to a python with torch installed, "
      "or Torch_DIR to libtorch/share/cmake/Torch.")
  endif()
  set(Torch_DIR "${_ptune_torch_cmake}/Torch" CACHE PATH "Folder holding TorchConfig.cmake")
endif()
# The torch package folder (<torch>/share/cmake/Torch -> <torch>) goes FIRST on the prefix path:
# Caffe2's config finds c10 and friends by find_library, and Debian's /usr/lib copies must not win.
get_filename_component(PTUNE_TORCH_ROOT "${Torch_DIR}/../../.." ABSOLUTE)
set(PTUNE_TORCH_ROOT "${PTUNE_TORCH_ROOT}" CACHE PATH "The torch package (or libtorch) folder: include/, lib/")
list(PREPEND CMAKE_PREFIX_PATH "${PTUNE_TORCH_ROOT}" "${PTUNE_TORCH_ROOT}/share/cmake")
list(APPEND CMAKE_PREFIX_PATH /usr/lib/x86_64-linux-gnu/cmake /usr/share/cmake)
