#include "models/vit/loading.h"

#include <filesystem>
#include <optional>
#include <vector>

#include "core/error.h"
#include "models/layers/gated_mlp.h"
#include "models/layers/linear.h"
#include "models/layers/mlp.h"

namespace fs = std::filesystem;

namespace pathvlm::models {

torch::Tensor CheckpointTensors::get(const std::string& name) {
  PATHVLM_CHECK(checkpoint_.contains(name), where_, ": lacks tensor '", name, "'");
  taken_.insert(name);
  return checkpoint_.get(name).to(torch::kFloat);
}

torch::Tensor CheckpointTensors::get_if(const std::string& name) {
  return checkpoint_.contains(name) ? get(name) : torch::Tensor();
}

NamedLinear CheckpointTensors::linear(const std::string& name) {
  return {get(name + ".weight"), get_if(name + ".bias"), name};
}

void CheckpointTensors::copy(torch::Tensor& target, const std::string& name) {
  set_vit_tensor(target, get(name), name, where_);
}

void CheckpointTensors::refuse_untaken(const std::function<bool(const std::string&)>& dropped,
                                       const std::string& what_is_refused) const {
  for (const auto& name : checkpoint_.names()) {
    PATHVLM_CHECK(taken_.count(name) || dropped(name), where_, ": tensor '", name, "' is not part of a supported ",
                  what_is_refused);
  }
}

torch::Tensor resample_patch_positions(const torch::Tensor& patch_positions, int grid,
                                       const torch::nn::functional::InterpolateFuncOptions& how) {
  const int64_t width = patch_positions.size(2);
  const auto image = patch_positions.reshape({1, grid, grid, width}).permute({0, 3, 1, 2}).to(torch::kFloat);
  return torch::nn::functional::interpolate(image, how).permute({0, 2, 3, 1}).reshape({1, -1, width});
}

void set_layer_norm(torch::nn::LayerNorm& norm, CheckpointTensors& t, const std::string& name) {
  t.copy(norm->weight, name + ".weight");
  t.copy(norm->bias, name + ".bias");
}

bool holds_safetensors(const std::string& path) {
  const fs::path p(path);
  if (fs::is_directory(p))
    return fs::is_regular_file(p / "model.safetensors") || fs::is_regular_file(p / "model.safetensors.index.json");
  return fs::is_regular_file(p) && p.extension() == ".safetensors";
}

TensorShapeOf shapes_in(const safetensors::Checkpoint& checkpoint) {
  return [&checkpoint](const std::string& name) -> std::optional<std::vector<int64_t>> {
    if (!checkpoint.contains(name)) return std::nullopt;
    return checkpoint.info(name).shape;
  };
}

std::vector<int64_t> bounded_shape(const TensorShapeOf& stored, const std::string& name, size_t dims, int64_t most,
                                   const std::string& where) {
  const auto shape = stored(name);
  bool fits = shape && shape->size() == dims;
  for (size_t i = 0; fits && i < dims; ++i) fits = (*shape)[i] >= 1 && (*shape)[i] <= most;
  PATHVLM_CHECK(fits, where, ": tensor '", name, "' is ", shape ? str(torch::IntArrayRef(*shape)) : "missing",
                ", not ", dims, " sizes of at most ", most);
  return *shape;
}

Vit unset_vit(const VitConfig& config) { return unset_module<Vit>(config); }

void set_vit_tensor(torch::Tensor& target, const torch::Tensor& value, const std::string& name,
                    const std::string& where) {
  PATHVLM_CHECK(value.defined(), where, ": lacks tensor '", name, "'");
  PATHVLM_CHECK(target.sizes() == value.sizes(), where, ": tensor '", name, "' has shape ", value.sizes(),
                ", expected ", target.sizes());
  torch::NoGradGuard no_grad;
  target.copy_(value);
}

namespace {

// `scale` (LayerScale, undefined = none) multiplies the layer's output: folded into its rows. `layer` is a module
// holder (a shared pointer), taken by value.
template <class Layer>
void set_linear(Layer layer, const NamedLinear& w, const std::string& where, const torch::Tensor& scale = {}) {
  // Shapes checked before the folding's arithmetic, which would otherwise fail inside torch without the file's name.
  set_vit_tensor(layer->weight, w.weight, w.name + ".weight", where);
  const auto bias = w.bias.defined() ? w.bias : torch::zeros({layer->weight.size(0)});
  set_vit_tensor(layer->bias, bias, w.name + ".bias", where);
  if (!scale.defined()) return;
  PATHVLM_CHECK(scale.sizes() == layer->bias.sizes(), where, ": the LayerScale of '", w.name, "' has shape ",
                scale.sizes(), ", expected ", layer->bias.sizes());
  torch::NoGradGuard no_grad;
  layer->weight.mul_(scale.unsqueeze(1));
  layer->bias.mul_(scale);
}

}  // namespace

void split_packed_qkv(VitBlockWeights& w, const NamedLinear& qkv, int64_t width, const std::string& where) {
  PATHVLM_CHECK(qkv.weight.dim() == 2 && qkv.weight.size(0) == 3 * width &&
                    (!qkv.bias.defined() || (qkv.bias.dim() == 1 && qkv.bias.size(0) == 3 * width)),
                where, ": tensor '", qkv.name, ".weight' (and its bias) is ", qkv.weight.sizes(),
                ", not q, k and v of width ", width, " packed [", 3 * width, ", ", width, "]");
  const auto weights = qkv.weight.chunk(3, 0);
  const auto biases = qkv.bias.defined() ? qkv.bias.chunk(3, 0) : std::vector<torch::Tensor>(3);
  w.q = {weights[0], biases[0], qkv.name};
  w.k = {weights[1], biases[1], qkv.name};
  w.v = {weights[2], biases[2], qkv.name};
}

void set_vit_block(TransformerBlockImpl& block, const VitConfig& config, const VitBlockWeights& w,
                   const std::string& where) {
  set_linear(block.norm1.get<torch::nn::LayerNorm>(), w.norm1, where);
  set_linear(block.norm2.get<torch::nn::LayerNorm>(), w.norm2, where);
  auto& attn = *block.self_attn;
  set_linear(attn.q_proj, w.q, where);
  set_linear(attn.k_proj, w.k, where);
  set_linear(attn.v_proj, w.v, where);
  set_linear(attn.out_proj, w.out, where, w.ls1);
  if (config.mlp == "gelu") {
    auto& mlp = *block.mlp.get<Mlp>();
    set_linear(mlp.fc1, w.fc1, where);
    set_linear(mlp.fc2, w.fc2, where, w.ls2);
    return;
  }
  auto& mlp = *block.mlp.get<GatedMlp>();
  if (w.gate.weight.defined()) {
    set_linear(mlp.gate_proj, w.gate, where);
    set_linear(mlp.up_proj, w.up, where);
  } else {  // packed: silu(first half) * second half
    PATHVLM_CHECK(w.fc1.weight.defined() && w.fc1.weight.size(0) % 2 == 0, where, ": tensor '", w.fc1.name,
                  ".weight' does not hold a gate and a value of equal width");
    const auto weight = w.fc1.weight.chunk(2, 0);
    const auto bias = w.fc1.bias.defined() ? w.fc1.bias.chunk(2, 0) : std::vector<torch::Tensor>(2);
    set_linear(mlp.gate_proj, {weight[0], bias[0], w.fc1.name}, where);
    set_linear(mlp.up_proj, {weight[1], bias[1], w.fc1.name}, where);
  }
  set_linear(mlp.down_proj, w.fc2, where, w.ls2);
}

}  // namespace pathvlm::models
