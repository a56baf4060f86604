#include "text/fix_text.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <vector>

#include "core/utf8.h"
#include "text/html_unescape.h"

namespace pathvlm::text {
namespace {

struct Decomposition {
  uint32_t code, first, second;  // second == 0: a singleton
  bool composes;                 // NFC puts first + second back together as code
};
struct CombiningRun {
  uint32_t first, last;
  int combining_class;
};
struct UnicodeRange {
  uint32_t lo, hi;
};
struct WidthForm {
  uint32_t code;
  const char* standard;
};
struct HtmlEntity {
  const char* name;
  const char* value;
};
struct MojibakeChar {
  uint32_t code, classes;  // MojibakeClass bits
};
#include "text/fix_text_unicode.inc"

// ---- NFC -------------------------------------------------------------------------------------------------

// Hangul syllables decompose and compose by arithmetic, not by table.
constexpr char32_t kHangulFirst = 0xAC00, kLeadFirst = 0x1100, kVowelFirst = 0x1161, kTrailFirst = 0x11A7;
constexpr int kLeads = 19, kVowels = 21, kTrails = 28, kSyllables = kLeads * kVowels * kTrails;

int combining_class(char32_t cp) {
  auto it = std::upper_bound(std::begin(kCombiningClasses), std::end(kCombiningClasses), cp,
                             [](char32_t c, const CombiningRun& r) { return c < r.first; });
  return it != std::begin(kCombiningClasses) && cp <= std::prev(it)->last ? std::prev(it)->combining_class : 0;
}

const Decomposition* decomposition(char32_t cp) {
  auto it = std::lower_bound(std::begin(kDecompositions), std::end(kDecompositions), cp,
                             [](const Decomposition& d, char32_t c) { return d.code < c; });
  return it != std::end(kDecompositions) && it->code == cp ? it : nullptr;
}

void decompose(char32_t cp, std::u32string& out) {
  if (cp >= kHangulFirst && cp < kHangulFirst + kSyllables) {
    const int index = static_cast<int>(cp - kHangulFirst);
    out += kLeadFirst + index / (kVowels * kTrails);
    out += kVowelFirst + index % (kVowels * kTrails) / kTrails;
    if (index % kTrails != 0) out += kTrailFirst + index % kTrails;
  } else if (const Decomposition* d = decomposition(cp)) {
    decompose(d->first, out);
    if (d->second != 0) decompose(d->second, out);
  } else {
    out += cp;
  }
}

// The primary composite of starter + next, or 0.
char32_t compose(char32_t starter, char32_t next) {
  if (starter >= kLeadFirst && starter < kLeadFirst + kLeads && next >= kVowelFirst && next < kVowelFirst + kVowels) {
    return kHangulFirst + ((starter - kLeadFirst) * kVowels + (next - kVowelFirst)) * kTrails;
  }
  if (starter >= kHangulFirst && starter < kHangulFirst + kSyllables && (starter - kHangulFirst) % kTrails == 0 &&
      next > kTrailFirst && next < kTrailFirst + kTrails) {
    return starter + (next - kTrailFirst);
  }
  // Few pairs share a second character; a linear scan over the composing ones is fast enough for captions,
  // but build the (first, second) index once.
  struct Pair {
    uint64_t key;
    char32_t code;
  };
  static const std::vector<Pair> pairs = [] {
    std::vector<Pair> p;
    for (const auto& d : kDecompositions) {
      if (d.composes) p.push_back({(uint64_t(d.first) << 32) | d.second, d.code});
    }
    std::sort(p.begin(), p.end(), [](const Pair& a, const Pair& b) { return a.key < b.key; });
    return p;
  }();
  const uint64_t key = (uint64_t(starter) << 32) | next;
  auto it = std::lower_bound(pairs.begin(), pairs.end(), key, [](const Pair& p, uint64_t k) { return p.key < k; });
  return it != pairs.end() && it->key == key ? it->code : 0;
}

}  // namespace

std::u32string nfc(const std::u32string& text) {
  // Below U+00C0 nothing decomposes or combines.
  if (std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0xC0; })) return text;
  std::u32string d;
  d.reserve(text.size());
  for (char32_t cp : text) decompose(cp, d);
  // Canonical order: each run of combining marks stably sorted by class.
  for (size_t i = 0; i < d.size();) {
    if (combining_class(d[i]) == 0) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < d.size() && combining_class(d[end]) != 0) ++end;
    std::stable_sort(d.begin() + i, d.begin() + end,
                     [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = end;
  }
  // Composition: a mark joins the last starter unless a character between them has class 0 or >= its own.
  std::u32string out;
  out.reserve(d.size());
  size_t starter = std::u32string::npos;
  int last_class = 0;
  for (char32_t cp : d) {
    const int cls = combining_class(cp);
    if (starter != std::u32string::npos) {
      const bool adjacent = starter + 1 == out.size();
      if (adjacent || (last_class != 0 && last_class < cls)) {
        if (char32_t composite = compose(out[starter], cp)) {
          out[starter] = composite;
          continue;
        }
      }
    }
    if (cls == 0) starter = out.size();
    last_class = cls;
    out += cp;
  }
  return out;
}

