// UTF-8 validity and conversion: what JSON (checkpoints' trainer_state.json, metrics), file names shown to users
// and code-point-wise text handling (the CLIP tokenizer) need.
//
//   size_t bad = utf8_error_at(text);        // std::string::npos: valid
//   std::u32string cps = utf8_to_utf32(text);  // throws, naming the byte, if `text` is not valid UTF-8
#pragma once
#include <string>

namespace pathvlm {

// Offset of the first byte that does not start a valid UTF-8 sequence (overlong forms, surrogates and code
// points beyond U+10FFFF are invalid); std::string::npos when `text` is valid.
size_t utf8_error_at(const std::string& text);

// Code points of valid UTF-8 text; an Error naming `what` and the first bad byte otherwise.
std::u32string utf8_to_utf32(const std::string& text, const char* what = "text");
void append_utf8(std::string& out, char32_t cp);
std::string utf32_to_utf8(const std::u32string& text);

}  // namespace pathvlm
