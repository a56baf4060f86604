// "a, b, c": lists of names in messages and logs.
//
//   PATHVLM_CHECK(ok, "none of ", join(paths), " holds slides");
#pragma once
#include <string>
#include <vector>

namespace pathvlm {

inline std::string join(const std::vector<std::string>& items, const std::string& separator = ", ") {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? separator : "") + items[i];
  return out;
}

}  // namespace pathvlm
