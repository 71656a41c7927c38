// Hashes that are stable across processes, machines and releases. Placement and
// initialisation depend on them, so they must never change; absl::Hash is seeded per
// process and is not usable here.
#ifndef PS_COMMON_HASH_H_
#define PS_COMMON_HASH_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace ps {

// SplitMix64 finaliser: a bijective mix of 64 bits.
constexpr uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// FNV-1a 64 over bytes, continuing from `seed` (pass the previous result to chain).
constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
uint64_t Fnv1a64(absl::string_view bytes, uint64_t seed = kFnvOffset);

// Combines two hashes; order matters.
constexpr uint64_t HashCombine(uint64_t a, uint64_t b) {
  return Mix64(a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2)));
}

}  // namespace ps

#endif  // PS_COMMON_HASH_H_
