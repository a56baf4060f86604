// A size a model config gives (a width, a count of layers or heads, a vocabulary): positive, and at most `most`
// (far beyond any real model), so that parameter counts and allocations computed from it cannot overflow. Errors
// name `where` and the key: "<where>: text_layers must be positive, got 0", "<where>: text_layers 5000 is too large
// (at most 1024)". Shared by the CLIP, LLaMA and slide encoder configs.
#pragma once
#include <cstdint>
#include <string>

#include "core/error.h"

namespace pathvlm::models {

inline void check_model_size(const std::string& where, const char* key, int64_t value, int64_t most) {
  PATHVLM_CHECK(value > 0, where, ": ", key, " must be positive, got ", value);
  PATHVLM_CHECK(value <= most, where, ": ", key, " ", value, " is too large (at most ", most, ")");
}

}  // namespace pathvlm::models
