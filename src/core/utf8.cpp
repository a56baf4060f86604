#include "core/utf8.h"

#include <cstdint>

#include "core/error.h"

namespace pathvlm {
namespace {

// Bytes after a lead byte: 0-3, or -1 for a byte no sequence starts with.
int continuation_bytes(unsigned char b) { return b < 0x80 ? 0 : (b >> 5) == 6 ? 1 : (b >> 4) == 14 ? 2 : (b >> 3) == 30 ? 3 : -1; }

}  // namespace

size_t utf8_error_at(const std::string& s) {
  static const uint32_t kMinForLength[] = {0, 0x80, 0x800, 0x10000};
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const int extra = continuation_bytes(b);
    if (extra < 0 || s.size() - i <= static_cast<size_t>(extra)) return i;  // unknown lead byte, or cut short
    uint32_t cp = extra == 0 ? b : (b & (0x3F >> extra));
    for (int k = 1; k <= extra; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (c & 0x3F);
    }
    if (cp < kMinForLength[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += extra + 1;
  }
  return std::string::npos;
}

std::u32string utf8_to_utf32(const std::string& s, const char* what) {
  const size_t bad = utf8_error_at(s);
  PATHVLM_CHECK(bad == std::string::npos, what, " is not valid UTF-8 (byte ", bad, ")");
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const int extra = continuation_bytes(b);
    char32_t cp = extra == 0 ? b : (b & (0x3F >> extra));
    for (int k = 1; k <= extra; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out.push_back(cp);
    i += extra + 1;
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string utf32_to_utf8(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (auto cp : s) append_utf8(out, cp);
  return out;
}

}  // namespace pathvlm
