#include "core/glob.h"

namespace pathvlm {

bool glob_match(const std::string& pattern, const std::string& text) {
  // Iterative matching with one backtrack point: the last `*` seen absorbs one more character on a mismatch.
  size_t p = 0, t = 0, star = std::string::npos, star_text = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p, ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++, star_text = t;
    } else if (star != std::string::npos) {
      p = star + 1, t = ++star_text;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace pathvlm