namespace {

// ---- ftfy's fixes, each one pass -----------------------------------------------------------------------

bool is_decimal_digit(char32_t cp) {
  auto it = std::upper_bound(std::begin(kDecimalDigitRanges), std::end(kDecimalDigitRanges), cp,
                             [](char32_t c, const UnicodeRange& r) { return c < r.lo; });
  return it != std::begin(kDecimalDigitRanges) && cp <= std::prev(it)->hi;
}
bool is_ascii_alnum(char32_t c) { return (c >= U'0' && c <= U'9') || (c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z'); }
bool is_ascii_letter(char32_t c) { return (c | 0x20) >= U'a' && (c | 0x20) <= U'z'; }

// What ftfy makes of one match of &#?[0-9A-Za-z]{1,24}; : an entity of the HTML5 table that ends in ';', an
// all-caps form of a lower-case one, or a numeric reference that html.unescape consumes whole; else itself.
std::u32string entity_replacement(const std::u32string& match) {
  const std::u32string body = match.substr(1, match.size() - 2);  // without '&' and ';'
  if (body[0] != U'#') {
    const std::string name = utf32_to_utf8(body) + ";";
    if (const char* value = html5_entity(name)) return utf8_to_utf32(value);
    const std::string upper = "&" + name;
    auto it = std::lower_bound(std::begin(kUpperCaseEntities), std::end(kUpperCaseEntities), upper,
                               [](const HtmlEntity& e, const std::string& n) { return std::strcmp(e.name, n.c_str()) < 0; });
    if (it != std::end(kUpperCaseEntities) && upper == it->name) return utf8_to_utf32(it->value);
    return match;
  }
  const bool hex = body.size() > 2 && (body[1] == U'x' || body[1] == U'X');
  const size_t first = hex ? 2 : 1;
  if (first >= body.size()) return match;
  uint64_t num = 0;
  for (size_t k = first; k < body.size(); ++k) {
    const char32_t c = body[k];
    uint32_t digit;
    if (c >= U'0' && c <= U'9') {
      digit = c - U'0';
    } else if (hex && (c | 0x20) >= U'a' && (c | 0x20) <= U'f') {
      digit = (c | 0x20) - U'a' + 10;
    } else {
      return match;  // html.unescape would stop before ';' and leave it: ftfy keeps the text
    }
    num = std::min<uint64_t>(num * (hex ? 16 : 10) + digit, uint64_t(1) << 40);  // saturate: > U+10FFFF anyway
  }
  std::u32string value = html_numeric_reference(num);
  return value.find(U';') == std::u32string::npos ? value : match;  // ftfy's test for a partly decoded reference
}

std::u32string unescape_entities(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (s[i] == U'&') {
      size_t k = i + 1 + (i + 1 < s.size() && s[i + 1] == U'#');
      const size_t start = k;
      while (k < s.size() && k - start < 24 && is_ascii_alnum(s[k])) ++k;
      if (k > start && k < s.size() && s[k] == U';') {
        out += entity_replacement(s.substr(i, k + 1 - i));
        i = k + 1;
        continue;
      }
    }
    out += s[i++];
  }
  return out;
}

// C1 controls read as Windows-1252 (its five unassigned bytes stay themselves, as in ftfy's sloppy codec).
char32_t windows_1252(char32_t c1) {
  static const char16_t kHigh[32] = {0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                     0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,   0x017D, 0x8F,
                                     0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                     0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};
  return kHigh[c1 - 0x80];
}

// Latin ligatures and legacy digraphs ftfy takes apart (not æ, œ and the like, which are meant).
const char32_t* ligature(char32_t c) {
  switch (c) {
    case 0x132: return U"IJ";
    case 0x133: return U"ij";
    case 0x149: return U"\u02BCn";
    case 0x1C4: return U"D\u017D";
    case 0x1C5: return U"D\u017E";
    case 0x1C6: return U"d\u017E";
    case 0x1C7: return U"LJ";
    case 0x1C8: return U"Lj";
    case 0x1C9: return U"lj";
    case 0x1CA: return U"NJ";
    case 0x1CB: return U"Nj";
    case 0x1CC: return U"nj";
    case 0x1F1: return U"DZ";
    case 0x1F2: return U"Dz";
    case 0x1F3: return U"dz";
    case 0xFB00: return U"ff";
    case 0xFB01: return U"fi";
    case 0xFB02: return U"fl";
    case 0xFB03: return U"ffi";
    case 0xFB04: return U"ffl";
    case 0xFB05: return U"\u017Ft";
    case 0xFB06: return U"st";
    default: return nullptr;
  }
}

const char* standard_width(char32_t c) {
  auto it = std::lower_bound(std::begin(kWidthForms), std::end(kWidthForms), c,
                             [](const WidthForm& w, char32_t x) { return w.code < x; });
  return it != std::end(kWidthForms) && it->code == c ? it->standard : nullptr;
}

// Invisible controls: C0 but tab, LF, FF, CR; DEL; deprecated Arabic format controls; BOM; interlinear annotation
// and object replacement characters.
bool is_removed_control(char32_t c) {
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
         c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

// ---- Mojibake (ftfy's fix_encoding) ---------------------------------------------------------------------
// Text that was UTF-8 but got decoded with a single-byte codec ("cafÃ©") is spotted by ftfy's heuristic: pairs and
// triples of characters from classes (accented letters, currency, box drawing, ...) that real text rarely puts
// side by side. Then the text is encoded back with the first codec that can hold it and decoded as UTF-8.

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

template <size_t N>
bool in_ranges(const UnicodeRange (&table)[N], char32_t cp) {
  auto it = std::upper_bound(std::begin(table), std::end(table), cp,
                             [](char32_t c, const UnicodeRange& r) { return c < r.lo; });
  return it != std::begin(table) && cp <= std::prev(it)->hi;
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
  std::string out;
  for (size_t i = 0; i < fixed.size();) {
    const size_t len = altered_utf8_at(fixed, i);
    if (len == 0) {
      out += fixed[i++];
      continue;
    }
    for (size_t k = i; k < i + len; ++k) out += fixed[k] == ' ' ? '\xA0' : fixed[k];
    i += len;
  }
  return out;
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
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const size_t len = lossy_utf8_at(s, i);
    if (len == 0) {
      out += s[i++];
    } else {
      out += "\xEF\xBF\xBD";
      i += len;
    }
  }
  return out;
}

// Strict UTF-8, plus the variants ftfy reads: CESU-8 surrogate pairs and Java's two-byte NUL.
std::optional<std::u32string> decode_utf8_variants(const std::string& s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    auto byte = [&](size_t k) -> unsigned char { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0; };
    if (byte(i) == 0xC0 && byte(i + 1) == 0x80) {
      out += U'\0';
      i += 2;
      continue;
    }
    if (byte(i) == 0xED && byte_in(byte(i + 1), 0xA0, 0xAF) && continuation(byte(i + 2)) && byte(i + 3) == 0xED &&
        byte_in(byte(i + 4), 0xB0, 0xBF) && continuation(byte(i + 5))) {
      out += 0x10000 + ((byte(i + 1) & 0x0F) << 16) + ((byte(i + 2) & 0x3F) << 10) + ((byte(i + 4) & 0x0F) << 6) +
             (byte(i + 5) & 0x3F);
      i += 6;
      continue;
    }
    const unsigned char b = byte(i);
    const int extra = b < 0x80 ? 0 : (b >> 5) == 6 ? 1 : (b >> 4) == 14 ? 2 : (b >> 3) == 30 ? 3 : -1;
    if (extra < 0 || i + extra >= s.size()) return std::nullopt;
    const std::string one = s.substr(i, extra + 1);
    if (utf8_error_at(one) != std::string::npos) return std::nullopt;
    out += utf8_to_utf32(one)[0];
    i += extra + 1;
  }
  return out;
}

bool fixes_c1(const std::u32string& t) {
  return std::any_of(t.begin(), t.end(), [](char32_t c) { return c >= 0x80 && c <= 0x9F; });
}
std::u32string c1_as_windows_1252(std::u32string t) {
  for (auto& c : t) {
    if (c >= 0x80 && c <= 0x9F) c = windows_1252(c);
  }
  return t;
}

std::u32string fix_encoding(std::u32string text);

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
  std::u32string out;
  for (size_t i = 0; i < t.size();) {
    const size_t len = utf8_mojibake_at(t, i);
    if (len == 0) {
      out += t[i++];
      continue;
    }
    const std::u32string run = t.substr(i, len);
    out += len < t.size() && looks_like_mojibake(run) ? fix_encoding(run) : run;
    i += len;
  }
  return out;
}

