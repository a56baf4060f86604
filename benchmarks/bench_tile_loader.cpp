// Tile pipeline throughput: procedural tile drawing, shard building, and TileLoader batches (JPEG decode +
// RandomResizedCrop at 224 px, and caption tokenization when a vocab is given) with 1..N worker threads: the
// CPU path (normalised in the workers) and the GPU path's share of the workers (uint8 crops; the GPU normalises
// after the upload), and the bytes a batch moves to the device. Each worker count reads one epoch of `tiles`
// records; with many workers, give it many batches per worker (the GPU check: 4096 tiles for 16 workers).
//
//   bench_tile_loader [tiles=512] [max_workers=2] [bpe_simple_vocab_16e6.txt.gz]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>

#include "data/image.h"
#include "data/tile_loader.h"
#include "data/tile_shards.h"
#include "synth/tissue_texture.h"

namespace fs = std::filesystem;
using namespace pathvlm::data;
using namespace pathvlm::synth;

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

int main(int argc, char** argv) {
  const int tiles = argc > 1 ? std::stoi(argv[1]) : 512;
  const int max_workers = argc > 2 ? std::stoi(argv[2]) : 2;
  std::shared_ptr<const pathvlm::text::ClipTokenizer> tokenizer;
  if (argc > 3) tokenizer = std::make_shared<const pathvlm::text::ClipTokenizer>(argv[3]);
  torch::set_num_threads(1);
  const fs::path dir = fs::temp_directory_path() / "pathvlm_bench_tile_loader";
  fs::remove_all(dir);
  fs::create_directories(dir / "img");

  auto t0 = std::chrono::steady_clock::now();
  std::ofstream csv(dir / "records.csv");
  csv << "filepath,caption,label\n";
  // At most kDistinct tiles are drawn (drawing is slow and single-threaded); the records cycle through them, so a
  // large count measures the loader over many batches without the drawing.
  constexpr int kDistinct = 256;
  const int distinct = std::min(tiles, kDistinct);
  for (int i = 0; i < distinct; ++i) {
    auto c = static_cast<TissueClass>(i % kNumTissueClasses);
    write_image((dir / "img" / (std::to_string(i) + ".jpg")).string(), draw_tissue(c, 256, 256, i), 90);
  }
  for (int i = 0; i < tiles; ++i) {
    csv << "img/" << i % distinct << ".jpg,tile " << i << "," << (i % distinct) % kNumTissueClasses << "\n";
  }
  csv.close();
  const double draw_s = seconds_since(t0);
  std::printf("draw_tissue + JPEG encode, 256 px: %.1f tiles/s (1 thread)\n", distinct / draw_s);

  t0 = std::chrono::steady_clock::now();
  TileShardBuildOptions o;
  o.records = (dir / "records.csv").string();
  o.out_dir = (dir / "shards").string();
  o.shard_size = 256;
  o.progress = false;
  build_tile_shards(o);
  std::printf("shards build (decode check, keep JPEG bytes): %.1f records/s (%d threads)\n",
              tiles / seconds_since(t0), o.threads);

  auto ds = std::make_shared<TileDataset>(TileDataset::open(o.out_dir));
  constexpr int64_t kBatch = 32;
  // Images per second after a warm-up batch, over one epoch, and per second of process CPU time (all threads):
  // what one busy core delivers, whatever else the machine runs.
  auto rate = [&](Loader& loader) {
    loader.next();
    const auto start = std::chrono::steady_clock::now();
    const std::clock_t cpu_start = std::clock();
    const int64_t batches = std::max<int64_t>(1, loader.batches_per_epoch() - 1);
    for (int64_t b = 0; b < batches; ++b) loader.next();
    const double images = static_cast<double>(batches * kBatch);
    const double cpu_s = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
    return std::pair<double, double>{images / seconds_since(start), images / cpu_s};
  };
  for (int workers = 1; workers <= max_workers; workers *= 2) {
    TileLoaderOptions lo;
    lo.batch_size = kBatch;
    lo.workers = workers;
    lo.prefetch = 2 * workers;
    lo.tokenizer = tokenizer;
    const char* what = tokenizer ? " + tokenize" : "";
    const char* plural = workers > 1 ? "s" : "";
    TileLoader cpu_path(ds, lo);
    const auto [cpu_wall, cpu_core] = rate(cpu_path);
    std::printf("TileLoader train 224 px%s, batch %lld, %d worker%s, normalised in the workers (CPU path): %.1f "
                "images/s, %.0f per CPU-second\n", what, static_cast<long long>(kBatch), workers, plural, cpu_wall,
                cpu_core);
    Loader gpu_path("tiles", ds->size(), tile_batch_builder(ds, lo), lo);
    const auto [gpu_wall, gpu_core] = rate(gpu_path);
    std::printf("TileLoader train 224 px%s, batch %lld, %d worker%s, uint8 crops (GPU path, normalised after the "
                "upload): %.1f images/s, %.0f per CPU-second\n", what, static_cast<long long>(kBatch), workers, plural,
                gpu_wall, gpu_core);
  }

  // What one batch moves to the device: the builder's tensors, pixels uint8.
  TileLoaderOptions lo;
  lo.tokenizer = tokenizer;
  BatchRequest request;
  for (int64_t i = 0; i < kBatch; ++i) request.records.push_back(i % ds->size());
  const Batch built = tile_batch_builder(ds, lo)(request);
  int64_t bytes = 0;
  for (const auto& [key, t] : built.tensors) bytes += static_cast<int64_t>(t.nbytes());
  const auto pixel_bytes = static_cast<int64_t>(built.at("pixels").nbytes());
  std::printf("bytes to the device per batch of %lld: %lld (pixels uint8 %lld; as float32 they were %lld); at "
              "batch 256: %.1f MB (float32 pixels: %.1f MB)\n",
              static_cast<long long>(kBatch), static_cast<long long>(bytes), static_cast<long long>(pixel_bytes),
              static_cast<long long>(4 * pixel_bytes), bytes * 8 / 1e6, (bytes + 3 * pixel_bytes) * 8 / 1e6);
  fs::remove_all(dir);
  return 0;
}
