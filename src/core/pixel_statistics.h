// Pixel statistics: the mean and std an image encoder's input is normalised with.
// OpenAI's CLIP's are what CLIP image towers were trained with, so open_clip's, transformers' CLIPImageProcessor's
// and pathvlm's defaults; models and data both need them and neither depends on the other.
#pragma once
#include <array>
#include <string>
#include <vector>

#include "core/error.h"

namespace pathvlm {

constexpr std::array<double, 3> kOpenAiMean = {0.48145466, 0.4578275, 0.40821073};
constexpr std::array<double, 3> kOpenAiStd = {0.26862954, 0.26130258, 0.27577711};

// A config's replacement mean / std (empty: the encoder's own): 3 values each, the std positive. Errors name
// `where` and the keys.
inline void check_pixel_statistics(const std::vector<double>& mean, const std::vector<double>& std,
                                   const std::string& mean_key, const std::string& std_key, const std::string& where) {
  PATHVLM_CHECK(mean.empty() || mean.size() == 3, where, ": ", mean_key, " needs 3 values [r,g,b], got ", mean.size());
  PATHVLM_CHECK(std.empty() || std.size() == 3, where, ": ", std_key, " needs 3 values [r,g,b], got ", std.size());
  for (double s : std) PATHVLM_CHECK(s > 0, where, ": ", std_key, " values must be > 0, got ", s);
}

// `given` (a config's 3 values, checked by check_pixel_statistics) where given, else `own`.
inline std::array<double, 3> given_or(const std::vector<double>& given, const std::array<double, 3>& own) {
  return given.empty() ? own : std::array<double, 3>{given.at(0), given.at(1), given.at(2)};
}

}  // namespace pathvlm
