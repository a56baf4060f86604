// Tile-encoder throughput of `pathvlm embed` with a ViT: the encoder's part of embedding (uint8 tiles already on the
// device, normalised there, the forward under bf16 autocast, pooled features copied back), random weights in the
// shapes of the pathology encoders. Prints one JSON line like bench_clip_step, so the GPU check compares it with
// scripts/gpu/bench_vit_peer.py (transformers' Dinov2Model in the same shapes).
//
//   bench_vit_encode [--model uni] [--batch 256] [--steps 20] [--warmup 5] [--device cuda] [--precision bf16]
//                    [--peak-tflops 989]
//
// Models: uni (ViT-L/16, 224 px, GELU MLP: UNI, Phikon-v2), giant (ViT-g/14, 224 px, SwiGLU 4096: Prov-GigaPath's
// shapes, Midnight), base (ViT-B/16: Phikon), tiny (the CPU dry run's).
// MFU = tiles/s x forward FLOPs per tile / peak, with forward FLOPs = 2 x the multiply-adds of the patch embedding,
// every block's projections and MLP, and the attention scores and weighted sum (2 x tokens x width per token).
#include <chrono>
#include <cstdio>
#include <map>
#include <string>

#include "bench_args.h"
#include "core/compat.h"
#include "core/device_stats.h"
#include "core/error.h"
#include "data/image.h"
#include "models/vit/model.h"

using namespace pathvlm;
using bench::arg;
using Clock = std::chrono::steady_clock;

namespace {

models::VitConfig preset(const std::string& name) {
  models::VitConfig c;  // ViT-B/16 at 224 px
  if (name == "uni") {
    c.width = 1024, c.depth = 24, c.heads = 16, c.mlp_hidden = 4096;
  } else if (name == "giant") {
    c.width = 1536, c.depth = 40, c.heads = 24, c.mlp_hidden = 4096, c.mlp = "swiglu", c.patch_size = 14;
  } else if (name == "tiny") {
    c.width = 64, c.depth = 2, c.heads = 4, c.mlp_hidden = 256, c.image_size = 32, c.patch_size = 8;
  } else {
    PATHVLM_CHECK(name == "base", "bench_vit_encode: --model ", name, " is not uni, giant, base or tiny");
  }
  return c;
}

double forward_flops_per_tile(const models::VitConfig& c) {
  const double w = c.width, tokens = c.grid() * c.grid() + c.prefix_tokens();
  const double mlp = (c.mlp == "swiglu" ? 3.0 : 2.0) * w * c.mlp_hidden;
  const double per_token = 4.0 * w * w + mlp + 2.0 * tokens * w;
  const double patches = 3.0 * c.patch_size * c.patch_size * w * c.grid() * c.grid();
  return 2.0 * (c.depth * tokens * per_token + patches);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string model = arg(argc, argv, "--model", "uni");
  const int64_t batch = std::stoll(arg(argc, argv, "--batch", "256"));
  const int steps = std::stoi(arg(argc, argv, "--steps", "20"));
  const int warmup = std::stoi(arg(argc, argv, "--warmup", "5"));
  const torch::Device device(arg(argc, argv, "--device", torch::cuda::is_available() ? "cuda" : "cpu"));
  const std::string precision = arg(argc, argv, "--precision", device.is_cuda() ? "bf16" : "fp32");
  PATHVLM_CHECK(precision == "fp32" || (precision == "bf16" && device.is_cuda()), "bench_vit_encode: --precision ",
                precision, " on ", device.str(), " (bf16 autocast needs CUDA)");
  const double peak_tflops = std::stod(arg(argc, argv, "--peak-tflops", "989"));

  const auto config = preset(model);
  torch::manual_seed(0);
  models::Vit vit(config);
  vit->to(device);
  vit->eval();
  const data::PixelNormalizer normalize(device, config.mean, config.std);
  const auto pixels =
      torch::randint(0, 256, {batch, 3, config.image_size, config.image_size}, torch::kByte).to(device);
  torch::Tensor features;
  auto encode = [&] {  // as wsi::load_tile_encoder's ViT encoder does it
    torch::NoGradGuard no_grad;
    compat::CudaAutocastGuard autocast(precision == "bf16", torch::kBFloat16);
    features = vit->forward(normalize(pixels)).to(torch::kFloat).cpu();
  };
  for (int i = 0; i < warmup; ++i) encode();
  reset_peak_memory(device);
  const auto start = Clock::now();
  for (int i = 0; i < steps; ++i) encode();  // the copy to the host synchronises each batch
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count() / steps;

  const double flops = forward_flops_per_tile(config), tiles_per_s = batch / seconds;
  std::printf("{\"name\": \"pathvlm\", \"model\": \"%s\", \"batch\": %lld, \"precision\": \"%s\", \"device\": \"%s\", "
              "\"samples_per_s\": %.2f, \"step_s\": %.5f, \"flops_per_sample\": %.6g, \"peak_tflops\": %.1f, "
              "\"mfu\": %.4f, \"peak_mem_gib\": %.3f, \"features\": %lld}\n",
              model.c_str(), static_cast<long long>(batch), precision.c_str(), device.str().c_str(), tiles_per_s,
              seconds, flops, peak_tflops, peak_tflops > 0 ? flops * tiles_per_s / (peak_tflops * 1e12) : 0,
              peak_memory_bytes(device) / double(1ull << 30), static_cast<long long>(features.size(1)));
  return 0;
}
