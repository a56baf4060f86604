// What the timm and the transformers ViT loaders (models/vit/timm_weights.h, hf_weights.h) share once each knows its
// tensor names: building the model without drawing, taking a checkpoint's tensors by name (refusing the ones no
// part of the model took), and setting one block's weights into the shared TransformerBlock, LayerScale folded into
// the projection that ends its branch and a packed SwiGLU (fc1 holding the gate, then the value) split.
//
//   CheckpointTensors t(ckpt, "timm ViT 'UNI'");
//   VitBlockWeights w;  w.norm1 = t.linear("blocks.0.norm1");  ...
//   set_vit_block(*vit->blocks[0]->as<TransformerBlockImpl>(), vit->config(), w, t.where());
//   t.refuse_untaken([](const std::string& name) { return name.rfind("head.", 0) == 0; }, "timm ViT");
#pragma once
#include <torch/torch.h>

#include <functional>
#include <set>
#include <string>

#include "io/safetensors.h"
#include "models/layers/transformer_block.h"
#include "models/vit/config.h"
#include "models/vit/model.h"

namespace pathvlm::models {

// A weight and its bias (undefined: none, taken as zeros) under the name errors give.
struct NamedLinear {
  torch::Tensor weight, bias;
  std::string name;
};

// A checkpoint's tensors as float32 by name, remembering which were taken.
class CheckpointTensors {
 public:
  CheckpointTensors(const safetensors::Checkpoint& checkpoint, std::string where)
      : checkpoint_(checkpoint), where_(std::move(where)) {}
  bool contains(const std::string& name) const { return checkpoint_.contains(name); }
  torch::Tensor get(const std::string& name);     // an error naming it when absent
  torch::Tensor get_if(const std::string& name);  // undefined when absent
  NamedLinear linear(const std::string& name);    // name.weight and, when present, name.bias
  void copy(torch::Tensor& target, const std::string& name);
  // An error naming the first tensor neither taken nor `dropped`, with `what_is_refused`.
  void refuse_untaken(const std::function<bool(const std::string&)>& dropped, const std::string& what_is_refused) const;
  const std::string& where() const { return where_; }

 private:
  const safetensors::Checkpoint& checkpoint_;
  std::string where_;
  std::set<std::string> taken_;
};

struct VitBlockWeights {
  NamedLinear norm1, q, k, v, out, norm2;
  // gelu MLP: fc1 -> GELU -> fc2. swiglu: gate and up, or fc1 packing both (gate first); then fc2.
  NamedLinear fc1, gate, up, fc2;
  torch::Tensor ls1, ls2;  // LayerScale of the attention and MLP branches, undefined when the model has none
};

// Patch position embeddings [1, grid², W] resampled as `how` says (torch's interpolate of the [1, W, grid, grid]
// image, in float32) -> [1, side², W]: transformers' DINOv2 resampling, timm's, DINO's.
torch::Tensor resample_patch_positions(const torch::Tensor& patch_positions, int grid,
                                       const torch::nn::functional::InterpolateFuncOptions& how);

// Copies `name`.weight and `name`.bias into `norm`.
void set_layer_norm(torch::nn::LayerNorm& norm, CheckpointTensors& t, const std::string& name);

// Whether `path` is a .safetensors file or a directory holding model.safetensors (or its index): where a loader may
// look at tensor names to tell whose weights they are.
bool holds_safetensors(const std::string& path);

// The shapes of `checkpoint`'s tensors by name, for the config readers (models/vit/config.h); `checkpoint` must
// outlive the function.
TensorShapeOf shapes_in(const safetensors::Checkpoint& checkpoint);

// The shape `stored` gives `name`, which must be there with `dims` dimensions each in 1..`most` (bounded before
// anything is allocated from it); an Error naming it and `where` otherwise.
std::vector<int64_t> bounded_shape(const TensorShapeOf& stored, const std::string& name, size_t dims, int64_t most,
                                   const std::string& where);

// A Vit for `config` whose every value the loader then sets: nothing drawn, the caller's CPU random stream left where
// it was.
Vit unset_vit(const VitConfig& config);

// Sets w.q, w.k, w.v from one projection packing them ([3 * width, width], timm's attn.qkv, nn.MultiheadAttention's
// in_proj); any other shape is an error naming it and `where`.
void split_packed_qkv(VitBlockWeights& w, const NamedLinear& qkv, int64_t width, const std::string& where);

// Copies `w` into `block` (built for `config`); a shape that does not fit names the tensor and `where`.
void set_vit_block(TransformerBlockImpl& block, const VitConfig& config, const VitBlockWeights& w,
                   const std::string& where);

// Copies `value` into `target`, naming `name` and `where` when it is missing or the shapes differ.
void set_vit_tensor(torch::Tensor& target, const torch::Tensor& value, const std::string& name,
                    const std::string& where);

}  // namespace pathvlm::models
