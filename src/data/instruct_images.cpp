// InstructImages; see instruct_images.h.
#include "data/instruct_images.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/text_file.h"
#include "data/image.h"
#include "data/slide_bags.h"
#include "data/tile_features.h"
#include "data/tile_shards.h"
#include "io/hdf5.h"
#include "io/shard_schema.h"

namespace pathvlm::data {

namespace fs = std::filesystem;

namespace {

// The shard kind a source path holds ("tiles", "tile_features", "slides"; a CSV manifest lists slides), or "" for
// a plain folder.
std::string source_kind(const std::string& path) {
  std::error_code ec;
  if (fs::path(path).extension() == ".csv") return "slides";
  fs::path manifest = path;
  if (fs::is_directory(manifest, ec)) {
    manifest /= "manifest.json";
    if (!fs::exists(manifest, ec)) return "";
  }
  PATHVLM_CHECK(fs::exists(manifest, ec), "instruct.data.images: '", path, "' does not exist");
  if (manifest.extension() == ".h5") return shards::kind_name(shards::read_schema(shards::open_shard(manifest.string())));
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(read_text_file(manifest.string()));
  } catch (const nlohmann::json::exception& e) {
    throw Error(str("instruct.data.images: '", manifest.string(), "' is not JSON: ", e.what()));
  }
  const std::string tag =
      json_fields::string_or(json, "pathvlm_manifest", "", str("instruct.data.images: '", manifest.string(), "'"));
  const auto slash = tag.find('/');
  PATHVLM_CHECK(slash != std::string::npos, "instruct.data.images: '", manifest.string(),
                "' is not a pathvlm manifest (no \"pathvlm_manifest\": \"<kind>/<version>\")");
  return tag.substr(0, slash);
}

const char* kind_text(InstructImages::Kind kind) {
  switch (kind) {
    case InstructImages::Kind::features: return "cached features";
    case InstructImages::Kind::slides: return "slides";
    default: return "pixels";
  }
}

}  // namespace

torch::Tensor instruct_pixels(const torch::Tensor& rgb, int image_size, bool pad_to_square,
                              const std::array<double, 3>& pad_mean, Interpolation how) {
  const auto square = pad_to_square ? data::pad_to_square(rgb, mean_colour(pad_mean)) : rgb;
  return resize_shortest_and_center_crop(square, image_size, how).permute({2, 0, 1});
}

InstructImages InstructImages::open(const std::vector<std::string>& paths, int image_size,
                                    const InstructSlideOptions& slides, bool pad_to_square,
                                    const std::array<double, 3>& pad_mean, Interpolation how) {
  InstructImages images;
  images.how_ = how;
  images.image_size_ = image_size;
  images.pad_to_square_ = pad_to_square;
  images.pad_mean_ = pad_mean;
  std::vector<std::string> slide_paths;
  for (const auto& path : paths) {
    Source source;
    source.path = path;
    const std::string kind = source_kind(path);
    Kind source_kind = Kind::pixels;
    if (kind == "slides") {
      slide_paths.push_back(path);
      source_kind = Kind::slides;
    } else if (kind == "tiles") {
      source.tiles = std::make_shared<const TileDataset>(TileDataset::open(path));
    } else if (kind == "tile_features") {
      source.features = std::make_shared<const TileFeatureDataset>(TileFeatureDataset::open(path));
      source_kind = Kind::features;
    } else if (kind.empty()) {
      source.folder = path;
    } else {
      throw Error(str("instruct.data.images: '", path, "' holds '", kind,
                      "' shards; images come from tiles, tile_features or slides shards, slide CSV manifests or "
                      "folders of image files"));
    }
    PATHVLM_CHECK(images.kind_ == Kind::none || images.kind_ == source_kind, "instruct.data.images: '", path,
                  "' gives ", kind_text(source_kind), " but '", images.sources_.front().path, "' gave ",
                  kind_text(images.kind_),
                  ": list only tiles shards and folders, only tile_features shards, or only slide sources");
    if (source.features && images.kind_ == Kind::features) {
      const auto& first = *images.sources_.front().features;
      PATHVLM_CHECK(source.features->tokens() == first.tokens() && source.features->width() == first.width() &&
                        source.features->token_layer() == first.token_layer(),
                    "instruct.data.images: the features of '", path, "' [", source.features->tokens(), ",",
                    source.features->width(), "] do not match those of '", images.sources_.front().path, "' [",
                    first.tokens(), ",", first.width(), "] (or came from another tower layer)");
    }
    images.kind_ = source_kind;
    images.sources_.push_back(std::move(source));
  }
  if (!slide_paths.empty()) {
    SlideBagOptions options;
    options.eval_max_tiles = slides.tiles;
    options.max_bad_fraction = slides.max_bad_fraction;
    images.slides_ = std::make_shared<const SlideBagDataset>(SlideBagDataset::open(slide_paths, options));
  }
  for (size_t s = 0; s < images.sources_.size(); ++s) {
    auto& source = images.sources_[s];
    if (!source.tiles) continue;
    for (int64_t i = 0; i < source.tiles->size(); ++i) source.tile_index.emplace(source.tiles->id(i), i);
  }
  return images;
}

