// Shell-style glob matching of names: * matches any run of characters (dots included), ? one character.
// Used for parameter patterns (train.freeze) and module patterns (LoRA targets).
//
//   glob_match("blocks.*.attn.q_proj", "blocks.3.attn.q_proj");   // true
#pragma once
#include <string>

namespace pathvlm {

// `pattern` against the whole of `text`.
bool glob_match(const std::string& pattern, const std::string& text);

}  // namespace pathvlm
