#include "wsi/embed_tiles.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "core/progress.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/tile_shards.h"
#include "io/hdf5.h"
#include "io/shard_schema.h"
#include "io/shard_seal.h"
#include "wsi/slide_batch.h"

namespace fs = std::filesystem;

namespace pathvlm::wsi {
namespace {

constexpr const char* kShardPrefix = "tiles-";

std::string shard_name(size_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%05zu.h5", kShardPrefix, n);
  return buf;
}

// One tile_features shard being written to its temp file; removed unless committed.
class TokenShardWriter {
 public:
  TokenShardWriter(std::string path, const TileEncoder& encoder, torch::ScalarType dtype)
      : path_(std::move(path)), dtype_(dtype), file_(h5::File::create(temp_path(path_))) {
    shards::write_schema(*file_, shards::ShardKind::TileFeatures);
    file_->set_attr("created_by", "pathvlm embed --tiles");
    file_->set_attr("encoder", encoder.name);
    file_->set_attr("token_layer", encoder.token_layer);
    file_->set_attr("pixel_normalisation", data::describe_pixel_normalisation(encoder.mean, encoder.std));
    const int64_t t = encoder.token_shape[0], d = encoder.token_shape[1];
    features_.emplace(static_cast<h5::Group&>(*file_).create("features", dtype_, {t, d}, {{1, t, d}, 0, false}));
    ids_.emplace(file_->create_strings("ids"));
  }
  ~TokenShardWriter() {
    if (committed_) return;
    features_.reset(), ids_.reset();
    file_.reset();
    std::error_code ec;
    fs::remove(temp_path(path_), ec);
  }

  void append(const torch::Tensor& tokens, const std::vector<std::string>& ids) {
    features_->append(tokens.to(dtype_).contiguous());
    ids_->append_strings(ids);
    count_ += tokens.size(0);
  }
  // Closed explicitly (a failing close is an error), then sealed into place.
  void commit() {
    features_.reset(), ids_.reset();
    file_->close();
    file_.reset();
    shards::seal_shard(temp_path(path_), path_);
    fs::remove(temp_path(path_));
    committed_ = true;
  }
  int64_t count() const { return count_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  torch::ScalarType dtype_;
  std::optional<h5::File> file_;
  std::optional<h5::Dataset> features_, ids_;
  int64_t count_ = 0;
  bool committed_ = false;
};

// Batches of resized and cropped uint8 pixels ("pixels" [B,3,S,S], normalised by the encoder) and ids ("ids"), in
// record order.
data::BatchBuilder tile_batches(std::shared_ptr<const data::TileDataset> tiles, int image_size,
                                data::Interpolation how) {
  return [tiles = std::move(tiles), image_size, how](const data::BatchRequest& request) {
    const auto n = static_cast<int64_t>(request.records.size());
    auto pixels = torch::empty({n, 3, image_size, image_size}, request.host(torch::kByte));
    std::vector<std::string> ids(static_cast<size_t>(n));
    request.for_each([&](int64_t row, int64_t record) {
      // TileLoader's evaluation transform, with the encoder's filter.
      pixels[row].copy_(
          data::resize_shortest_and_center_crop(tiles->image(record), image_size, how).permute({2, 0, 1}));
      ids[static_cast<size_t>(row)] = tiles->id(record);
    });
    data::Batch batch;
    batch.tensors["pixels"] = pixels;
    batch.strings["ids"] = std::move(ids);
    batch.samples = n;
    return batch;
  };
}

}  // namespace

TileEmbedReport embed_tiles(const TileEmbedRequest& request, const EmbedConfig& config, const TileEncoder& encoder) {
  PATHVLM_CHECK(encoder.token_shape.size() == 2, "encoder '", encoder.name, "' does not give token features");
  PATHVLM_CHECK(!request.out.empty(), "embed --tiles: no output folder given");
  auto tiles = std::make_shared<const data::TileDataset>(data::TileDataset::open(request.tiles));
  PATHVLM_CHECK(tiles->size() > 0, "tiles '", tiles->source(), "' hold no records");
  const std::string dir = (fs::path(request.out) / "tokens").string();
  make_dirs(dir);
  TileEmbedReport report;
  report.manifest = (fs::path(dir) / "manifest.json").string();
  // The manifest appears only once every shard is complete; an earlier one must not describe half-rewritten shards.
  std::error_code ec;
  fs::remove(report.manifest, ec);

  data::LoaderOptions options;
  options.train = false;
  options.batch_size = config.batch_size;
  options.workers = config.readers;
  options.prefetch = config.prefetch_batches;
  data::Loader loader(str("tiles '", tiles->source(), "'"), tiles->size(),
                      tile_batches(tiles, encoder.image_size, encoder.interpolation), options);

  const auto dtype = config.tokens_dtype == "float16" ? torch::kHalf : torch::kFloat;
  nlohmann::json listed = nlohmann::json::array();
  std::unique_ptr<TokenShardWriter> writer;
  auto close_writer = [&] {
    writer->commit();
    listed.push_back({{"file", fs::path(writer->path()).filename().string()}, {"records", writer->count()}});
    report.shards.push_back(writer->path());
    writer.reset();
  };
  Progress bar("embedding", tiles->size(), "tiles");
  while (auto batch = loader.next()) {
    const torch::Tensor tokens = encoder.encode(batch->at("pixels"), /*tokens=*/true).tokens;
    const auto& ids = batch->text("ids");
    // A batch may straddle two shards.
    for (int64_t begin = 0; begin < batch->samples;) {
      if (!writer)
        writer = std::make_unique<TokenShardWriter>((fs::path(dir) / shard_name(report.shards.size())).string(),
                                                    encoder, dtype);
      const int64_t n = std::min<int64_t>(batch->samples - begin, config.tiles_per_shard - writer->count());
      writer->append(tokens.narrow(0, begin, n),
                     std::vector<std::string>(ids.begin() + begin, ids.begin() + begin + n));
      begin += n;
      report.records += n;
      if (writer->count() == config.tiles_per_shard) close_writer();
    }
    bar.advance(batch->samples);
  }
  if (writer) close_writer();
  bar.finish();

  // Shards of an earlier run with more records would be listed nowhere: remove them.
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const bool written = std::any_of(report.shards.begin(), report.shards.end(),
                                     [&](const std::string& p) { return fs::path(p).filename() == name; });
    if (name.rfind(kShardPrefix, 0) == 0 && entry.path().extension() == ".h5" && !written) fs::remove(entry.path());
  }
  const nlohmann::json manifest = {{"pathvlm_manifest", "tile_features/1"},
                                   {"records", report.records},
                                   {"shards", listed},
                                   {"tokens", encoder.token_shape},
                                   {"dtype", config.tokens_dtype},
                                   {"encoder", encoder.name},
                                   {"token_layer", encoder.token_layer},
                                   {"source", fs::absolute(tiles->source()).lexically_normal().string()}};
  write_text_file_atomic(report.manifest, manifest.dump(2) + "\n");
  return report;
}

}  // namespace pathvlm::wsi
