// Whole small files as strings (config.json, index files, tokenizer settings); errors name the file.
//
//   auto config = read_text_file(dir + "/config.json");
//   write_text_file(out + "/config.json", config.dump(2));
#pragma once
#include <string>

namespace pathvlm {

// The file's bytes; throws "cannot read '<path>'" when it cannot be opened.
std::string read_text_file(const std::string& path);
// Creates or replaces the file with `text`; throws "cannot write '<path>'" when that fails.
void write_text_file(const std::string& path, const std::string& text);

}  // namespace pathvlm