std::optional<InstructImages::Ref> InstructImages::find(const std::string& name) const {
  if (slides_) {
    if (auto index = slides_->index_of(name)) return Ref{0, *index, ""};
    return std::nullopt;
  }
  for (size_t s = 0; s < sources_.size(); ++s) {
    const auto& source = sources_[s];
    if (source.tiles) {
      auto it = source.tile_index.find(name);
      if (it != source.tile_index.end()) return Ref{static_cast<int>(s), it->second, ""};
    } else if (source.features) {
      if (auto index = source.features->index_of(name)) return Ref{static_cast<int>(s), *index, ""};
    } else {
      const fs::path file = fs::path(name).is_absolute() ? fs::path(name) : fs::path(source.folder) / name;
      std::error_code ec;
      if (fs::is_regular_file(file, ec)) return Ref{static_cast<int>(s), -1, file.string()};
    }
  }
  return std::nullopt;
}

std::string InstructImages::sources_text() const {
  std::string text;
  for (const auto& s : sources_) text += (text.empty() ? "" : ", ") + s.path;
  return text.empty() ? "(instruct.data.images is empty)" : text;
}

torch::Tensor InstructImages::pixels(const Ref& ref) const {
  PATHVLM_CHECK(kind_ == Kind::pixels && ref.source >= 0 && ref.source < static_cast<int>(sources_.size()),
                "InstructImages::pixels: not a pixel source");
  const auto& source = sources_[ref.source];
  const torch::Tensor rgb = source.tiles ? source.tiles->image(ref.index) : read_image(ref.file);
  return instruct_pixels(rgb, image_size_, pad_to_square_, pad_mean_, how_);
}

torch::Tensor InstructImages::features(const Ref& ref) const {
  PATHVLM_CHECK(kind_ == Kind::features && ref.source >= 0 && ref.source < static_cast<int>(sources_.size()),
                "InstructImages::features: not a feature source");
  return sources_[ref.source].features->features(ref.index);
}

std::pair<torch::Tensor, torch::Tensor> InstructImages::slide_bag(const Ref& ref) const {
  PATHVLM_CHECK(kind_ == Kind::slides, "InstructImages::slide_bag: not a slide source");
  return slides_->read_tiles(ref.index, slides_->tile_rows(ref.index, /*train=*/false, 0, 0));
}

InstructImages::SlideBags InstructImages::slide_bags(const std::vector<Ref>& refs, bool pinned) const {
  PATHVLM_CHECK(kind_ == Kind::slides, "InstructImages::slide_bags: not a slide source");
  const int64_t most = slides_->options().eval_max_tiles;
  int64_t tiles = 1;
  for (const auto& ref : refs) {
    const int64_t n = slides_->slide(ref.index).tiles;
    tiles = std::max(tiles, most > 0 ? std::min(n, most) : n);
  }
  const auto n = static_cast<int64_t>(refs.size());
  const auto host = torch::TensorOptions().pinned_memory(pinned);
  SlideBags bags{torch::zeros({n, tiles, feature_width()}, host.dtype(torch::kFloat32)),
                 torch::zeros({n, tiles, 2}, host.dtype(torch::kInt64)),
                 torch::zeros({n, tiles}, host.dtype(torch::kBool))};
  for (int64_t i = 0; i < n; ++i) {
    const auto [features, coords] = slide_bag(refs[static_cast<size_t>(i)]);
    const int64_t k = features.size(0);
    bags.features[i].narrow(0, 0, k).copy_(features);
    bags.coords[i].narrow(0, 0, k).copy_(coords);
    bags.mask[i].narrow(0, 0, k).fill_(true);
  }
  return bags;
}

int64_t InstructImages::feature_tokens() const {
  PATHVLM_CHECK(kind_ == Kind::features, "InstructImages: no feature sources");
  return sources_.front().features->tokens();
}

int64_t InstructImages::feature_width() const {
  if (kind_ == Kind::slides) return slides_->feature_dim();
  PATHVLM_CHECK(kind_ == Kind::features, "InstructImages: no feature sources");
  return sources_.front().features->width();
}

std::optional<int> InstructImages::feature_layer() const {
  PATHVLM_CHECK(kind_ == Kind::features, "InstructImages: no feature sources");
  return sources_.front().features->token_layer();
}

std::optional<std::string> InstructImages::feature_pixel_normalisation() const {
  PATHVLM_CHECK(kind_ == Kind::features, "InstructImages: no feature sources");
  return sources_.front().features->pixel_normalisation();
}

}  // namespace pathvlm::data
