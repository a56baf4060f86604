#include "text/mojibake.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/utf8.h"
#include "text/fix_text.h"
#include "text/unicode_ranges.h"

namespace pathvlm::text {

char32_t windows_1252(char32_t c) {
  if (c < 0x80 || c > 0x9F) return c;
  static const char16_t kHigh[32] = {0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                     0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,   0x017D, 0x8F,
                                     0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                     0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};
  return kHigh[c - 0x80];
}

namespace {

struct MojibakeChar {
  uint32_t code, classes;  // MojibakeClass bits
};
#include "text/mojibake_unicode.inc"

bool is_ascii_letter(char32_t c) { return (c | 0x20) >= U'a' && (c | 0x20) <= U'z'; }

enum MojibakeClass : uint32_t {
  kC1 = 1u << 0, kBad = 1u << 1, kLaw = 1u << 2, kCurrency = 1u << 3, kStartPunct = 1u << 4, kEndPunct = 1u << 5,
  kNumeric = 1u << 6, kKaomoji = 1u << 7, kUpperAccented = 1u << 8, kLowerAccented = 1u << 9,
  kUpperCommon = 1u << 10, kLowerCommon = 1u << 11, kBox = 1u << 12, kCommon = 1u << 13, kUtf8First2 = 1u << 14,
  kUtf8First3 = 1u << 15, kUtf8First4 = 1u << 16, kUtf8Continuation = 1u << 17, kUtf8ContinuationStrict = 1u << 18,
  kAccented = kUpperAccented | kLowerAccented,
};

uint32_t mojibake_classes(char32_t c) {
  auto it = std::lower_bound(std::begin(kMojibakeChars), std::end(kMojibakeChars), c,
                             [](const MojibakeChar& m, char32_t x) { return m.code < x; });
  return it != std::end(kMojibakeChars) && it->code == c ? it->classes : 0;
}

bool python_space(char32_t c) { return in_ranges(kPythonSpaceRanges, c); }
bool python_word(char32_t c) { return in_ranges(kWordRanges, c); }
bool ascii_lower(char32_t c) { return c >= U'a' && c <= U'z'; }
bool one_of(char32_t c, const char32_t* set) {
  for (; *set; ++set) {
    if (*set == c) return true;
  }
  return false;
}

// ftfy's badness regex, alternative by alternative, at every position.
bool looks_like_mojibake(const std::u32string& t) {
  const size_t n = t.size();
  auto at = [&](size_t i) -> char32_t { return i < n ? t[i] : 0; };  // 0 is in no class nor set below
  auto cls = [&](size_t i) -> uint32_t { return i < n ? mojibake_classes(t[i]) : 0; };
  constexpr uint32_t kSymbols = kBox | kStartPunct | kEndPunct | kCurrency | kNumeric | kLaw;
  auto arabic_pair = [&](size_t i) {  // [ØÙ] then common, currency, bad, numeric, opening or a few more
    return one_of(at(i), U"\u00d8\u00d9") &&
           ((cls(i + 1) & (kCommon | kCurrency | kBad | kNumeric | kStartPunct)) ||
            one_of(at(i + 1), U"\u0178\u0160\u00ae\u00b0\u00b5\u00bb"));
  };
  for (size_t i = 0; i < n; ++i) {
    const char32_t a = t[i], b = at(i + 1), c = at(i + 2);
    const uint32_t A = cls(i), B = cls(i + 1), C = cls(i + 2);
    if ((A & kC1) || ((A & (kBad | kAccented | kSymbols)) && (B & kBad)) ||
        (is_ascii_letter(a) && (B & (kLowerCommon | kUpperCommon)) && (C & kBad)) ||
        ((A & kBad) && (B & (kAccented | kSymbols))) ||
        ((A & (kLowerAccented | kLowerCommon | kBox | kEndPunct | kCurrency | kNumeric)) && (B & kUpperAccented)) ||
        ((A & (kBox | kEndPunct | kCurrency | kNumeric)) && (B & kLowerAccented)) ||
        ((A & (kLowerAccented | kBox | kEndPunct)) && (B & kCurrency)) ||
        (python_space(a) && (B & kUpperAccented) && (C & kCurrency)) ||
        ((A & (kUpperAccented | kBox)) && (B & (kNumeric | kLaw))) ||
        ((A & (kAccented | kBox | kCurrency | kEndPunct)) && (B & kStartPunct) && (C & kNumeric)) ||
        ((A & (kAccented | kCurrency | kNumeric | kBox | kLaw)) && (B & kEndPunct) && (C & kStartPunct)) ||
        ((A & (kCurrency | kNumeric | kBox)) && (B & kStartPunct)) ||
        (ascii_lower(a) && (B & kUpperAccented) && (C & (kStartPunct | kCurrency))) ||
        ((A & kBox) && (B & (kKaomoji | kEndPunct))) ||
        ((A & (kAccented | kCurrency | kNumeric | kStartPunct | kEndPunct | kLaw)) && (B & kBox)) ||
        ((A & kAccented) && (B & (kStartPunct | kEndPunct)) && i + 2 < n && python_word(c))) {
      return true;
    }
    // Literal sequences: œ before a non-letter, degree signs after capitals, Windows-1252 pairs, × before ² or ³.
    if ((one_of(a, U"\u0152\u0153") && i + 1 < n && !is_ascii_letter(b)) || ((A & kUpperAccented) && b == U'\u00b0') ||
        (one_of(a, U"\u00c2\u00c3\u00ce\u00d0") &&
         (one_of(b, U"\u20ac\u0153\u0160\u0161\u00a2\u00a3\u0178\u017e\u00a0\u00ad\u00ae\u00a9\u00b0\u00b7\u00bb"
                    U"\u2013\u2014\u00b4") ||
          (B & (kStartPunct | kEndPunct)))) ||
        (a == U'\u00d7' && one_of(b, U"\u00b2\u00b3")) || (arabic_pair(i) && arabic_pair(i + 2)) ||
        (a == U'\u00e0' && one_of(b, U"\u00b2\u00b5\u00b9\u00bc\u00bd\u00be"))) {
      return true;
    }
    // MacRoman, Windows-1251, -1253 and -1257 sequences.
    if ((a == U'\u221a' && one_of(b, U"\u00b1\u2202\u2020\u2260\u00ae\u2122\u00b4\u2264\u2265\u00a5\u00b5\u00f8")) ||
        (a == U'\u2248' && one_of(b, U"\u00b0\u00a2")) ||
        (a == U'\u201a' && b == U'\u00c4' && one_of(c, U"\u00ec\u00ee\u00ef\u00f2\u00f4\u00fa\u00f9\u00fb\u2020\u00b0\u00a2\u03c0")) ||
        (a == U'\u201a' && one_of(b, U"\u00e2\u00f3") && one_of(c, U"\u00e0\u00e4\u00b0\u00ea")) ||
        (a == U'\u0432' && b == U'\u0402') ||
        (one_of(a, U"\u0412\u0413\u0420\u0421") &&
         ((B & (kC1 | kBad | kStartPunct | kEndPunct | kCurrency)) || one_of(b, U"\u00b0\u00b5")) &&
         one_of(c, U"\u0412\u0413\u0420\u0421")) ||
        (t.compare(i, 5, U"\u0413\u045e\u0412\u0402\u0412") == 0 && i + 6 < n && t[i + 5] != U'\n' &&
         (is_ascii_letter(t[i + 6]) || t[i + 6] == U' ')) ||
        (a == U'\u00c3' && one_of(b, U"\u00a0\u00a1")) ||
        (ascii_lower(a) && ((one_of(b, U"\u00c3\u00c2") && c == U' ') ||
                            (python_space(b) && one_of(c, U"\u00c3\u00c2") && at(i + 3) == U' '))) ||
        (i == 0 && one_of(a, U"\u00c3\u00c2") && b == U' ') ||
        ((ascii_lower(a) || one_of(a, U".,?!") || (A & kEndPunct)) && b == U'\u00c2' &&
         (c == U' ' || (C & (kStartPunct | kEndPunct)))) ||
        (a == U'\u03b2' && b == U'\u20ac' && one_of(c, U"\u2122\u00a0\u0386\u00ad\u00ae\u00b0")) ||
        (one_of(a, U"\u0392\u0393\u039e\u039f") &&
         ((B & (kC1 | kBad | kStartPunct | kEndPunct | kCurrency)) || b == U'\u00b0') &&
         one_of(c, U"\u0392\u0393\u039e\u039f")) ||
        (a == U'\u0101' && b == U'\u20ac')) {
      return true;
    }
  }
  return false;
}

// The codecs of kCodecs, in the order ftfy tries them.
enum Codec { kLatin1, kSloppy1252, kSloppy1251, kSloppy1250, kSloppy1253, kSloppy1254, kSloppy1257, kIso8859_2,
             kMacRoman, kCp437, kCodecCount };
bool is_sloppy(int codec) { return codec >= kSloppy1252 && codec <= kSloppy1257; }

// The bytes `text` is in `codec`, or nothing if a character has no byte there.
std::optional<std::string> encode(const std::u32string& text, int codec) {
  static const auto byte_of = [] {
    std::vector<std::unordered_map<char32_t, unsigned char>> maps(kCodecCount);
    for (int k = 0; k < kCodecCount; ++k) {
      for (int b = 255; b >= 0; --b) maps[k][kCodecs[k][b]] = static_cast<unsigned char>(b);
    }
    return maps;
  }();
  std::string bytes;
  bytes.reserve(text.size());
  for (char32_t c : text) {
    auto it = byte_of[codec].find(c);
    if (it == byte_of[codec].end()) return std::nullopt;
    bytes += static_cast<char>(it->second);
  }
  return bytes;
}

// re.sub's scan: left to right, each run `match_at` finds (its length, 0 for none) replaced by `replace(run)`.
template <class Text, class Match, class Replace>
Text substitute(const Text& s, Match match_at, Replace replace) {
  Text out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t len = match_at(s, i);
    if (len == 0) {
      out += s[i++];
      continue;
    }
    out += replace(s.substr(i, len));
    i += len;
  }
  return out;
}

bool byte_in(unsigned char b, unsigned lo, unsigned hi) { return b >= lo && b <= hi; }
bool continuation(unsigned char b) { return byte_in(b, 0x80, 0xBF); }

// A run of bytes that would be UTF-8 had a process not turned its 0xA0 into a space (ftfy's restore_byte_a0):
// its length at `p`, or 0.
size_t altered_utf8_at(const std::string& s, size_t p) {
  auto byte = [&](size_t i) -> unsigned char { return i < s.size() ? static_cast<unsigned char>(s[i]) : 0; };
  auto middle = [](unsigned char b) { return byte_in(b, 0x80, 0x84) || byte_in(b, 0x86, 0x9F) || byte_in(b, 0xA1, 0xBF); };
  const unsigned char a = byte(p), b = byte(p + 1), c = byte(p + 2), d = byte(p + 3);
  if ((a == 0xC2 || a == 0xC3 || a == 0xC5 || a == 0xCE || a == 0xD0 || a == 0xD9) && b == ' ') return 2;
  if ((a == 0xE2 || a == 0xE3) && b == ' ' && middle(c)) return 3;
  if (byte_in(a, 0xE0, 0xE3) && middle(b) && c == ' ') return 3;
  if (a == 0xF0 && ((b == ' ' && continuation(c) && continuation(d)) || (continuation(b) && c == ' ' && continuation(d)) ||
                    (continuation(b) && continuation(c) && d == ' '))) {
    return 4;
  }
  return 0;
}

std::string restore_byte_a0(const std::string& s) {
  // "Ã " is "à " unless a Portuguese contraction ("às", "àquele", ...) or a double space follows.
  std::string fixed;
  for (size_t i = 0; i < s.size(); ++i) {
    fixed += s[i];
    if (static_cast<unsigned char>(s[i]) == 0xC3 && i + 1 < s.size() && s[i + 1] == ' ') {
      const std::string rest = s.substr(i + 2, 5);
      if (rest.rfind(" ", 0) != 0 && rest.rfind("quele", 0) != 0 && rest.rfind("quela", 0) != 0 &&
          rest.rfind("quilo", 0) != 0 && rest.rfind("s ", 0) != 0) {
        fixed += '\xA0';
      }
    }
  }
  return substitute(fixed, altered_utf8_at, [](std::string run) {
    std::replace(run.begin(), run.end(), ' ', '\xA0');
    return run;
  });
}

// UTF-8 sequences whose lost bytes a sloppy codec wrote as 0x1A (or '?'): their length at `p`, or 0.
size_t lossy_utf8_at(const std::string& s, size_t p) {
  auto byte = [&](size_t i) -> unsigned char { return i < s.size() ? static_cast<unsigned char>(s[i]) : 0; };
  auto lost = [](unsigned char b) { return b == 0x1A || b == '?'; };
  auto lost_or_cont = [](unsigned char b) { return b == 0x1A || continuation(b); };
  const unsigned char a = byte(p), b = byte(p + 1), c = byte(p + 2), d = byte(p + 3);
  if (byte_in(a, 0xC2, 0xDF) && b == 0x1A) return 2;
  if (byte_in(a, 0xC2, 0xC3) && b == '?') return 2;
  if (a == 0xED && byte_in(b, 0xA0, 0xAF) && d == 0xED && byte_in(byte(p + 4), 0xB0, 0xBF)) {
    const unsigned char f = byte(p + 5);
    if ((lost(c) && (lost(f) || continuation(f))) || ((lost(c) || continuation(c)) && lost(f))) return 6;
  }
  if (byte_in(a, 0xE0, 0xEF) && ((lost(b) && lost_or_cont(c)) || (lost_or_cont(b) && lost(c)))) return 3;
  if (byte_in(a, 0xF0, 0xF4) && ((lost(b) && lost_or_cont(c) && lost_or_cont(d)) ||
                                 (lost_or_cont(b) && lost(c) && lost_or_cont(d)) ||
                                 (lost_or_cont(b) && lost_or_cont(c) && lost(d)))) {
    return 4;
  }
  return a == 0x1A ? 1 : 0;
}

std::string replace_lossy_sequences(const std::string& s) {
  return substitute(s, lossy_utf8_at, [](const std::string&) { return std::string("\xEF\xBF\xBD"); });
}

// Strict UTF-8, plus the variants ftfy reads: CESU-8 surrogate pairs and Java's two-byte NUL. Like ftfy, finds
// those byte sequences anywhere and decodes the bytes between them strictly.
std::optional<std::u32string> decode_utf8_variants(const std::string& s) {
  auto byte = [&](size_t k) -> unsigned char { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0; };
  std::u32string out;
  size_t plain = 0;  // first byte not decoded yet
  auto decode_plain = [&](size_t end) {
    const std::string run = s.substr(plain, end - plain);
    if (utf8_error_at(run) != std::string::npos) return false;
    out += utf8_to_utf32(run);
    return true;
  };
  for (size_t i = 0; i < s.size();) {
    char32_t special = 0;
    size_t len = 0;
    if (byte(i) == 0xC0 && byte(i + 1) == 0x80) {
      len = 2;
    } else if (byte(i) == 0xED && byte_in(byte(i + 1), 0xA0, 0xAF) && continuation(byte(i + 2)) &&
               byte(i + 3) == 0xED && byte_in(byte(i + 4), 0xB0, 0xBF) && continuation(byte(i + 5))) {
      special = 0x10000 + ((byte(i + 1) & 0x0F) << 16) + ((byte(i + 2) & 0x3F) << 10) + ((byte(i + 4) & 0x0F) << 6) +
                (byte(i + 5) & 0x3F);
      len = 6;
    }
    if (len == 0) {
      ++i;
      continue;
    }
    if (!decode_plain(i)) return std::nullopt;
    out += special;
    i += len;
    plain = i;
  }
  if (!decode_plain(s.size())) return std::nullopt;
  return out;
}

std::u32string c1_as_windows_1252(std::u32string t) {
  for (auto& c : t) c = windows_1252(c);
  return t;
}

// (?<![continuation_strict]) ([first_of_2][cont] | [first_of_3][cont]{2} | [first_of_4][cont]{3})+ at `i`: its
// length, or 0. Each step takes the first alternative that fits, as the regex does.
size_t utf8_mojibake_at(const std::u32string& t, size_t i) {
  if (i > 0 && (mojibake_classes(t[i - 1]) & kUtf8ContinuationStrict)) return 0;
  auto continues = [&](size_t from, size_t count) {
    for (size_t k = from; k < from + count; ++k) {
      if (k >= t.size() || !(mojibake_classes(t[k]) & kUtf8Continuation)) return false;
    }
    return true;
  };
  size_t k = i;
  while (k < t.size()) {
    const uint32_t first = mojibake_classes(t[k]);
    size_t step = 0;
    for (auto [lead, count] : {std::pair{kUtf8First2, 1}, std::pair{kUtf8First3, 2}, std::pair{kUtf8First4, 3}}) {
      if ((first & lead) && continues(k + 1, count)) {
        step = count + 1;
        break;
      }
    }
    if (step == 0) break;
    k += step;
  }
  return k - i;
}

// Mojibake embedded in otherwise consistent text: each UTF-8-looking run that is itself bad is fixed alone.
std::u32string decode_inconsistent_utf8(const std::u32string& t) {
  return substitute(t, utf8_mojibake_at, [&](const std::u32string& run) {
    return run.size() < t.size() && looks_like_mojibake(run) ? fix_mojibake(run) : run;
  });
}

std::u32string fix_encoding_step(const std::u32string& text) {
  if (std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x80; }) || !looks_like_mojibake(text)) {
    return text;
  }
  for (int codec = 0; codec < kCodecCount; ++codec) {
    std::optional<std::string> bytes = encode(text, codec);
    if (!bytes) continue;
    if (codec != kMacRoman) *bytes = restore_byte_a0(*bytes);  // in MacRoman "– " would look the same
    if (is_sloppy(codec)) *bytes = replace_lossy_sequences(*bytes);
    if (auto fixed = decode_utf8_variants(*bytes)) return *fixed;
  }
  std::u32string fixed = decode_inconsistent_utf8(text);
  if (fixed != text) return fixed;
  // C1 controls left: Latin-1 meant as Windows-1252. (ftfy first tries a strict Windows-1252 decode of the whole
  // text, which gives the same characters where it succeeds.)
  return c1_as_windows_1252(text);
}

}  // namespace

std::u32string fix_mojibake(std::u32string text) {
  for (int pass = 0; pass < kMaxFixPasses; ++pass) {
    std::u32string fixed = fix_encoding_step(text);
    if (fixed == text) break;
    text = std::move(fixed);
  }
  return text;
}

}  // namespace pathvlm::text
