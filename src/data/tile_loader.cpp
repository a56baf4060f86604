#include "data/tile_loader.h"

#include "core/error.h"

namespace pathvlm::data {
namespace {

torch::Tensor tile_transform(const TileLoaderOptions& o, const torch::Tensor& rgb, const BatchRequest& request,
                             int64_t row) {
  if (!o.train) return normalize_image(resize_shortest_and_center_crop(rgb, o.image_size), o.mean, o.std);
  auto gen = request.generator(row);
  return normalize_image(random_resized_crop(rgb, o.image_size, gen, o.crop_scale, o.crop_ratio), o.mean, o.std);
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
    auto& captions = batch.strings["captions"];
    auto& ids = batch.strings["ids"];
    auto* label = labels.data_ptr<int64_t>();
    request.for_each([&](int64_t k, int64_t i) {
      images[k].copy_(tile_transform(o, dataset->image(i), request, k));
      captions.push_back(dataset->caption(i));
      ids.push_back(dataset->id(i));
      label[k] = dataset->label(i);
    });
    batch.tensors["pixels"] = images;
    batch.tensors["labels"] = labels;
    batch.tensors["indices"] = torch::tensor(request.records, torch::kInt64);
    if (o.tokenizer) batch.tensors["input_ids"] = o.tokenizer->batch(captions);
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
