// Phase-2 training step throughput of the instruct model (models/llava): a frozen CLIP tower preset, the mlp2x_gelu
// projector and a LLaMA preset, random weights, synthetic batches of `--batch` samples each holding one image and
// `--text` text tokens (every text token supervised), forward + backward + AdamW over projector and LLM per step.
// Prints a markdown row for benchmarks/RESULTS.md: positions/s (text tokens + image rows) and MFU.
//
//   bench_instruct_step [--llm tinyllama-1.1b] [--tower ViT-L-14] [--batch 8] [--text 512] [--steps 10]
//                       [--device cuda] [--dtype bf16] [--checkpointing 1] [--peak-tflops 989]
//
// MFU = positions/s x (6 x trainable parameters + 6 x layers x positions x width) / peak, the formula of
// RESULTS.md (the frozen tower's forward and the attention of the tower are left out, so it undercounts slightly).
// The peak defaults to the dense bf16 figure of an H100 / H200 SXM (989 TFLOP/s). The step is the model's alone
// (torch::optim::AdamW on the bf16 parameters, one process): the Trainer's loop, Reducer and data loading are not
// in it.
#include <chrono>
#include <cstdio>
#include <string>

#include "bench_args.h"
#include "core/error.h"
#include "models/clip/config.h"
#include "models/clip/model.h"
#include "models/llama/config.h"
#include "models/llava/model.h"

using namespace pathvlm;
using bench::arg;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const std::string llm_preset = arg(argc, argv, "--llm", "tinyllama-1.1b");
  const std::string tower_preset = arg(argc, argv, "--tower", "ViT-L-14");
  const int64_t batch = std::stoll(arg(argc, argv, "--batch", "8"));
  const int64_t text = std::stoll(arg(argc, argv, "--text", "512"));
  const int steps = std::stoi(arg(argc, argv, "--steps", "10"));
  const torch::Device device(arg(argc, argv, "--device", torch::cuda::is_available() ? "cuda" : "cpu"));
  const auto dtype = arg(argc, argv, "--dtype", device.is_cuda() ? "bf16" : "fp32") == "bf16" ? torch::kBFloat16
                                                                                                : torch::kFloat32;
  const bool checkpointing = arg(argc, argv, "--checkpointing", "1") == "1";
  const double peak = std::stod(arg(argc, argv, "--peak-tflops", "989")) * 1e12;

  models::ClipModelConfig tower_config;
  tower_config.preset = tower_preset;
  tower_config = models::resolve_clip_config(tower_config);
  models::ClipModel clip(tower_config);
  models::LlamaOptions options;
  options.checkpoint_layers = checkpointing;
  const auto llm_config = models::llama_preset(llm_preset);
  models::LlavaConfig config;
  models::LlavaModel llava(config, clip, models::LlamaForCausalLM(llm_config, options));
  llava->to(device, dtype);
  llava->train();

  std::vector<torch::Tensor> trainable;
  int64_t trainable_params = 0;
  for (auto& p : llava->parameters())
    if (p.requires_grad()) trainable.push_back(p), trainable_params += p.numel();
  torch::optim::AdamW optimizer(trainable, torch::optim::AdamWOptions(2e-5).weight_decay(0.0));

  // One image sentinel after the BOS, then text; everything after the image supervised.
  const int64_t length = 1 + 1 + text;
  auto ids = torch::randint(3, llm_config.vocab_size, {batch, length}, torch::kInt64);
  ids.select(1, 0).fill_(llm_config.bos_token_id);
  ids.select(1, 1).fill_(models::kImageSentinel);
  auto labels = ids.clone();
  labels.narrow(1, 0, 2).fill_(models::kIgnoreIndex);
  models::LlavaBatch b{ids.to(device), labels.to(device), torch::ones({batch, length}, torch::kBool).to(device),
                       torch::randn({batch, 3, tower_config.image_size, tower_config.image_size}).to(device, dtype), {}};
  const int64_t positions = batch * (length - 1 + llava->image_tokens());

  auto step = [&] {
    optimizer.zero_grad();
    auto loss = llava->forward(b);
    (loss.sum / static_cast<double>(loss.tokens)).backward();
    optimizer.step();
  };
  step();  // warm-up: allocator, kernels
  if (device.is_cuda()) torch::cuda::synchronize();
  const auto start = Clock::now();
  for (int i = 0; i < steps; ++i) step();
  if (device.is_cuda()) torch::cuda::synchronize();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double per_s = positions * steps / seconds;
  const double seq = static_cast<double>(length - 1 + llava->image_tokens());
  const double flops_per_position = 6.0 * trainable_params +
                                    6.0 * llm_config.num_hidden_layers * seq * llm_config.hidden_size;
  std::printf("| instruct phase-2 step | %s + %s, %lld trainable params, batch %lld x %lld positions, %s%s | "
              "%.0f positions/s, %.3f s/step, MFU %.1f%% (peak %.0f TFLOP/s) |\n",
              tower_preset.c_str(), llm_preset.c_str(), static_cast<long long>(trainable_params),
              static_cast<long long>(batch), static_cast<long long>(seq), dtype == torch::kBFloat16 ? "bf16" : "fp32",
              checkpointing ? ", activation checkpointing" : "", per_s, seconds / steps,
              100.0 * per_s * flops_per_position / peak, peak / 1e12);
  return 0;
}
