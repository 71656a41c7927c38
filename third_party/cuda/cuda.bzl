"""`cuda_library`: compiles .cu files with the toolkit's nvcc into a cc_library.

The .cu files become one static archive of position-independent code built for sm_80 and sm_90 plus
compute_90 PTX (so newer GPUs JIT it). The archive links against the static CUDA runtime,
so a binary that uses them needs only the GPU driver and the C++ runtime. A machine
without a GPU still compiles them; only running needs a device.
"""

load("@local_cuda//:defs.bzl", "HAS_CUDA", "NVCC")

_GENCODE = [
    "-gencode=arch=compute_80,code=sm_80",
    "-gencode=arch=compute_90,code=sm_90",
    "-gencode=arch=compute_90,code=compute_90",
]

def cuda_library(name, srcs, hdrs = [], deps = [], copts = [], **kwargs):
    """Compiles `srcs` (.cu) with nvcc; `hdrs` and `deps` are visible to them.

    Args:
      name: the cc_library to create.
      srcs: .cu files.
      hdrs: headers the .cu files include and users of the library see.
      deps: cc_library targets (headers only are used at nvcc time).
      copts: extra nvcc flags.
      **kwargs: passed to the cc_library (visibility, testonly, ...).
    """
    if not HAS_CUDA:
        fail("cuda_library(%s): no CUDA toolkit found; set CUDA_PATH" % name)
    archive = "_%s_cuda/lib%s.a" % (name, name)
    native.genrule(
        name = "_%s_nvcc" % name,
        srcs = srcs + hdrs,
        outs = [archive],
        cmd = " ".join([
            NVCC,
            "-std=c++17",
            "-O3",
            "-Xcompiler=-fPIC,-Wall,-Wextra,-Werror",
            "-Werror=all-warnings",
            "-I.",
        ] + _GENCODE + copts + [
            "-lib",
            "-o $@",
        ] + ["$(location %s)" % s for s in srcs]),
        message = "nvcc %s" % name,
    )
    native.cc_library(
        name = name,
        srcs = [archive],
        hdrs = hdrs,
        deps = deps + ["@local_cuda//:cudart"],
        linkstatic = True,
        **kwargs
    )
