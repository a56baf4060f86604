// Training step throughput of CLIP (the clip task's step without data loading): a CLIP preset with random
// weights, synthetic uint8 images and token ids made on the device once, and per step: normalisation on the
// device, both towers in bf16 autocast (the trainer's train.precision bf16-mixed), symmetric InfoNCE, backward
// through the Reducer (one rank: no collective), gradient clipping at 1.0, the non-finite skip flag and pathvlm's
// AdamW (fused on CUDA), as the Trainer runs them. After the timed steps, two more run under a HostReadCounter
// (core/host_reads.h): the JSON's host_reads_per_step must be 0 for the GPU to run ahead of the loop. The python
// peers (scripts/gpu/bench_clip_peer.py) run the same step with transformers.CLIPModel; scripts/gpu/check.sh puts
// them side by side.
//
//   bench_clip_step [--preset ViT-B-16] [--batch 256] [--steps 20] [--warmup 5] [--device cuda]
//                   [--precision bf16-mixed|bf16|fp32] [--peak-tflops 0] [--separate-qkv]
//
// --precision bf16 is the trainer's bf16: bf16 weights, so the residual stream and every activation are bf16,
// with fp32 master weights in AdamW; bf16-mixed keeps fp32 weights and an fp32 residual stream under autocast.
// --separate-qkv runs q, k and v as three GEMMs (AttentionOptions::fused_qkv off) to measure what fusing buys.
//
// Prints one JSON line: samples/s, seconds per step, model FLOPs per sample (models::train_flops_per_sample),
// MFU = FLOPs per sample x samples/s / peak (the peak: --peak-tflops, else the GPU's bf16 figure from
// core/device_stats; none on CPU unless given), and the peak memory of the caching allocator.
#include <chrono>
#include <cstdio>
#include <string>

#include "bench_args.h"
#include "core/compat.h"
#include "core/device_stats.h"
#include "core/error.h"
#include "core/host_reads.h"
#include "dist/process_group.h"
#include "dist/reducer.h"
#include "losses/contrastive.h"
#include "models/clip/model.h"
#include "models/layers/attention.h"
#include "train/adamw.h"
#include "train/nonfinite_steps.h"

