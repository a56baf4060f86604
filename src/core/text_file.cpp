#include "core/text_file.h"

#include <fstream>
#include <iterator>

#include "core/error.h"

namespace pathvlm {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  PATHVLM_CHECK(in, "cannot read '", path, "'");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  PATHVLM_CHECK(out, "cannot write '", path, "'");
}

}  // namespace pathvlm
