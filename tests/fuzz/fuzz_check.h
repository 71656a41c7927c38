// The check of a fuzz target: an invariant that fails prints what and aborts, which
// libFuzzer reports as a crash (and saves the input) and the corpus test as a failure.
#ifndef PS_TESTS_FUZZ_FUZZ_CHECK_H_
#define PS_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>

#include "absl/status/status.h"

#define PS_FUZZ_CHECK(cond, what)                                                 \
  do {                                                                            \
    if (!(cond)) {                                                                \
      std::fprintf(stderr, "%s:%d: check failed: %s: %s\n", __FILE__, __LINE__, \
                   #cond, std::string(what).c_str());                             \
      std::abort();                                                               \
    }                                                                             \
  } while (0)

namespace ps::fuzz {

// True when `s` is an error that names a field: a non-empty message whose first
// token (up to ':') begins with one of `prefixes` ("spec", "slices[" ...).
inline bool NamesField(const absl::Status& s, std::initializer_list<const char*> prefixes) {
  const std::string m(s.message());
  for (const char* p : prefixes) {
    if (m.rfind(p, 0) == 0 && m.find(':') != std::string::npos) return true;
  }
  return false;
}

}  // namespace ps::fuzz

#endif  // PS_TESTS_FUZZ_FUZZ_CHECK_H_