std::u32string fix_encoding_step(const std::u32string& text) {
  if (std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x80; }) || !looks_like_mojibake(text)) {
    return text;
  }
  bool latin1 = false;
  for (int codec = 0; codec < kCodecCount; ++codec) {
    std::optional<std::string> bytes = encode(text, codec);
    if (!bytes) continue;
    latin1 |= codec == kLatin1;
    if (codec != kMacRoman) *bytes = restore_byte_a0(*bytes);  // in MacRoman "– " would look the same
    if (is_sloppy(codec)) *bytes = replace_lossy_sequences(*bytes);
    if (auto fixed = decode_utf8_variants(*bytes)) return *fixed;
  }
  bool has_run = false;
  for (size_t i = 0; i < text.size() && !has_run; ++i) has_run = utf8_mojibake_at(text, i) > 0;
  if (has_run) {
    std::u32string fixed = decode_inconsistent_utf8(text);
    if (fixed != text) return fixed;
  }
  // Latin-1 meant as Windows-1252 (strict: its five unassigned bytes make this fail).
  if (latin1 && std::none_of(text.begin(), text.end(), [](char32_t c) { return one_of(c, U"\u0081\u008d\u008f\u0090\u009d"); })) {
    std::u32string fixed = c1_as_windows_1252(text);
    if (fixed != text) return fixed;
  }
  return fixes_c1(text) ? c1_as_windows_1252(text) : text;
}

