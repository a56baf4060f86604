// `tile_features` shards: a frozen image encoder's token features of tiles (a CLIP tower's, a ViT's), cached so the
// instruction trainer does not run the encoder every epoch (written by `pathvlm embed --tiles` or `--coords ...
// --tokens`).
//
//   auto feats = TileFeatureDataset::open("feats/tokens/");   // a manifest.json, its folder, or a single .h5 shard
//   auto i = feats.index_of("images/train/stroma_00003.png"); // std::optional<int64_t>
//   torch::Tensor x = feats.features(*i);                      // float32 [tokens(), width()]
//   feats.token_layer();  feats.pixel_normalisation();         // what the trainer checks against its tower
//
// Every shard must agree on T, D, `token_layer`, `encoder` and `pixel_normalisation`; ids are unique over all
// shards. Errors name the manifest and the shard.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/checked_rows.h"

namespace pathvlm::data {

// Random access to the records of a set of tile_features shards. Ids are held in memory; features are read on
// demand. Safe to use from several threads (HDF5 reads are serialised).
class TileFeatureDataset {
 public:
  static TileFeatureDataset open(const std::string& path);

  int64_t size() const { return static_cast<int64_t>(ids_.size()); }
  int64_t tokens() const { return tokens_; }  // T
  int64_t width() const { return width_; }    // D
  const std::string& source() const { return source_; }
  const std::vector<std::string>& shard_paths() const { return shard_paths_; }

  const std::string& id(int64_t i) const;
  std::optional<int64_t> index_of(const std::string& id) const;
  // The record's tokens as a new float32 CPU tensor [T,D] (converted from float16 shards).
  torch::Tensor features(int64_t i) const;
  std::string where(int64_t i) const;  // "shard 'x.h5' record 12 (id 'a.png')"

  // The shards' `encoder` attribute (the model that made them), absent in files that do not carry it.
  const std::optional<std::string>& encoder() const { return encoder_; }
  // The shards' `token_layer` attribute: the hidden state stored, in HF hidden_states indexing (-2 = penultimate
  // block); absent in files written before it was recorded.
  std::optional<int> token_layer() const { return token_layer_; }
  // The shards' `pixel_normalisation` attribute (describe_pixel_normalisation of the encoder's mean/std); absent in
  // files written before it was recorded.
  const std::optional<std::string>& pixel_normalisation() const { return pixel_normalisation_; }

 private:
  struct Shard {
    std::string path;
    std::shared_ptr<const shards::CheckedRows> features;
    int64_t first = 0, count = 0;
  };
  const Shard& shard_of(int64_t i, int64_t& local) const;
  void check_index(int64_t i) const;
  void add_shard(const std::string& path, int64_t expected_records, const std::string& context);

  std::string source_;
  std::vector<Shard> shards_;
  std::vector<std::string> shard_paths_, ids_;
  std::unordered_map<std::string, int64_t> index_;
  int64_t tokens_ = 0, width_ = 0;
  std::optional<std::string> encoder_;
  std::optional<int> token_layer_;
  std::optional<std::string> pixel_normalisation_;
};

}  // namespace pathvlm::data
