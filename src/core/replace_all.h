// Every occurrence of a string replaced, as Python's str.replace and Rust's String::replace do: left to right,
// without overlaps, what a replacement writes not looked at again.
//
//   replace_all("a b  c", " ", "\u2581");   // "a▁b▁▁c"
#pragma once
#include <string>

namespace pathvlm {

inline std::string replace_all(const std::string& text, const std::string& from, const std::string& to) {
  if (from.empty()) return text;
  std::string out;
  size_t pos = 0;
  for (size_t at; (at = text.find(from, pos)) != std::string::npos; pos = at + from.size())
    out.append(text, pos, at - pos) += to;
  return out.append(text, pos);
}

}  // namespace pathvlm
