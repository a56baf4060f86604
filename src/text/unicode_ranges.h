// Sorted, disjoint code point ranges: the form of the generated Unicode tables (src/text/*_unicode.inc).
#pragma once
#include <algorithm>
#include <cstdint>
#include <iterator>

namespace pathvlm::text {

struct UnicodeRange {
  uint32_t lo, hi;
};

template <size_t N>
bool in_ranges(const UnicodeRange (&table)[N], uint32_t cp) {
  auto it = std::upper_bound(std::begin(table), std::end(table), cp,
                             [](uint32_t c, const UnicodeRange& r) { return c < r.lo; });
  return it != std::begin(table) && cp <= std::prev(it)->hi;
}

}  // namespace pathvlm::text
