// Linked into the test binaries that may touch a GPU. The CUDA driver maps memory in
// the address range AddressSanitizer's shadow gap protects, so under ASan cuInit and
// cudaMalloc fail unless the gap is left unprotected. Ignored without ASan; options in
// ASAN_OPTIONS still apply on top.
extern "C" const char* __asan_default_options() { return "protect_shadow_gap=0"; }
