#include "text/fix_text.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/utf8.h"
#include "text/html_unescape.h"
#include "text/mojibake.h"
#include "text/unicode_ranges.h"

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
struct WidthForm {
  uint32_t code;
  const char* standard;
};
struct HtmlEntity {
  const char* name;
  const char* value;
};
#include "text/fix_text_unicode.inc"

// ---- NFD and NFC -----------------------------------------------------------------------------------------

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

// Below U+00C0 nothing decomposes or combines: NFD and NFC leave such text as it is.
bool below_decompositions(const std::u32string& text) {
  return std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0xC0; });
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
  // The composing pairs, indexed once by (first, second).
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

std::u32string nfd(const std::u32string& text) {
  if (below_decompositions(text)) return text;
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
  return d;
}

std::u32string nfc(const std::u32string& text) {
  if (below_decompositions(text)) return text;
  const std::u32string d = nfd(text);
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

bool is_decimal_digit(char32_t cp) { return in_ranges(kDecimalDigitRanges, cp); }
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
    c = windows_1252(c);
    if (const char32_t* parts = ligature(c)) {
      for (; *parts; ++parts) width_and_rest(*parts);
    } else {
      width_and_rest(c);
    }
  }
  // Line breaks: CRLF, CR, U+2028, U+2029 -> '\n'. ftfy's U+0085 (NEL) is already '…' here: C1 controls come first.
  std::u32string lines;
  lines.reserve(out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    const char32_t c = out[i];
    if (c == U'\r') {
      lines += U'\n';
      if (i + 1 < out.size() && out[i + 1] == U'\n') ++i;
    } else if (c == 0x2028 || c == 0x2029) {
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
  for (int pass = 0; pass < kMaxFixPasses; ++pass) {
    std::u32string fixed = fix_mojibake(unescape ? unescape_entities(text) : text);
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
