// The images of instruction records: a record's `image` name looked up in a list of sources, in order, giving
// the cropped uint8 pixels for the frozen tower, the tower's cached features, or whole slides as bags of tile
// features for a frozen slide encoder (one kind per list).
//
//   auto images = data::InstructImages::open({"demo/instruct/shards/train", "photos/"}, /*image_size=*/224);
//   if (auto ref = images.find("images/train/stroma_00003.png")) {
//     torch::Tensor x = images.pixels(*ref);      // uint8 [3,S,S]: shortest side to S, center crop (the trainer
//                                                  // normalises where the tower runs); padded to a square first
//                                                  // with open(..., /*pad_to_square=*/true)
//   }
//   auto cached = data::InstructImages::open({"feats/tokens"}, 224);   // tile_features shards
//   torch::Tensor f = cached.features(*cached.find("images/train/stroma_00003.png"));   // float [T,D], CLS row first
//
//   auto slides = data::InstructImages::open({"feats/shards", "trident.csv"}, 224, {/*tiles=*/4096});
//   auto [features, coords] = slides.slide_bag(*slides.find("slide_007"));   // float [k,D], int64 [k,2]
//
// Sources: `tiles` shards (a tile id), `tile_features` shards (a tile id; written by `pathvlm embed --tiles`),
// folders of image files (a path under the folder, or an absolute path), and slides (a slide id): `slides` shards
// and CSV manifests of per-slide TRIDENT/CLAM files, read by data/slide_bags.h. A slide's bag is the same every time:
// all its tiles, or `tiles` evenly spaced ones. A source is a manifest.json, the folder
// holding one, a single .h5 shard (its pathvlm_schema says which kind) or a plain folder. The pixel transform is
// the CLIP evaluation transform (CLIPImageProcessor's), the one `pathvlm embed` applied before caching features, so
// training from either kind sees the same images; with pad_to_square (LLaVA's image_aspect_ratio pad) pixel sources
// pad each image to a square first (instruct_pixels), which cached features cannot do: they stay as embedded.
#pragma once
#include <torch/torch.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/image.h"

namespace pathvlm::data {

class SlideBagDataset;
class TileDataset;
class TileFeatureDataset;

struct InstructSlideOptions {
  int64_t tiles = 4096;           // tiles per slide bag, evenly spaced (0 = all)
  double max_bad_fraction = 0.0;  // SlideBagOptions::max_bad_fraction
};

// The tower's view of an RGB image [H,W,3]: with `pad_to_square` first centred on a square of the tower's mean
// colour (`pad_mean`: LLaVA-1.5's expand2square), then the CLIP evaluation transform with the tower's filter `how`;
// uint8 [3,S,S].
torch::Tensor instruct_pixels(const torch::Tensor& rgb, int image_size, bool pad_to_square,
                              const std::array<double, 3>& pad_mean = kOpenAiMean,
                              Interpolation how = Interpolation::bicubic);

class InstructImages {
 public:
  enum class Kind { none, pixels, features, slides };  // none: no sources (text-only data)

  // Throws naming the path when a source is none of the kinds above, and when kinds mix (pixel sources are
  // tiles shards and folders).
  static InstructImages open(const std::vector<std::string>& paths, int image_size,
                             const InstructSlideOptions& slides = {}, bool pad_to_square = false,
                             const std::array<double, 3>& pad_mean = kOpenAiMean,
                             Interpolation how = Interpolation::bicubic);

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

  torch::Tensor pixels(const Ref& ref) const;    // Kind::pixels: uint8 [3,S,S]
  torch::Tensor features(const Ref& ref) const;  // Kind::features: float [T,D]
  // Kind::slides: the bag of a slide, float [k,D] and int64 [k,2] level-0 coords.
  std::pair<torch::Tensor, torch::Tensor> slide_bag(const Ref& ref) const;
  // Kind::slides: the bags of `refs` padded to the largest, the slide encoder's input; in pinned host memory when
  // `pinned` (a loader's batch for CUDA, as BatchRequest::host allocates the other kinds).
  struct SlideBags {
    torch::Tensor features;  // float [N,K,D], 0 where padded
    torch::Tensor coords;    // int64 [N,K,2]
    torch::Tensor mask;      // bool [N,K], false where padded
  };
  SlideBags slide_bags(const std::vector<Ref>& refs, bool pinned = false) const;

  // Kind::features: the cached rows per image, their width (Kind::slides too: the tile features') and the tower
  // layer they came from (HF hidden_states index; nullopt when the shards do not say).
  int64_t feature_tokens() const;
  int64_t feature_width() const;
  std::optional<int> feature_layer() const;
  // The pixel normalisation the cached features were made with (TileFeatureDataset::pixel_normalisation).
  std::optional<std::string> feature_pixel_normalisation() const;

 private:
  struct Source {
    std::string path;
    std::shared_ptr<const TileDataset> tiles;
    std::shared_ptr<const TileFeatureDataset> features;
    std::string folder;  // plain folders
    std::unordered_map<std::string, int64_t> tile_index;  // tiles: id -> record
  };
  std::vector<Source> sources_;
  std::shared_ptr<const SlideBagDataset> slides_;  // Kind::slides: every slide source in one dataset
  Kind kind_ = Kind::none;
  int image_size_ = 224;
  bool pad_to_square_ = false;
  std::array<double, 3> pad_mean_ = kOpenAiMean;
  Interpolation how_ = Interpolation::bicubic;
};

}  // namespace pathvlm::data
