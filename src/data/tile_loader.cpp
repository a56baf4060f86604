#include "data/tile_loader.h"

#include "core/error.h"
#include "data/tile_validate.h"

namespace pathvlm::data {
namespace {

// The augmented uint8 [S,S,3] image of records[row]: RandomResizedCrop, flips and the colour augmentations in
// training (open_clip's order, flips where torchvision recipes put them), else resize + center crop.
torch::Tensor tile_crop(const TileLoaderOptions& o, const torch::Tensor& rgb, const BatchRequest& request,
                        int64_t row) {
  if (!o.train) return resize_shortest_and_center_crop(rgb, o.image_size, o.interpolation);
  auto gen = request.generator(row);
  auto crop = random_resized_crop(rgb, o.image_size, gen, o.crop_scale, o.crop_ratio);
  if (chance(o.hflip_prob, gen)) crop = crop.flip({1}).contiguous();
  if (chance(o.vflip_prob, gen)) crop = crop.flip({0}).contiguous();
  return o.color.active() ? o.color.apply(crop, gen) : crop;
}

// Record i checked as training needs it; a bad one is replaced by the first good record after it (cyclically) when
// skip_bad_records is set, else it is an error naming the shard and record.
std::pair<int64_t, CheckedTile> usable_record(const TileDataset& dataset, const TileLoaderOptions& o, int64_t i) {
  CheckedTile checked = check_tile_record(dataset, i, o.tokenizer.get());
  if (checked.problem.empty()) return {i, std::move(checked)};
  PATHVLM_CHECK(o.skip_bad_records, dataset.where(i), ": ", checked.problem);
  const int64_t n = dataset.size();
  for (int64_t step = 1; step < n; ++step) {
    CheckedTile other = check_tile_record(dataset, (i + step) % n, o.tokenizer.get());
    if (other.problem.empty()) return {(i + step) % n, std::move(other)};
  }
  throw Error(str("none of the ", n, " records of tiles '", dataset.source(), "' can be used (", dataset.where(i), ": ",
                  checked.problem, ")"));
}

// The loader's options with the pixels normalised where the batch arrives (mean and std made there once), before
// any hook the caller set.
LoaderOptions normalising_pixels_on_device(const TileLoaderOptions& o) {
  LoaderOptions options = o;
  options.finish_on_device = [normalize = PixelNormalizer(o.device, o.mean, o.std),
                              then = o.finish_on_device](Batch& batch) {
    auto& pixels = batch.tensors.at("pixels");
    pixels = normalize(pixels);
    if (then) then(batch);
  };
  return options;
}

}  // namespace

BatchBuilder tile_batch_builder(std::shared_ptr<const TileDataset> dataset, const TileLoaderOptions& o) {
  PATHVLM_CHECK(dataset, "TileLoader: no dataset");
  PATHVLM_CHECK(o.image_size >= 1, "TileLoader: image size must be >= 1, got ", o.image_size);
  return [dataset, o](const BatchRequest& request) {
    const auto b = static_cast<int64_t>(request.records.size());
    const int64_t s = o.image_size;
    Batch batch;
    batch.samples = b;
    auto images = torch::empty({b, 3, s, s}, request.host(torch::kByte));
    auto labels = torch::empty({b}, request.host(torch::kInt64));
    auto indices = torch::empty({b}, torch::kInt64), bad = torch::full({b}, -1, torch::kInt64);
    torch::Tensor tokens;
    if (o.tokenizer) tokens = torch::zeros({b, o.tokenizer->context_length()}, torch::kInt64);
    auto& captions = batch.strings["captions"];
    auto& ids = batch.strings["ids"];
    auto* label = labels.data_ptr<int64_t>();
    auto* index = indices.data_ptr<int64_t>();
    auto* replaced = bad.data_ptr<int64_t>();
    request.for_each([&](int64_t k, int64_t i) {
      auto [shown, checked] = usable_record(*dataset, o, i);
      if (shown != i) replaced[k] = i;
      // The augmentation stays seeded by the sampled record: batches do not depend on where bad records are met.
      images[k].copy_(tile_crop(o, checked.image, request, k).permute({2, 0, 1}));
      captions.push_back(dataset->caption(shown));
      ids.push_back(dataset->id(shown));
      label[k] = dataset->label(shown);
      index[k] = shown;
      if (tokens.defined()) std::copy(checked.tokens.begin(), checked.tokens.end(), tokens[k].data_ptr<int64_t>());
    });
    batch.tensors["pixels"] = images;
    batch.tensors["labels"] = labels;
    batch.tensors["indices"] = indices;
    batch.host["bad_records"] = bad;
    if (tokens.defined()) batch.tensors["input_ids"] = tokens;
    return batch;
  };
}

TileLoader::TileLoader(std::shared_ptr<const TileDataset> dataset, const TileLoaderOptions& options)
    : Loader(dataset ? str("tiles '", dataset->source(), "'") : "tiles", dataset ? dataset->size() : 0,
             tile_batch_builder(dataset, options), normalising_pixels_on_device(options)),
      tile_opt_(options) {}

torch::Tensor TileLoader::transform(const torch::Tensor& rgb, int64_t epoch, int64_t index) const {
  BatchRequest request;
  request.records = {index};
  request.epoch = epoch;
  request.seed = tile_opt_.seed;
  return normalize_image(tile_crop(tile_opt_, rgb, request, 0), tile_opt_.mean, tile_opt_.std);
}

}  // namespace pathvlm::data
