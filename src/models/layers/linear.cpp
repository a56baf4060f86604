#include "models/layers/linear.h"

#include <cmath>

#include "core/error.h"

namespace pathvlm::models {

double LoraOptions::scaling() const {
  return use_rslora() ? alpha() / std::sqrt(static_cast<double>(r())) : alpha() / static_cast<double>(r());
}

namespace {
thread_local bool skip_weight_init = false;
}  // namespace

SkipWeightInit::SkipWeightInit(bool skip) : previous_(skip_weight_init) { skip_weight_init = previous_ || skip; }
SkipWeightInit::~SkipWeightInit() { skip_weight_init = previous_; }

torch::nn::Embedding make_embedding(int64_t count, int64_t width) {
  torch::nn::EmbeddingOptions options(count, width);
  if (skip_weight_init) options._weight(torch::empty({count, width}));
  return torch::nn::Embedding(options);
}

KeepCpuRandomStream::KeepCpuRandomStream()
    : generator_(at::detail::getDefaultCPUGenerator()), state_(generator_.get_state()) {}
KeepCpuRandomStream::~KeepCpuRandomStream() { generator_.set_state(state_); }

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias) : in_features(in), out_features(out) {
  PATHVLM_CHECK(in > 0 && out > 0, "linear: features ", in, " -> ", out, " must be positive");
  weight = register_parameter("weight", torch::empty({out, in}));
  if (with_bias) bias = register_parameter("bias", torch::empty({out}));
  if (skip_weight_init) return;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (with_bias) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    torch::nn::init::uniform_(bias, -bound, bound);
  }
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  auto y = torch::nn::functional::linear(x, weight, bias);
  return has_lora() ? y + lora_update(x) : y;
}

torch::Tensor LinearImpl::lora_update(const torch::Tensor& x) {
  const auto& options = lora_options();
  const auto dropped = options.dropout() > 0.0 ? torch::dropout(x, options.dropout(), is_training()) : x;
  return torch::nn::functional::linear(torch::nn::functional::linear(dropped, lora_A), lora_B) * options.scaling();
}

void LinearImpl::add_lora(const LoraOptions& options) {
  PATHVLM_CHECK(!has_lora(), "linear ", in_features, " -> ", out_features, ": already has a LoRA adapter");
  PATHVLM_CHECK(options.r() > 0, "linear: LoRA rank r ", options.r(), " must be positive");
  PATHVLM_CHECK(options.alpha() > 0, "linear: LoRA alpha ", options.alpha(), " must be positive");
  PATHVLM_CHECK(options.dropout() >= 0.0 && options.dropout() < 1.0, "linear: LoRA dropout ", options.dropout(),
                " is outside [0, 1)");
  // Child modules holding one `weight` each, so the names read <layer>.lora_A.weight as in PEFT's files.
  const auto like = weight.options().requires_grad(false);
  auto a = register_module("lora_A", std::make_shared<torch::nn::Module>());
  auto b = register_module("lora_B", std::make_shared<torch::nn::Module>());
  lora_A = a->register_parameter("weight", torch::empty({options.r(), in_features}, like));
  lora_B = b->register_parameter("weight", torch::zeros({out_features, options.r()}, like));
  torch::nn::init::kaiming_uniform_(lora_A, std::sqrt(5.0));
  lora_options_ = options;
}

const LoraOptions& LinearImpl::lora_options() const {
  PATHVLM_CHECK(has_lora(), "linear ", in_features, " -> ", out_features, ": has no LoRA adapter");
  return *lora_options_;
}

void LinearImpl::merge_lora() {
  const double scaling = lora_options().scaling();
  {
    torch::NoGradGuard no_grad;
    const auto delta = torch::matmul(lora_B.to(torch::kFloat32), lora_A.to(torch::kFloat32)) * scaling;
    weight.copy_(weight.to(torch::kFloat32) + delta);
  }
  unregister_module("lora_A");
  unregister_module("lora_B");
  lora_A = lora_B = torch::Tensor();
  lora_options_.reset();
}

}  // namespace pathvlm::models
