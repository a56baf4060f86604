#include "text/char_properties.h"

#include <algorithm>
#include <cstdint>
#include <iterator>

#include "text/unicode_ranges.h"

namespace pathvlm::text {
namespace {

struct LowerRun {
  uint32_t first, last;
  int stride, delta;
};
#include "text/char_properties_unicode.inc"

}  // namespace

void append_lowercase(std::u32string& out, char32_t cp) {
  // The one character whose lower case is two (SpecialCasing's only unconditional lowercase entry).
  if (cp == 0x130) {
    out += U"i\u0307";
    return;
  }
  auto it = std::upper_bound(std::begin(kLowerRuns), std::end(kLowerRuns), static_cast<uint32_t>(cp),
                             [](uint32_t c, const LowerRun& r) { return c < r.first; });
  if (it != std::begin(kLowerRuns)) {
    const auto& run = *std::prev(it);
    if (cp <= run.last && (cp - run.first) % run.stride == 0) {
      out += static_cast<char32_t>(static_cast<int64_t>(cp) + run.delta);
      return;
    }
  }
  out += cp;
}

bool is_mark(char32_t cp) { return in_ranges(kMarkRanges, cp); }

}  // namespace pathvlm::text
