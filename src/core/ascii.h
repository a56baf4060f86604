// ASCII case folding for names and keys (file extensions, activation names, SLURM states, config words): the
// letters A-Z only, whatever the process locale (std::tolower follows it); UTF-8 bytes are left as they are.
//
//   ascii_lower(".SVS");   // ".svs"
#pragma once
#include <string>

namespace pathvlm {

inline std::string ascii_lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

}  // namespace pathvlm
