// Small deterministic hashing for seeds: the same (seed, epoch, index) gives the same stream on every
// machine and libtorch version, which bit-exact resume and reproducible demo data rely on.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace pathvlm {

// SplitMix64's finaliser: a well-mixed 64-bit value of x.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A seeded stream of uniform draws over splitmix64: the same on every machine.
struct SeededDraws {
  uint64_t state;
  uint64_t below(uint64_t bound) {  // rejection keeps it unbiased
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t x;
    do x = state = splitmix64(state); while (x >= limit);
    return x % bound;
  }
  // Fisher-Yates with below().
  template <class T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }
};

}  // namespace pathvlm
