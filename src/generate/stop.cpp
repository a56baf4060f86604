#include "generate/stop.h"

#include <algorithm>

#include "core/error.h"

namespace pathvlm::generate {

StopStrings::StopStrings(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (const auto& stop : stops_) PATHVLM_CHECK(!stop.empty(), "generate: a stop string is empty");
}

size_t StopStrings::find(const std::string& text) const {
  size_t earliest = std::string::npos;
  for (const auto& stop : stops_) earliest = std::min(earliest, text.find(stop));
  return earliest;
}

}  // namespace pathvlm::generate
