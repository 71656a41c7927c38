"""`ps_proto_library`: C++ messages and gRPC stubs from .proto files, offline.

Runs Debian's `protoc` with `grpc_cpp_plugin` (both on PATH from the packages
protobuf-compiler and protobuf-compiler-grpc) and wraps the output in a cc_library.
Imports are written relative to the workspace root: `import "proto/job.proto";`.
"""

def ps_proto_library(name, srcs, deps = [], grpc = True, visibility = None):
    """Generates `<name>` (cc_library) from `srcs`.

    Args:
      name: the cc_library to create; `<name>_srcs` is a filegroup of the .proto files.
      srcs: .proto files in this package.
      deps: other ps_proto_library targets whose .proto files these import.
      grpc: also generate service stubs (.grpc.pb.h/.cc).
      visibility: of the cc_library and the filegroup.
    """
    native.filegroup(
        name = name + "_srcs",
        srcs = srcs + [d + "_srcs" for d in deps],
        visibility = visibility,
    )
    stems = [s[:-len(".proto")] for s in srcs]
    hdrs = [s + ".pb.h" for s in stems]
    cc = [s + ".pb.cc" for s in stems]
    if grpc:
        hdrs += [s + ".grpc.pb.h" for s in stems]
        cc += [s + ".grpc.pb.cc" for s in stems]
    pkg = native.package_name()
    cmd = ("protoc -I. --cpp_out=$(GENDIR) " +
           ("--grpc_out=$(GENDIR) --plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin) " if grpc else "") +
           " ".join(["%s/%s" % (pkg, s) for s in srcs]))
    native.genrule(
        name = name + "_gen",
        srcs = [name + "_srcs"],
        outs = hdrs + cc,
        cmd = cmd,
        message = "protoc %s" % name,
    )
    native.cc_library(
        name = name,
        srcs = cc,
        hdrs = hdrs,
        # Generated code is not ours to keep warning-free.
        copts = ["-Wno-unused-parameter", "-Wno-error"],
        deps = deps + ["//third_party:protobuf"] + (["//third_party:grpc"] if grpc else []),
        visibility = visibility,
    )
