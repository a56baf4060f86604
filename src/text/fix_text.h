// ftfy.fix_text with its default settings: the first thing open_clip's tokenizer does to every text, so the
// CLIP tokenizer does it too (curly quotes and ligatures, for one, must become the tokens open_clip makes).
//
//   fix_text(U"Crohn\u2019s \uFB01brosis")   // U"Crohn's fibrosis"
//
// Each line (up to and with its '\n') is fixed on its own, every fix applied in ftfy's order until nothing
// changes: HTML entities ending in ';' (not in a line with '<', nor in any line after one), mojibake (UTF-8 read
// with one of ten single-byte codecs, "cafÃ©", where ftfy's heuristic spots it), C1 controls as Windows-1252, Latin
// ligatures, halfwidth/fullwidth forms, curly quotes, line breaks to '\n', terminal escapes and invisible control
// characters removed, NFC. Lone surrogates, which ftfy also fixes, cannot occur in the valid UTF-8 the tokenizer
// accepts. The mojibake repair is text/mojibake.h.
#pragma once
#include <string>

namespace pathvlm::text {

std::u32string fix_text(const std::u32string& text);

// ftfy repeats its steps until the text stops changing; this bound on the passes (of fix_text and fix_mojibake)
// only guards a data loader against a text that would never settle (none is known).
constexpr int kMaxFixPasses = 64;

// Unicode canonical decomposition (NFD: decomposed, combining marks in canonical order) and composition (NFC), as
// Python's unicodedata.normalize("NFD" / "NFC", text) gives them.
std::u32string nfd(const std::u32string& text);
std::u32string nfc(const std::u32string& text);

}  // namespace pathvlm::text
