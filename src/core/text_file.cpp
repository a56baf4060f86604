#include "core/text_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"

namespace pathvlm {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  PATHVLM_CHECK(in, "cannot read '", path, "': ", std::strerror(errno));
  std::string text(std::istreambuf_iterator<char>(in), {});
  PATHVLM_CHECK(!in.bad(), "cannot read '", path, "': read error");
  return text;
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  PATHVLM_CHECK(out, "cannot write '", path, "'");
}

}  // namespace pathvlm
