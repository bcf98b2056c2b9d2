# PyTorch 2.x libtorch with CUDA (a CUDA torch wheel, e.g. torch 2.14.1 + cuda-toolkit 13.0.3 and
# the nvidia-* wheels) and the machine's CUDA toolkit (nvcc) for ptune's own kernels.
# Selected by `mvn -Dnative.toolchain=toolchains/cuda.cmake ...` (jar classifier
# linux-x86_64-cuda) or `cmake -DCMAKE_TOOLCHAIN_FILE=toolchains/cuda.cmake`; libtorch is found as
# in toolchains/torch2.cmake (PTUNE_TORCH_PYTHON / Torch_DIR). Also read:
#   $CUDACXX or /usr/local/cuda/bin/nvcc   the CUDA compiler (CUDA 13 with the cu13 wheels)
#   $TORCH_CUDA_ARCH_LIST                  GPU architectures, default 9.0 (H100/H200); nvcc 13
#                                          has no compute_50, which Caffe2's default list names
include("${CMAKE_CURRENT_LIST_DIR}/torch2.cmake")
set(PTUNE_WITH_CUDA ON CACHE BOOL "Build the CUDA kernels (needs a CUDA libtorch)" FORCE)

if(NOT CMAKE_CUDA_COMPILER)
  if(DEFINED ENV{CUDACXX})
    set(CMAKE_CUDA_COMPILER "$ENV{CUDACXX}")
  elseif(EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
endif()
# The toolkit is the folder above nvcc's real bin/ (Caffe2's FindCUDA would otherwise take it from
# the nvcc found on PATH, /usr/local/bin/nvcc here, and look for the headers under /usr/local).
if(CMAKE_CUDA_COMPILER AND NOT CUDA_TOOLKIT_ROOT_DIR)
  get_filename_component(_ptune_nvcc "${CMAKE_CUDA_COMPILER}" REALPATH)
  get_filename_component(_ptune_cuda_root "${_ptune_nvcc}/../.." ABSOLUTE)
  set(CUDA_TOOLKIT_ROOT_DIR "${_ptune_cuda_root}" CACHE PATH "CUDA toolkit (nvcc's)")
  set(CUDAToolkit_ROOT "${_ptune_cuda_root}")
endif()
if(DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(TORCH_CUDA_ARCH_LIST "$ENV{TORCH_CUDA_ARCH_LIST}" CACHE STRING "GPU architectures")
else()
  set(TORCH_CUDA_ARCH_LIST 9.0 CACHE STRING "GPU architectures")
endif()
# Caffe2's CUDA config takes its architectures from TORCH_CUDA_ARCH_LIST in the environment too.
set(ENV{TORCH_CUDA_ARCH_LIST} "${TORCH_CUDA_ARCH_LIST}")
string(REPLACE "." "" _ptune_cuda_archs "${TORCH_CUDA_ARCH_LIST}")
string(REPLACE ";" " " _ptune_cuda_archs "${_ptune_cuda_archs}")
separate_arguments(_ptune_cuda_archs)
# ptune's own kernels (native/CMakeLists.txt sets them as the target's CUDA_ARCHITECTURES; Caffe2
# warns about and ignores CMAKE_CUDA_ARCHITECTURES).
set(PTUNE_CUDA_ARCHITECTURES ${_ptune_cuda_archs} CACHE STRING "GPU architectures of ptune's kernels")
# The CUDA runtime as a shared library: the one the torch wheel loads (nvidia/cu13/lib), not a
# second static copy inside libptune.
set(CMAKE_CUDA_RUNTIME_LIBRARY Shared CACHE STRING "CUDA runtime: the wheel's shared libcudart")

# The nvidia-* wheels beside torch: nvrtc for Caffe2's config, their headers (cusparse.h, ...)
# for libtorch's CUDA headers.
get_filename_component(_ptune_site "${PTUNE_TORCH_ROOT}/.." ABSOLUTE)
file(GLOB _ptune_nvidia_dirs "${_ptune_site}/nvidia/cu[0-9]*" "${_ptune_site}/nvidia/*")
foreach(_dir IN LISTS _ptune_nvidia_dirs)
  file(GLOB _ptune_nvrtc "${_dir}/lib/libnvrtc.so.[0-9]*")
  if(_ptune_nvrtc AND NOT CUDA_nvrtc_LIBRARY)
    list(GET _ptune_nvrtc 0 _ptune_nvrtc)
    set(CUDA_nvrtc_LIBRARY "${_ptune_nvrtc}" CACHE FILEPATH "nvrtc of the CUDA wheels")
  endif()
  if(IS_DIRECTORY "${_dir}/include")
    list(APPEND PTUNE_CUDA_WHEEL_INCLUDES "${_dir}/include")
  endif()
endforeach()
list(REMOVE_DUPLICATES PTUNE_CUDA_WHEEL_INCLUDES)
set(PTUNE_CUDA_WHEEL_INCLUDES "${PTUNE_CUDA_WHEEL_INCLUDES}" CACHE STRING "Header folders of the nvidia-* wheels")
