// Peak memory and time of one slide's forward + backward through each slide encoder (models/slide) as the bag
// grows, to show that memory grows linearly with the number of tiles (no N x N attention matrix, in forward or
// backward). Each (kind, size) runs in a fresh process (this program rerun as `--measure KIND N`), so every peak
// is its own: on CPU the process's VmHWM, on CUDA the caching allocator's peak of allocated bytes. "bytes/tile"
// is (peak - memory before the forward) / N: flat across sizes means linear growth.
// Prints a markdown table for benchmarks/RESULTS.md.
//
//   bench_slide_memory [--kinds abmil,transformer,qformer] [--sizes 1000,4000,16000,64000,100000]
//                      [--transformer-sizes 1000,2000,4000,8000] [--device cpu|cuda] [--dtype fp32|bf16]
//                      [--dim 512] [--width 256] [--heads 4] [--layers 2] [--queries 16] [--chunk 1024]
//                      [--threads 0]
// The tile transformer's exact attention costs N^2 FLOPs, so on CPU it stops at --transformer-sizes (default
// 1000,2000,4000,8000: the whole CPU run then takes ~4 min on 2 busy cores; on CUDA the default is --sizes).
// --threads 0 keeps torch's default.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "bench_args.h"
#include "core/error.h"
#include "models/slide/encoder.h"
#ifdef PATHVLM_HAVE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

using namespace pathvlm;
using bench::arg;
using Clock = std::chrono::steady_clock;

namespace {

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// A field of /proc/self/status in bytes ("VmHWM", "VmRSS").
int64_t proc_status_bytes(const std::string& field) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1)) * 1024;
  throw Error(str("bench_slide_memory: /proc/self/status has no ", field));
}

models::slide::SlideEncoderConfig config_from_args(int argc, char** argv, const std::string& kind) {
  models::slide::SlideEncoderConfig c;
  c.kind = kind;
  c.input_dim = std::stoll(arg(argc, argv, "--dim", "512"));
  c.width = std::stoll(arg(argc, argv, "--width", "256"));
  c.heads = std::stoll(arg(argc, argv, "--heads", "4"));
  c.layers = std::stoll(arg(argc, argv, "--layers", "2"));
  c.queries = std::stoll(arg(argc, argv, "--queries", "16"));
  c.attention_chunk = std::stoll(arg(argc, argv, "--chunk", "1024"));
  return c;
}

// One forward + backward of a slide of `tiles` tiles on a square grid; prints
// "RESULT <seconds> <peak bytes> <bytes before the forward>".
int measure(int argc, char** argv, const std::string& kind, int64_t tiles) {
  const torch::Device device(arg(argc, argv, "--device", "cpu"));
  const auto dtype = arg(argc, argv, "--dtype", "fp32") == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  const int threads = std::stoi(arg(argc, argv, "--threads", "0"));
  if (threads > 0) torch::set_num_threads(threads);
  const auto config = config_from_args(argc, argv, kind);
  torch::manual_seed(0);
  models::slide::SlideEncoder encoder(config);
  encoder->to(device, dtype);
  auto make_slide = [&](int64_t n) {
    const auto side = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
    auto cell = torch::arange(n, torch::kLong);
    auto coords = torch::stack({cell.remainder(side), cell.div(side, "floor")}, 1).unsqueeze(0) * config.grid_stride;
    return std::make_tuple(torch::randn({1, n, config.input_dim}).to(device, dtype), coords.to(device),
                           torch::ones({1, n}, torch::kBool).to(device));
  };
  auto step = [&](int64_t n) {
    auto [features, coords, mask] = make_slide(n);
    auto out = encoder->forward(features, coords, mask);
    (out.tokens.to(torch::kFloat).pow(2).mean() + out.pooled.to(torch::kFloat).mean()).backward();
  };
  step(std::min<int64_t>(tiles, 256));  // warm-up: first-call costs stay out of the timing
  encoder->zero_grad();
  auto [features, coords, mask] = make_slide(tiles);
  int64_t before = 0;
#ifdef PATHVLM_HAVE_CUDA
  if (device.is_cuda()) {
    torch::cuda::synchronize();
    c10::cuda::CUDACachingAllocator::resetPeakStats(device.index() < 0 ? 0 : device.index());
    before = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index())
                 .allocated_bytes[0]
                 .current;
  }
