// Slide-embedding throughput of `pathvlm encode --model TITAN/`: TITAN's slide encoder in its shapes (768 wide, 6
// blocks of 12 heads, MLP 3072, 8-head pooler; random weights) on slides of N tiles laid on a square grid, one in ten
// cells background (zero features), fp32. One JSON line per size.
//
//   bench_titan [--tiles 1000,4000,16000] [--steps 3] [--device cuda] [--peak-tflops 989]
//
// Forward FLOPs per slide of S = 1 + kept tiles tokens: 2 x (tiles x 768 x 768 for the patch embedding
// + 6 x (S x (4 x 768^2 + 2 x 768 x 3072) + 2 x S^2 x 768) for the blocks' projections, MLP, scores and weighted sum
// + the pooler's S x 2 x 768^2); MFU = FLOPs x slides/s / peak.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>

#include "bench_args.h"
#include "core/device_stats.h"
#include "models/titan/model.h"

using namespace pathvlm;
using bench::arg;
using Clock = std::chrono::steady_clock;

namespace {

double forward_flops(const models::TitanConfig& c, int64_t tiles, int64_t tokens) {
  const double w = c.width, s = tokens;
  const double blocks = c.depth * (s * (4 * w * w + 2 * w * c.mlp_hidden) + 2 * s * s * w);
  return 2.0 * (tiles * c.input_dim * w + blocks + s * 2 * w * w);
}

}  // namespace

int main(int argc, char** argv) {
  const torch::Device device(arg(argc, argv, "--device", torch::cuda::is_available() ? "cuda" : "cpu"));
  const int steps = std::stoi(arg(argc, argv, "--steps", "3"));
  const double peak_tflops = std::stod(arg(argc, argv, "--peak-tflops", "989"));
  std::stringstream sizes(arg(argc, argv, "--tiles", "1000,4000,16000"));

  const models::TitanConfig config;  // TITAN's shapes
  torch::manual_seed(0);
  models::TitanSlideEncoder titan(config);
  titan->to(device);
  titan->eval();
  torch::NoGradGuard no_grad;
  for (std::string size; std::getline(sizes, size, ',');) {
    const int64_t tiles = std::stoll(size);
    const auto side = static_cast<int64_t>(std::ceil(std::sqrt(tiles / 0.9)));
    const auto cells = torch::randperm(side * side).narrow(0, 0, tiles);
    const auto coords = torch::stack({cells.div(side, "floor"), cells.remainder(side)}, 1) * 512;
    auto features = torch::randn({tiles, config.input_dim});
    features.index_put_({cells.remainder(10) == 0}, 0.0);  // background
    const int64_t tokens = 1 + models::titan_grid(features, coords, 512).cells.size(0);
    titan->forward(features, coords, 512);  // warm-up
    reset_peak_memory(device);
    const auto start = Clock::now();
    torch::Tensor embedding;
    for (int i = 0; i < steps; ++i) embedding = titan->forward(features, coords, 512).cpu();  // synchronises
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count() / steps;
    const double flops = forward_flops(config, tiles, tokens);
    std::printf("{\"name\": \"titan\", \"device\": \"%s\", \"tiles\": %lld, \"tokens\": %lld, \"slide_s\": %.4f, "
                "\"tiles_per_s\": %.1f, \"gflops_per_slide\": %.2f, \"gflop_per_s\": %.1f, \"mfu\": %.4f, "
                "\"peak_mem_gib\": %.3f}\n",
                device.str().c_str(), static_cast<long long>(tiles), static_cast<long long>(tokens), seconds,
                tiles / seconds, flops / 1e9, flops / seconds / 1e9,
                peak_tflops > 0 ? flops / seconds / (peak_tflops * 1e12) : 0.0,
                peak_memory_bytes(device) / double(1ull << 30));
    std::fflush(stdout);
  }
  return 0;
}
