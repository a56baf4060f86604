// Token features of every tile in `tiles` shards with a frozen encoder (a CLIP image tower or a ViT tile encoder),
// cached as `tile_features` shards for the instruction trainer (`pathvlm embed --tiles SHARDS --encoder DIR --out
// DIR`).
//
//   EmbedConfig c;  c.tokens_dtype = "float32";                  // float32: the tower's output bit for bit
//   auto encoder = load_tile_encoder("clip-vit-l14/", c);
//   auto report = embed_tiles({"shards/train", "feats"}, c, encoder);
//   // feats/tokens/tiles-00000.h5 ... (c.tiles_per_shard records each) + manifest.json   (tile_features/1)
//   auto feats = data::TileFeatureDataset::open(report.manifest);  // ids = the tiles' ids, in shard order
//
// Each tile gets TileLoader's evaluation transform (shortest side to the encoder's image size, center crop, the
// encoder's normalisation); the tokens are the hidden state `token_layer` (HF indexing) with the class token (and a
// ViT's register tokens) first. Shards carry
// the attributes `encoder` and `token_layer`. Each shard is written to a temp file and renamed when complete, and the
// manifest is written last (an earlier one is removed first), so an interrupted run leaves no manifest and no half
// shard; a rerun writes everything again.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "wsi/embed.h"
#include "wsi/embed_config.h"

namespace pathvlm::wsi {

struct TileEmbedRequest {
  std::string tiles;  // tiles shards: a manifest.json, its folder, or one .h5 (as data::TileDataset::open takes)
  std::string out;    // the shards go to <out>/tokens/
};

struct TileEmbedReport {
  int64_t records = 0;
  std::vector<std::string> shards;  // paths, in order
  std::string manifest;
};

TileEmbedReport embed_tiles(const TileEmbedRequest& request, const EmbedConfig& config, const TileEncoder& encoder);

}  // namespace pathvlm::wsi