#endif
  if (!device.is_cuda()) before = proc_status_bytes("VmRSS");
  const auto start = Clock::now();
  auto out = encoder->forward(features, coords, mask);
  (out.tokens.to(torch::kFloat).pow(2).mean() + out.pooled.to(torch::kFloat).mean()).backward();
  if (device.is_cuda()) torch::cuda::synchronize();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  int64_t peak = 0;
#ifdef PATHVLM_HAVE_CUDA
  if (device.is_cuda())
    peak = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index())
               .allocated_bytes[0]
               .peak;
#endif
  if (!device.is_cuda()) peak = proc_status_bytes("VmHWM");
  PATHVLM_CHECK(device.is_cpu() || peak > 0, "bench_slide_memory: no CUDA memory statistics in this build");
  std::printf("RESULT %.6f %lld %lld\n", seconds, static_cast<long long>(peak), static_cast<long long>(before));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 4 && std::string(argv[1]) == "--measure") return measure(argc, argv, argv[2], std::stoll(argv[3]));
  const std::string device = arg(argc, argv, "--device", "cpu");
  const std::string sizes_arg = arg(argc, argv, "--sizes", "1000,4000,16000,64000,100000");
  const auto sizes = split(sizes_arg);
  const auto transformer_sizes =
      split(arg(argc, argv, "--transformer-sizes", device == "cpu" ? "1000,2000,4000,8000" : sizes_arg));
  std::string passthrough;
  for (int i = 1; i + 1 < argc; i += 2) passthrough += std::string(" ") + argv[i] + " " + argv[i + 1];
  const auto shape = config_from_args(argc, argv, "abmil");
  std::printf("slide encoders, forward + backward of one slide on %s (%s): D %lld, W %lld, heads %lld, layers %lld, "
              "queries %lld, chunk %lld\n\n",
              device.c_str(), arg(argc, argv, "--dtype", "fp32").c_str(), static_cast<long long>(shape.input_dim),
              static_cast<long long>(shape.width), static_cast<long long>(shape.heads),
              static_cast<long long>(shape.layers), static_cast<long long>(shape.queries),
              static_cast<long long>(shape.attention_chunk));
  std::printf("| kind | tiles | time | peak memory | before forward | bytes/tile |\n|---|---|---|---|---|---|\n");
  for (const auto& kind : split(arg(argc, argv, "--kinds", "abmil,transformer,qformer"))) {
    for (const auto& size : kind == "transformer" ? transformer_sizes : sizes) {
      const auto command = str("/proc/", getpid(), "/exe --measure ", kind, " ", size, passthrough);
      FILE* child = popen(command.c_str(), "r");
      PATHVLM_CHECK(child != nullptr, "bench_slide_memory: cannot run ", command);
      double seconds = 0;
      long long peak = 0, before = 0;
      char line[512];
      bool found = false;
      while (std::fgets(line, sizeof line, child))
        if (std::sscanf(line, "RESULT %lf %lld %lld", &seconds, &peak, &before) == 3) found = true;
      const int status = pclose(child);
      if (!found || status != 0) {
        std::printf("| %s | %s | failed (exit status %d) | | | |\n", kind.c_str(), size.c_str(), status);
        continue;
      }
      const auto tiles = std::stod(size);
      std::printf("| %s | %s | %.2f s | %.0f MiB | %.0f MiB | %.0f |\n", kind.c_str(), size.c_str(), seconds,
                  peak / 1048576.0, before / 1048576.0, (peak - before) / tiles);
      std::fflush(stdout);
    }
  }
  return 0;
}
