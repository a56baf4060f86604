// Config of a slide encoder (models/slide/encoder.h): which aggregator turns a padded batch of bags of tile
// features into slide tokens, and its shape. Light header: no torch.
//
//   models::slide::SlideEncoderConfig c;   // a config section, e.g. `slide.encoder` of a task
//   c.kind = "qformer"; c.input_dim = 768; c.queries = 32;
//   models::slide::SlideEncoder encoder(c);
#pragma once
#include <cstdint>
#include <string>

#include "core/config.h"

namespace pathvlm::models::slide {

struct SlideEncoderConfig {
  std::string kind = "abmil";
  int64_t input_dim = 512;
  int64_t width = 256;
  int64_t heads = 4;
  int64_t layers = 2;
  int64_t queries = 16;
  double dropout = 0.0;
  int64_t attention_chunk = 1024;
  int64_t grid_stride = 256;
  template <class V>
  void visit(V& v) {
    v.field("kind", kind,
            "aggregator: abmil (gated attention pooling, one token), transformer (tile transformer with 2-D "
            "positions, the CLS token) or qformer (learned queries cross-attending to the tiles, `queries` tokens)",
            cfg::OneOf{"abmil", "transformer", "qformer"});
    v.field("input_dim", input_dim, "width D of the tile features (must equal the data's: 512 for CONCH, 1024 for UNI, ...)", cfg::Min(1));
    v.field("width", width, "hidden width W of the encoder and of its slide tokens (transformer: a multiple of 4)",
            cfg::Min(1));
    v.field("heads", heads, "attention heads (transformer, qformer: must divide width; abmil: attention branches, each pooling the "
            "whole bag)",
            cfg::Min(1));
    v.field("layers", layers, "transformer / qformer blocks (abmil: unused)", cfg::Min(1));
    v.field("queries", queries, "qformer: learned query tokens = slide tokens per slide", cfg::Min(1));
    v.field("dropout", dropout, "dropout after the input projection and on residual branches while training",
            cfg::Range(0.0, 0.9));
    v.field("attention_chunk", attention_chunk,
            "queries and keys per chunk of the memory-linear attention on CPU (peak memory ~ chunk^2 per head)",
            cfg::Min(1));
    v.field("grid_stride", grid_stride,
            "level-0 pixels per grid cell of the transformer's 2-D positions: cell = floor(coord / grid_stride) "
            "(the tile size at level 0: 512 for 256 px tiles read at 20x from a 40x slide)",
            cfg::Min(1));
  }
  // Checks the keys together (heads dividing width, the transformer's width a multiple of 4, sizes a model can
  // have); errors start with `where`.
  void validate(const std::string& where) const;
};

}  // namespace pathvlm::models::slide
