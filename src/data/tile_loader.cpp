#include "data/tile_loader.h"

#include "core/error.h"
#include "data/tile_validate.h"

namespace pathvlm::data {
namespace {

torch::Tensor tile_transform(const TileLoaderOptions& o, const torch::Tensor& rgb, const BatchRequest& request,
                             int64_t row) {
  if (!o.train) return normalize_image(resize_shortest_and_center_crop(rgb, o.image_size), o.mean, o.std);
  auto gen = request.generator(row);
  return normalize_image(random_resized_crop(rgb, o.image_size, gen, o.crop_scale, o.crop_ratio), o.mean, o.std);
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

BatchBuilder tile_builder(std::shared_ptr<const TileDataset> dataset, const TileLoaderOptions& o) {
  PATHVLM_CHECK(dataset, "TileLoader: no dataset");
  PATHVLM_CHECK(o.image_size >= 1, "TileLoader: image size must be >= 1, got ", o.image_size);
  return [dataset, o](const BatchRequest& request) {
    const auto b = static_cast<int64_t>(request.records.size());
    const int64_t s = o.image_size;
    Batch batch;
    batch.samples = b;
    auto images = torch::empty({b, 3, s, s}, request.host(torch::kFloat));
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
      images[k].copy_(tile_transform(o, checked.image, request, k));
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

}  // namespace

TileLoader::TileLoader(std::shared_ptr<const TileDataset> dataset, const TileLoaderOptions& options)
    : Loader(dataset ? str("tiles '", dataset->source(), "'") : "tiles", dataset ? dataset->size() : 0,
             tile_builder(dataset, options), options),
      tile_opt_(options) {}

torch::Tensor TileLoader::transform(const torch::Tensor& rgb, int64_t epoch, int64_t index) const {
  BatchRequest request;
  request.records = {index};
  request.epoch = epoch;
  request.seed = tile_opt_.seed;
  return tile_transform(tile_opt_, rgb, request, 0);
}

}  // namespace pathvlm::data
