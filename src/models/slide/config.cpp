#include "models/slide/config.h"

#include "core/error.h"
#include "models/model_size.h"

namespace pathvlm::models::slide {

void SlideEncoderConfig::validate(const std::string& where) const {
  constexpr int64_t kMaxSize = int64_t(1) << 20, kMaxLayers = 1024;
  const std::pair<const char*, int64_t> sizes[] = {{"input_dim", input_dim},
                                                   {"width", width},
                                                   {"heads", heads},
                                                   {"queries", queries},
                                                   {"attention_chunk", attention_chunk},
                                                   {"grid_stride", grid_stride}};
  for (const auto& [key, value] : sizes) check_model_size(where, key, value, kMaxSize);
  PATHVLM_CHECK(layers > 0 && layers <= kMaxLayers, where, ": layers must be in [1, ", kMaxLayers, "], got ", layers);
  PATHVLM_CHECK(dropout >= 0.0 && dropout < 1.0, where, ": dropout ", dropout, " is outside [0, 1)");
  PATHVLM_CHECK(kind == "abmil" || kind == "transformer" || kind == "qformer", where, ": unknown kind '", kind,
                "' (abmil, transformer, qformer)");
  PATHVLM_CHECK(kind == "abmil" || width % heads == 0, where, ": heads ", heads, " must divide width ", width, " (",
                kind, ")");
  PATHVLM_CHECK(kind != "transformer" || width % 4 == 0, where, ": width ", width,
                " must be a multiple of 4 (the transformer's 2-D positions)");
}

}  // namespace pathvlm::models::slide
