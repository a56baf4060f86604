// The pixel mean and std of OpenAI's CLIP: what CLIP image towers were trained with, so open_clip's, transformers'
// CLIPImageProcessor's and pathvlm's defaults. Models and data both need them and neither depends on the other.
#pragma once
#include <array>

namespace pathvlm {

constexpr std::array<double, 3> kOpenAiMean = {0.48145466, 0.4578275, 0.40821073};
constexpr std::array<double, 3> kOpenAiStd = {0.26862954, 0.26130258, 0.27577711};

}  // namespace pathvlm