// ftfy repeats its steps until the text stops changing; the bound only guards a data loader against a text that
// would never settle (none is known).
constexpr int kMaxPasses = 64;

std::u32string fix_encoding(std::u32string text) {
  for (int pass = 0; pass < kMaxPasses; ++pass) {
    std::u32string fixed = fix_encoding_step(text);
    if (fixed == text) break;
    text = std::move(fixed);
  }
  return text;
}

// The character-by-character fixes, in ftfy's order: C1 controls, ligatures, widths, quotes, line breaks.
std::u32string fix_characters(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  auto width_and_rest = [&](char32_t c) {
    if (const char* standard = standard_width(c)) {
      for (char32_t w : utf8_to_utf32(standard)) out += w;  // a standard form is never a quote or a break
      return;
    }
    if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) c = U'\'';
    if (c >= 0x201C && c <= 0x201F) c = U'"';
    out += c;
  };
  for (char32_t c : s) {
    if (c >= 0x80 && c <= 0x9F) c = windows_1252(c);
    if (const char32_t* parts = ligature(c)) {
      for (; *parts; ++parts) width_and_rest(*parts);
    } else {
      width_and_rest(c);
    }
  }
  // Line breaks: CRLF, CR, U+2028, U+2029, U+0085 -> '\n' (U+0085 is already '…' here, as in ftfy's order).
  std::u32string lines;
  lines.reserve(out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    const char32_t c = out[i];
    if (c == U'\r') {
      lines += U'\n';
      if (i + 1 < out.size() && out[i + 1] == U'\n') ++i;
    } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
      lines += U'\n';
    } else {
      lines += c;
    }
  }
  return lines;
}

// ESC [ (digits | ;)* letter, then the invisible controls.
std::u32string remove_escapes_and_controls(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == 0x1B && i + 1 < s.size() && s[i + 1] == U'[') {
      size_t k = i + 2;
      while (k < s.size() && (s[k] == U';' || is_decimal_digit(s[k]))) ++k;
      if (k < s.size() && is_ascii_letter(s[k])) {
        i = k;
        continue;
      }
    }
    if (!is_removed_control(s[i])) out += s[i];
  }
  return out;
}

std::u32string fix_segment(std::u32string text, bool unescape) {
  // Printable ASCII, tabs and newlines without '&': no fix applies (most captions).
  if (std::all_of(text.begin(), text.end(),
                  [](char32_t c) { return (c >= 0x20 && c < 0x7F && c != U'&') || c == U'\t' || c == U'\n'; })) {
    return text;
  }
  for (int pass = 0; pass < kMaxPasses; ++pass) {
    std::u32string fixed = fix_encoding(unescape ? unescape_entities(text) : text);
    fixed = nfc(remove_escapes_and_controls(fix_characters(fixed)));
    if (fixed == text) break;
    text = std::move(fixed);
  }
  return text;
}

}  // namespace

std::u32string fix_text(const std::u32string& text) {
  std::u32string out;
  out.reserve(text.size());
  bool unescape = true;  // off from the first line holding '<' on: it looks like HTML, whose entities are meant
  for (size_t pos = 0; pos < text.size();) {
    const size_t newline = text.find(U'\n', pos);
    const size_t end = newline == std::u32string::npos ? text.size() : newline + 1;
    const std::u32string segment = text.substr(pos, end - pos);
    if (segment.find(U'<') != std::u32string::npos) unescape = false;
    out += fix_segment(segment, unescape);
    pos = end;
  }
  return out;
}

}  // namespace pathvlm::text
