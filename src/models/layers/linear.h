// A fully connected layer y = x W^T + b with torch::nn::Linear's parameters (`weight` [out, in], `bias` [out]
// unless turned off) and its default initialisation: kaiming_uniform(a = sqrt(5)) of the weight, then the bias
// uniform(+-1/sqrt(in)), from the global generator in that order, so a model built on it initialises bit for
// bit as on torch::nn::Linear.
//
// It can carry a LoRA adapter in PEFT's layout: child parameters lora_A.weight [r, in] (kaiming-uniform) and
// lora_B.weight [out, r] (zeros, so the adapted layer starts equal to the base), and
//   y = x W^T + b + (dropout(x) A^T B^T) * scaling,   scaling = alpha / r (alpha / sqrt(r) with rsLoRA).
// merge_lora() folds B A * scaling into the weight and removes the adapter.
//
//   models::Linear proj(512, 2048, /*bias=*/false);
//   proj->add_lora(models::LoraOptions(8, 16).dropout(0.05));   // parameters proj.lora_{A,B}.weight
//   auto y = proj(x);
//   proj->merge_lora();                                          // weight += B A * scaling
#pragma once
#include <torch/torch.h>

#include <optional>

namespace pathvlm::models {

struct LoraOptions {
  LoraOptions(int64_t r, double alpha) : r_(r), alpha_(alpha) {}
  // alpha / r, or alpha / sqrt(r) with use_rslora.
  double scaling() const;

  TORCH_ARG(int64_t, r);
  TORCH_ARG(double, alpha);
  // Dropout on the adapter's input while training.
  TORCH_ARG(double, dropout) = 0.0;
  // Rank-stabilised scaling alpha / sqrt(r) instead of alpha / r.
  TORCH_ARG(bool, use_rslora) = false;
};

// While one (built with skip = true) is alive on this thread, Linear layers and the embeddings of make_embedding are
// built with uninitialised parameters and draw no random numbers: for models whose every weight is overwritten right
// after construction (a checkpoint load), where the default initialisation would dominate a large model's load time.
class SkipWeightInit {
 public:
  explicit SkipWeightInit(bool skip = true);
  ~SkipWeightInit();
  SkipWeightInit(const SkipWeightInit&) = delete;
  SkipWeightInit& operator=(const SkipWeightInit&) = delete;

 private:
  bool previous_;
};

// torch::nn::Embedding(count, width), its weight drawn N(0, 1) as torch's is, or left uninitialised under a
// SkipWeightInit.
torch::nn::Embedding make_embedding(int64_t count, int64_t width);

// Restores torch's default CPU generator when it leaves scope: a model built inside draws what it likes without
// moving the caller's random stream (fixed-seed towers; the few modules whose constructors draw regardless).
class KeepCpuRandomStream {
 public:
  KeepCpuRandomStream();
  ~KeepCpuRandomStream();
  KeepCpuRandomStream(const KeepCpuRandomStream&) = delete;
  KeepCpuRandomStream& operator=(const KeepCpuRandomStream&) = delete;

 private:
  at::Generator generator_;
  at::Tensor state_;
};

// A module holder (Vit, ConchText, Swin, ...) built from `args` with nothing drawn and the caller's CPU random stream
// left where it was: for a loader that sets every value next.
template <class Module, class... Args>
Module unset_module(Args&&... args) {
  const SkipWeightInit skip_init;
  const KeepCpuRandomStream keep_stream;
  return Module(std::forward<Args>(args)...);
}

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias = true);
  torch::Tensor forward(const torch::Tensor& x);
  // The adapter's term (dropout(x) A^T B^T) * scaling that forward adds to x W^T + b. Throws without an adapter.
  torch::Tensor lora_update(const torch::Tensor& x);

  // Adds an adapter on the weight's device and dtype (A drawn from the global generator). Throws when the
  // layer has one already or the options are out of range.
  void add_lora(const LoraOptions& options);
  bool has_lora() const { return lora_options_.has_value(); }
  // The adapter's settings; throws without one.
  const LoraOptions& lora_options() const;
  // weight += B A * scaling (computed in fp32, stored in the weight's dtype); the adapter's parameters are
  // unregistered. Throws without an adapter.
  void merge_lora();

  int64_t in_features, out_features;
  torch::Tensor weight, bias;          // bias undefined when turned off
  torch::Tensor lora_A, lora_B;        // undefined without an adapter

 private:
  std::optional<LoraOptions> lora_options_;
};
TORCH_MODULE(Linear);

}  // namespace pathvlm::models
