// Python's html.unescape and the HTML5 entity table behind it (src/text/html_entities.inc, generated from
// Python's `html` module by scripts/gen_clip_unicode_tables.py). open_clip's tokenizer and ftfy both use them.
//
//   html_unescape(U"H&amp;E &#181;m")   // U"H&E µm"
#pragma once
#include <cstdint>
#include <string>

namespace pathvlm::text {

// html.unescape: &#123; &#x7b; (';' optional), named references (the longest known prefix for names
// without ';'); anything else is kept as written.
std::u32string html_unescape(const std::u32string& text);

// The UTF-8 value of a name of html.entities.html5 ("amp;", "amp", "Eacute;"), or nullptr.
const char* html5_entity(const std::string& name);

// What html.unescape makes of the numeric reference &#num;: C1 controls as Windows-1252, surrogates and
// numbers past U+10FFFF as U+FFFD, control characters and non-characters dropped.
std::u32string html_numeric_reference(uint64_t num);

}  // namespace pathvlm::text
