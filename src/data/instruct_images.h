// The images of instruction records: a record's `image` name looked up in a list of sources, in order, giving
// either normalised pixels for the frozen tower or the tower's cached features (one or the other per list).
//
//   auto images = data::InstructImages::open({"demo/instruct/shards/train", "photos/"}, /*image_size=*/224);
//   if (auto ref = images.find("images/train/stroma_00003.png")) {
//     torch::Tensor x = images.pixels(*ref);      // float [3,S,S]: shortest side to S, center crop, OpenAI normalised
//   }
//   auto cached = data::InstructImages::open({"feats/tokens"}, 224);   // tile_features shards
//   torch::Tensor f = cached.features(*cached.find("images/train/stroma_00003.png"));   // float [T,D], CLS row first
//
// Sources: `tiles` shards (a tile id), `tile_features` shards (a tile id; written by `pathvlm embed --tiles`) and
// folders of image files (a path under the folder, or an absolute path). A source is a manifest.json, the folder
// holding one, a single .h5 shard (its pathvlm_schema says which kind) or a plain folder. The pixel transform is
// the CLIP evaluation transform (CLIPImageProcessor's), the one `pathvlm embed` applied before caching features, so
// training from either kind sees the same images.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace pathvlm::data {

class TileDataset;
class TileFeatureDataset;

class InstructImages {
 public:
  enum class Kind { none, pixels, features };  // none: no sources (text-only data)

  // Throws naming the path when a source is none of the kinds above, and when pixel and feature sources mix.
  static InstructImages open(const std::vector<std::string>& paths, int image_size);

  Kind kind() const { return kind_; }
  int image_size() const { return image_size_; }

  // Where a name was found: a record of a shard source, or a file.
  struct Ref {
    int source = -1;
    int64_t index = -1;  // record in the source's shards; -1 for a file
    std::string file;    // the image file (folder sources)
  };
  std::optional<Ref> find(const std::string& name) const;
  // "'name' in none of: shards/train, photos/" for a missing-image report.
  std::string sources_text() const;

  torch::Tensor pixels(const Ref& ref) const;    // Kind::pixels: float [3,S,S]
  torch::Tensor features(const Ref& ref) const;  // Kind::features: float [T,D]

  // Kind::features: the cached rows per image, their width and the tower layer they came from (HF hidden_states
  // index; nullopt when the shards do not say).
  int64_t feature_tokens() const;
  int64_t feature_width() const;
  std::optional<int> feature_layer() const;

 private:
  struct Source {
    std::string path;
    std::shared_ptr<const TileDataset> tiles;
    std::shared_ptr<const TileFeatureDataset> features;
    std::string folder;  // plain folders
    std::unordered_map<std::string, int64_t> tile_index;  // tiles: id -> record
  };
  std::vector<Source> sources_;
  Kind kind_ = Kind::none;
  int image_size_ = 224;
};

}  // namespace pathvlm::data
