"""Repository rule that exposes the local CUDA toolkit to Bazel, offline.

It looks for the toolkit at $CUDA_PATH, else /usr/local/cuda, symlinks its include and
lib64 folders into an external repository and writes a BUILD with `cudart` (static, so
a binary needs only the driver) and `cublas`. It also writes `defs.bzl` with the nvcc
path that `//third_party/cuda:cuda.bzl` uses. A machine without the toolkit still
loads the workspace: `HAS_CUDA` is False and CUDA targets fail with a clear message.
"""

def _cuda_configure_impl(rctx):
    root = rctx.os.environ.get("CUDA_PATH", "/usr/local/cuda")
    nvcc = rctx.path(root + "/bin/nvcc")
    has_cuda = nvcc.exists
    if has_cuda:
        rctx.symlink(root + "/include", "include")
        rctx.symlink(root + "/lib64", "lib64")
        build = """
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "cuda_headers",
    hdrs = glob(["include/**/*.h", "include/**/*.hpp"]),
    includes = ["include"],
)

cc_library(
    name = "cudart",
    srcs = ["lib64/libcudart_static.a"],
    linkopts = ["-ldl", "-lrt", "-lpthread"],
    deps = [":cuda_headers"],
)

cc_library(
    name = "cublas",
    linkopts = [
        "-L{root}/lib64",
        "-Wl,-rpath,{root}/lib64",
        "-lcublas",
        "-lcublasLt",
    ],
    deps = [":cudart"],
)
""".format(root = root)
    else:
        build = """
package(default_visibility = ["//visibility:public"])

cc_library(name = "cuda_headers")
cc_library(name = "cudart")
cc_library(name = "cublas")
"""
    rctx.file("BUILD", build)
    rctx.file("defs.bzl", "HAS_CUDA = {}\nNVCC = \"{}\"\nCUDA_ROOT = \"{}\"\n".format(
        has_cuda,
        str(nvcc) if has_cuda else "",
        root,
    ))

cuda_configure = repository_rule(
    implementation = _cuda_configure_impl,
    environ = ["CUDA_PATH"],
    local = True,
)
