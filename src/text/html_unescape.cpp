#include "text/html_unescape.h"

#include <algorithm>
#include <cstring>

#include "core/utf8.h"

namespace pathvlm::text {
namespace {

struct HtmlEntity {
  const char* name;
  const char* value;
};
struct CharRef {
  uint32_t code, replacement;
};
#include "text/html_entities.inc"

}  // namespace

const char* html5_entity(const std::string& name) {
  auto it = std::lower_bound(std::begin(kHtmlEntities), std::end(kHtmlEntities), name,
                             [](const HtmlEntity& e, const std::string& n) { return std::strcmp(e.name, n.c_str()) < 0; });
  return it != std::end(kHtmlEntities) && name == it->name ? it->value : nullptr;
}

std::u32string html_numeric_reference(uint64_t num) {
  auto ref = std::lower_bound(std::begin(kInvalidCharRefs), std::end(kInvalidCharRefs), num,
                              [](const CharRef& r, uint64_t n) { return r.code < n; });
  if (ref != std::end(kInvalidCharRefs) && ref->code == num) return std::u32string(1, ref->replacement);
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return U"\uFFFD";
  if (std::binary_search(std::begin(kInvalidCodepoints), std::end(kInvalidCodepoints), num)) return U"";
  return std::u32string(1, static_cast<char32_t>(num));
}

std::u32string html_unescape(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != U'&') {
      out += s[i++];
      continue;
    }
    size_t j = i + 1;
    if (j < s.size() && s[j] == U'#') {
      bool hex = j + 1 < s.size() && (s[j + 1] == U'x' || s[j + 1] == U'X');
      auto is_digit = [&](char32_t c) {
        return (c >= U'0' && c <= U'9') || (hex && ((c >= U'a' && c <= U'f') || (c >= U'A' && c <= U'F')));
      };
      // "&#x" without hex digits may still be a decimal reference only if a digit follows '#'.
      size_t k = j + (hex ? 2 : 1);
      if (hex && !(k < s.size() && is_digit(s[k]))) hex = false, k = j + 1;
      size_t start = k;
      uint64_t num = 0;
      while (k < s.size() && is_digit(s[k])) {
        uint32_t c = s[k];
        uint32_t d = c <= U'9' ? c - U'0' : (c | 0x20) - U'a' + 10;
        num = std::min<uint64_t>(num * (hex ? 16 : 10) + d, uint64_t(1) << 40);  // saturate: > 0x10FFFF anyway
        ++k;
      }
      if (k == start) {  // "&#" not followed by a number: not a reference
        out += s[i++];
        continue;
      }
      if (k < s.size() && s[k] == U';') ++k;
      out += html_numeric_reference(num);
      i = k;
      continue;
    }
    // Named: up to 32 characters other than \t \n \f space < & # ;, then an optional ';'.
    size_t k = j;
    while (k < s.size() && k - j < 32) {
      char32_t c = s[k];
      if (c == U'\t' || c == U'\n' || c == U'\f' || c == U' ' || c == U'<' || c == U'&' || c == U'#' || c == U';') break;
      ++k;
    }
    if (k == j) {
      out += s[i++];
      continue;
    }
    if (k < s.size() && s[k] == U';') ++k;
    std::u32string name = s.substr(j, k - j);
    std::string name_utf8 = utf32_to_utf8(name);
    if (const char* value = html5_entity(name_utf8)) {
      out += utf8_to_utf32(value);
    } else {
      bool found = false;
      for (size_t x = name.size() - 1; x > 1; --x) {  // longest prefix of at least 2 characters
        if (const char* value = html5_entity(utf32_to_utf8(name.substr(0, x)))) {
          out += utf8_to_utf32(value);
          out += name.substr(x);
          found = true;
          break;
        }
      }
      if (!found) {
        out += U'&';
        out += name;
      }
    }
    i = k;
  }
  return out;
}

}  // namespace pathvlm::text
