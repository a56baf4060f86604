// PIL's resampling filters by number (Image.Resampling), as transformers' preprocessor_config.json `resample` gives
// them: NEAREST 0, LANCZOS 1, BILINEAR 2, BICUBIC 3, BOX 4, HAMMING 5.
#pragma once
#include <array>
#include <cstdint>
#include <string>

namespace pathvlm {

inline constexpr std::array<const char*, 6> kPilFilters = {"nearest", "lanczos", "bilinear", "bicubic", "box",
                                                            "hamming"};

// "bicubic", ...; "PIL filter N" for a number PIL does not have.
inline std::string pil_filter_name(int64_t number) {
  return number >= 0 && number < static_cast<int64_t>(kPilFilters.size()) ? kPilFilters[number]
                                                                          : "PIL filter " + std::to_string(number);
}

// The number of the filter `name`, -1 for a name PIL does not have.
inline int64_t pil_filter_number(const std::string& name) {
  for (size_t i = 0; i < kPilFilters.size(); ++i)
    if (name == kPilFilters[i]) return static_cast<int64_t>(i);
  return -1;
}

}  // namespace pathvlm
