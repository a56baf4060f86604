// UTF-8 validity: what JSON (checkpoints' trainer_state.json, metrics) and file names shown to users need.
//
//   size_t bad = utf8_error_at(text);   // std::string::npos: valid
#pragma once
#include <string>

namespace pathvlm {

// Offset of the first byte that does not start a valid UTF-8 sequence (overlong forms, surrogates and code
// points beyond U+10FFFF are invalid); std::string::npos when `text` is valid.
size_t utf8_error_at(const std::string& text);

}  // namespace pathvlm
