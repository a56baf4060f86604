// ftfy's fix_encoding, one step of fix_text (text/fix_text.h): undoes mojibake, UTF-8 text that was decoded with a
// single-byte codec, where ftfy's heuristic spots it.
//
//   fix_mojibake(U"caf\u00c3\u00a9")   // U"caf\u00e9"
//
// The heuristic looks for pairs and triples of characters from classes (accented letters, currency, box drawing,
// ...) that real text rarely puts side by side. Text it flags is encoded back with the first of ten codecs (Latin-1,
// Windows-125x, ISO 8859-2, MacRoman, CP437) that holds it, with 0xA0 bytes that became spaces and lost bytes
// restored, and decoded as UTF-8 (CESU-8 and Java's NUL included); mojibake inside otherwise consistent text is
// fixed run by run; remaining C1 controls become Windows-1252.
#pragma once
#include <string>

namespace pathvlm::text {

std::u32string fix_mojibake(std::u32string text);

// A C1 control (U+0080..U+009F) read as Windows-1252; its five unassigned bytes stay themselves (ftfy's "sloppy"
// codec), as does every other character.
char32_t windows_1252(char32_t c);

}  // namespace pathvlm::text
