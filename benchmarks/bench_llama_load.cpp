// Wall time and peak resident memory of load_llama: writes a synthetic LLaMA (a preset with fewer layers,
// ~1 GB in bf16 by default) to a temporary HF directory, then loads it in bf16 (the file's dtype: parameters
// view the mapping) and in fp32 (converted piece by piece), each in a fresh process so the peaks are the load's
// own. Prints markdown rows for benchmarks/RESULTS.md.
//
//   bench_llama_load [--preset tinyllama-1.1b] [--layers 8] [--max-shard-mb 400] [--dir DIR]
// Internally the program reruns itself as `bench_llama_load --load DIR --dtype bf16|fp32` for each measurement.
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "bench_args.h"
#include "core/error.h"
#include "models/llama/config.h"
#include "models/llama/weights.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using bench::arg;
using Clock = std::chrono::steady_clock;

namespace {

// Peak resident set of this process in MiB, from /proc/self/status (VmHWM).
double vm_hwm_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return -1.0;
}

double ru_maxrss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // kilobytes on Linux
}

uint64_t weights_bytes(const fs::path& dir) {
  uint64_t total = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".safetensors") total += entry.file_size();
  }
  return total;
}

int load_and_report(const std::string& dir, const std::string& dtype_name) {
  const auto dtype = dtype_name == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  const double rss_before = vm_hwm_mib();
  const auto start = Clock::now();
  auto model = models::load_llama(dir, dtype, torch::kCPU);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  const double model_mib = params * c10::elementSize(dtype) / 1048576.0;
  const double load_peak = vm_hwm_mib(), load_maxrss = ru_maxrss_mib();
  // Mapped parameters become resident when first read: one pass over every weight shows the size in use.
  double checksum = 0;
  for (const auto& p : model->parameters()) checksum += p.sum().item<double>();
  std::printf("| load_llama %s (file bf16) | %.2f s | %.0f MiB | %.0f MiB | %.0f MiB | %.0f MiB | %.0f MiB before "
              "the load; sum %.3g |\n",
              dtype_name.c_str(), seconds, model_mib, load_maxrss, load_peak, vm_hwm_mib(), rss_before, checksum);
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string load_dir = arg(argc, argv, "--load", "");
  if (!load_dir.empty()) return load_and_report(load_dir, arg(argc, argv, "--dtype", "bf16"));

  auto config = models::llama_preset(arg(argc, argv, "--preset", "tinyllama-1.1b"));
  config.num_hidden_layers = std::stoll(arg(argc, argv, "--layers", "8"));
  const uint64_t max_shard = std::stoull(arg(argc, argv, "--max-shard-mb", "400")) << 20;
  const fs::path dir = arg(argc, argv, "--dir",
                           (fs::temp_directory_path() / ("pathvlm_bench_llama_" + std::to_string(::getpid()))).string());
  {
    const auto start = Clock::now();
    models::LlamaOptions options;
    options.init_weights = false;  // the constructor's default initialisation is random enough for a size test
    models::LlamaForCausalLM model(config, options);
    // Part of every load: torch::nn::Linear / Embedding draw their default initialisation in the constructor.
    const double construct_s = std::chrono::duration<double>(Clock::now() - start).count();
    models::export_hf_llama(model, dir.string(), torch::kBFloat16, max_shard, "");
    std::printf("wrote %s: %d layers of %s, %.0f MiB of bf16 safetensors; constructing the fp32 model took %.1f s\n",
                dir.c_str(), static_cast<int>(config.num_hidden_layers),
                arg(argc, argv, "--preset", "tinyllama-1.1b").c_str(), weights_bytes(dir) / 1048576.0, construct_s);
  }
  std::printf("| measurement | wall | parameters | peak RSS (ru_maxrss) | peak RSS (VmHWM) | VmHWM after reading every "
              "weight once | note |\n|---|---|---|---|---|---|---|\n");
  std::fflush(stdout);
  int status = 0;
  for (const char* dtype : {"bf16", "fp32"}) {
    const std::string command = std::string(argv[0]) + " --load '" + dir.string() + "' --dtype " + dtype;
    status |= std::system(command.c_str());
  }
  if (arg(argc, argv, "--dir", "").empty()) fs::remove_all(dir);
  return status == 0 ? 0 : 1;
}
