"""`ps_fuzz_target`: one libFuzzer target, built two ways.

For a target NAME (source NAME_fuzz.cc, seed corpus corpus/NAME/):
  NAME_fuzzer  a cc_binary: under --config=fuzz (clang, tests/fuzz/run_fuzzers.sh) a
               libFuzzer binary; in any other build the corpus driver, so it builds
               with gcc too;
  NAME_fuzz_test  a cc_test running every seed-corpus file once (gcc, `bazel test`).
"""

def ps_fuzz_target(name, deps, hdrs = []):
    native.cc_library(
        name = name + "_fuzz_lib",
        testonly = True,
        srcs = [name + "_fuzz.cc"] + hdrs,
        deps = deps + [":fuzz_check"],
        alwayslink = True,
    )
    native.cc_binary(
        name = name + "_fuzzer",
        testonly = True,
        deps = [":" + name + "_fuzz_lib"] + select({
            ":fuzz_build": [],
            "//conditions:default": [":corpus_main"],
        }),
        linkopts = select({
            ":fuzz_build": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
    )
    native.cc_test(
        name = name + "_fuzz_test",
        size = "small",
        args = ["tests/fuzz/corpus/" + name],
        data = native.glob(["corpus/%s/**" % name]),
        deps = [
            ":" + name + "_fuzz_lib",
            ":corpus_main",
        ],
    )