using namespace pathvlm;
using bench::arg;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const std::string preset = arg(argc, argv, "--preset", "ViT-B-16");
  const int64_t batch = std::stoll(arg(argc, argv, "--batch", "256"));
  const int steps = std::stoi(arg(argc, argv, "--steps", "20"));
  const int warmup = std::stoi(arg(argc, argv, "--warmup", "5"));
  const torch::Device device(arg(argc, argv, "--device", torch::cuda::is_available() ? "cuda" : "cpu"));
  const std::string precision = arg(argc, argv, "--precision", "bf16-mixed");
  PATHVLM_CHECK(precision == "bf16-mixed" || precision == "bf16" || precision == "fp32",
                "bench_clip_step: --precision ", precision, " is not one of bf16-mixed, bf16, fp32");
  const bool bf16 = precision != "fp32";
  double peak_tflops = std::stod(arg(argc, argv, "--peak-tflops", "0"));
  const bool fused_qkv = !bench::has_flag(argc, argv, "--separate-qkv");
  if (peak_tflops <= 0 && bf16) peak_tflops = device_bf16_peak_tflops(device);

  torch::manual_seed(0);
  models::ClipModelConfig config;
  config.preset = preset;
  models::ClipModel model(config);
  model->to(device);
  if (precision == "bf16") model->to(torch::kBFloat16);
  for (const auto& module : model->modules()) {
    if (auto* attention = dynamic_cast<models::AttentionImpl*>(module.get())) attention->options.fused_qkv(fused_qkv);
  }
  model->train();
  const auto& c = model->config();

  std::vector<dist::NamedParam> params;
  for (const auto& item : model->named_parameters()) params.push_back({item.key(), item.value(), item.value().dim() > 1});
  auto comm = dist::make_local_comm();
  dist::Reducer reducer(params, *comm, dist::DistConfig{});
  train::AdamW::Options options;  // open_clip's ViT-B/16 recipe, as the python peers use
  options.beta2 = 0.98;
  options.eps = 1e-6;
  options.weight_decay = 0.2;
  train::AdamW optimizer(options);
  for (const auto& shard : reducer.local_shards())
    optimizer.add(std::to_string(shard.flat_offset), shard.param, shard.grad, shard.decay);

  // The data, made on the device once: uint8 pixels (as a loader would upload them) and ids ending in EOT.
  auto pixels_u8 = torch::randint(0, 256, {batch, 3, c.image_size, c.image_size},
                                  torch::TensorOptions().dtype(torch::kUInt8).device(device));
  auto ids = torch::randint(1, c.vocab_size - 2, {batch, c.context_length},
                            torch::TensorOptions().dtype(torch::kLong).device(device));
  ids.select(1, c.context_length - 1).fill_(c.vocab_size - 1);
  const auto mean = torch::tensor({0.48145466f, 0.4578275f, 0.40821073f}, device).view({1, 3, 1, 1});
  const auto std = torch::tensor({0.26862954f, 0.26130258f, 0.27577711f}, device).view({1, 3, 1, 1});

  train::NonFiniteSteps nonfinite(device);
  int64_t step_number = 0;
  double last_loss = 0;
  auto step = [&] {
    StepScope scope;
    torch::Tensor loss;
    {
      compat::AutocastGuard autocast(device.type(), bf16, torch::kBFloat16);
      auto pixels = (pixels_u8.to(torch::kFloat).div_(255.0f) - mean) / std;
      auto image = torch::nn::functional::normalize(model->encode_image(pixels).to(torch::kFloat),
                                                    torch::nn::functional::NormalizeFuncOptions().dim(-1));
      auto text = torch::nn::functional::normalize(model->encode_text(ids).to(torch::kFloat),
                                                   torch::nn::functional::NormalizeFuncOptions().dim(-1));
      loss = losses::clip_loss(image, text, model->logit_scale, nullptr);
    }
    reducer.prepare_backward(true);
    loss.backward();
    reducer.finish_backward();
    auto norm = train::clip_grad_norm(optimizer.grads(), 1.0, nullptr);
    optimizer.step(1e-4, nonfinite.record(loss, norm, ++step_number));
    reducer.zero_grad();
    return loss;
  };
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };

  for (int i = 0; i < warmup; ++i) step();
  sync();
  reset_peak_memory(device);
  const auto start = Clock::now();
  torch::Tensor loss;
  for (int i = 0; i < steps; ++i) loss = step();
  sync();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count() / steps;
  last_loss = loss.item<double>();
  double host_reads_per_step = 0;
  {
    HostReadCounter reads;  // untimed: its observers slow every operator down
    for (int i = 0; i < 2; ++i) step();
    host_reads_per_step = static_cast<double>(reads.in_steps()) / 2;
  }
  sync();

  const double flops = models::train_flops_per_sample(c);
  const double samples_per_s = batch / seconds;
  const double mfu = peak_tflops > 0 ? flops * samples_per_s / (peak_tflops * 1e12) : 0;
  std::printf("{\"name\": \"pathvlm\", \"preset\": \"%s\", \"batch\": %lld, \"precision\": \"%s\", \"device\": \"%s\", "
              "\"samples_per_s\": %.2f, \"step_s\": %.5f, \"flops_per_sample\": %.6g, \"peak_tflops\": %.1f, "
              "\"mfu\": %.4f, \"peak_mem_gib\": %.3f, \"loss\": %.4f, \"fused_adamw\": %s, \"fused_qkv\": %s, "
              "\"host_reads_per_step\": %g}\n",
              preset.c_str(), static_cast<long long>(batch), precision.c_str(), device.str().c_str(),
              samples_per_s, seconds, flops, peak_tflops, mfu, peak_memory_bytes(device) / double(1ull << 30),
              last_loss, optimizer.fused() ? "true" : "false", fused_qkv ? "true" : "false", host_reads_per_step);
  return 0;
}
