#include "models/clip/config.h"

#include "core/error.h"

namespace pathvlm::models {

void ClipModelConfig::validate(const std::string& where) const {
  try {
    resolve_clip_config(*this);
  } catch (const Error& e) {
    throw Error(str(where, ": ", e.what()));
  }
}

}  // namespace pathvlm::models
