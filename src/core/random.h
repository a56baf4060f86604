// Small deterministic hashing for seeds: the same (seed, epoch, index) gives the same stream on every
// machine and libtorch version, which bit-exact resume and reproducible demo data rely on.
#pragma once
#include <cstdint>

namespace pathvlm {

// SplitMix64's finaliser: a well-mixed 64-bit value of x.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace pathvlm
