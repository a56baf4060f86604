// pathvlm::Error and the uniform checks every part of the code uses.
//
//   PATHVLM_CHECK(n > 0, "shard '", path, "': dataset /images is empty");
//   throw pathvlm::Error(pathvlm::str("config ", file, ":", line, ": unknown key '", key, "'"));
//
// Messages name the file and the thing that is wrong; the program prints them and exits non-zero.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace pathvlm {

// The exit status of a command that failed with an error, on one process or (dist::abort_job) many.
constexpr int kExitError = 2;

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Concatenates anything streamable: str("step ", step, " loss ", loss).
template <class... Args>
std::string str(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}

}  // namespace pathvlm

#define PATHVLM_CHECK(cond, ...)                                  \
  do {                                                            \
    if (!(cond)) throw ::pathvlm::Error(::pathvlm::str(__VA_ARGS__)); \
  } while (0)
