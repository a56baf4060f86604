// Training throughput of the slide task's model (models/slide/report_model.h): one optimizer step = forward and
// backward of B slides of up to N sampled tiles (bags of random length in [N/2, N], padded and masked as the loader
// batches them) and their reports through the CLIP text tower, with the contrastive loss, then AdamW. Prints slides/s
// and real tiles/s over the timed steps (after warm-up) as a markdown row for benchmarks/RESULTS.md.
//
//   bench_slide_step [--kind abmil|transformer|qformer] [--batch 32] [--tiles 1024] [--dim 512] [--width 256]
//                    [--heads 4] [--layers 2] [--queries 16] [--text tiny|ViT-B-16] [--context 128]
//                    [--steps 10] [--warmup 2] [--device cpu|cuda]
#include <chrono>
#include <cstdio>
#include <string>

#include "bench_args.h"
#include "losses/contrastive.h"
#include "models/slide/report_model.h"

using namespace pathvlm;
using bench::arg;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  models::slide::SlideEncoderConfig enc;
  enc.kind = arg(argc, argv, "--kind", "qformer");
  enc.input_dim = std::stoll(arg(argc, argv, "--dim", "512"));
  enc.width = std::stoll(arg(argc, argv, "--width", "256"));
  enc.heads = std::stoll(arg(argc, argv, "--heads", "4"));
  enc.layers = std::stoll(arg(argc, argv, "--layers", "2"));
  enc.queries = std::stoll(arg(argc, argv, "--queries", "16"));
  models::ClipModelConfig text;
  text.preset = arg(argc, argv, "--text", "tiny");
  text.context_length = std::stoi(arg(argc, argv, "--context", "128"));
  const int64_t batch = std::stoll(arg(argc, argv, "--batch", "32")), tiles = std::stoll(arg(argc, argv, "--tiles", "1024"));
  const int steps = std::stoi(arg(argc, argv, "--steps", "10")), warmup = std::stoi(arg(argc, argv, "--warmup", "2"));
  const torch::Device device(arg(argc, argv, "--device", "cpu"));

  torch::manual_seed(0);
  models::slide::SlideReportModel model(enc, text);
  model->to(device);
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-4));
  auto on = torch::TensorOptions().device(device);
  auto features = torch::randn({batch, tiles, enc.input_dim}, on);
  auto coords = torch::randint(0, 100000, {batch, tiles, 2}, on.dtype(torch::kLong));
  auto lengths = torch::randint(tiles / 2, tiles + 1, {batch, 1}, on.dtype(torch::kLong));
  auto mask = torch::arange(tiles, on.dtype(torch::kLong)).unsqueeze(0).lt(lengths);
  auto ids = torch::randint(1, 49000, {batch, text.context_length}, on.dtype(torch::kLong));
  ids.select(1, text.context_length - 1).fill_(49407);  // eot last: the pooled position
  const double real_tiles = static_cast<double>(mask.sum().item<int64_t>());

  namespace F = torch::nn::functional;
  double seconds = 0;
  for (int s = 0; s < warmup + steps; ++s) {
    if (device.is_cuda()) torch::cuda::synchronize();
    const auto t0 = Clock::now();
    optimizer.zero_grad();
    auto a = F::normalize(model->encode_slide(features, coords, mask), F::NormalizeFuncOptions().dim(1));
    auto b = F::normalize(model->encode_report(ids), F::NormalizeFuncOptions().dim(1));
    losses::clip_loss(a, b, model->logit_scale, nullptr).backward();
    optimizer.step();
    if (device.is_cuda()) torch::cuda::synchronize();
    if (s >= warmup) seconds += std::chrono::duration<double>(Clock::now() - t0).count();
  }
  std::printf("| %s | %lld | %lld | %lld | %s | %.2f | %.1f | %.0f |\n", enc.kind.c_str(), static_cast<long long>(batch),
              static_cast<long long>(tiles), static_cast<long long>(enc.input_dim), device.str().c_str(),
              seconds / steps, batch * steps / seconds, real_tiles * steps / seconds);
  return 0;
}
