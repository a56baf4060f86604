// Per-character Unicode properties that more than one tokenizer applies, from Python's unicodedata and str.lower()
// (text/char_properties_unicode.inc, written by scripts/gen_bpe_unicode_tables.py).
//
//   std::u32string out;
//   append_lowercase(out, U'\u0130');   // out == U"i\u0307"
//   is_mark(U'\u0301');                 // true: a combining acute accent
#pragma once
#include <string>

namespace pathvlm::text {

// Appends the lower case of `cp`: Unicode's full lowercase mapping without context, which is both what Python's
// str.lower() gives for one character and Rust's char::to_lowercase() (U+0130 becomes "i\u0307", U+03A3 always
// U+03C3: str.lower()'s final-sigma rule looks at the neighbours and is left to the caller). Rust's Unicode may be
// newer than the table's: capitals assigned since (Unicode 16's, for one) stay as they are here.
void append_lowercase(std::u32string& out, char32_t cp);

// Whether `cp` is a mark (general category M*: Mn, Mc, Me), what the tokenizers library's StripAccents removes. The
// library's table is Unicode 9.0's: the marks assigned since (about 300, in scripts such as Dives Akuru) it keeps,
// and U+1CF2/U+1CF3 (marks then, letters now) it removes.
bool is_mark(char32_t cp);

}  // namespace pathvlm::text
