// CLIP weights in and out: Hugging Face CLIP directories, open_clip state dicts, our run checkpoints and
// exports in; HF-loadable export directories out. safetensors only (no pickles).
//
//   auto model = load_clip("openai-clip-vit-base-patch16/");          // HF dir: config.json + safetensors
//   auto model = load_clip("pathclip-base.safetensors");               // open_clip state dict (name map)
//   auto model = load_clip("runs/demo/checkpoints/step_00000200");     // our checkpoint (HF names)
//   export_hf_clip(model, model->config(), "out/");   // transformers.CLIPModel.from_pretrained("out/") loads it
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "models/clip/hf_config.h"
#include "models/clip/model.h"

namespace pathvlm::models {

struct ClipLoadOptions {
  // Activation when the source does not say (open_clip state dicts without open_clip_config.json, bare
  // HF-named state dicts): empty = quick_gelu, what OpenAI-initialised models (PathCLIP, PLIP) need.
  std::string hidden_act;
};

// Loads a CLIP from any of:
//  - a Hugging Face CLIP directory: config.json + model.safetensors or model.safetensors.index.json shards
//    (also our export directories);
//  - a run checkpoint step directory (model.safetensors with HF names; sizes inferred from the tensors,
//    hidden_act from the run's config.yaml two levels up), or a run directory (its checkpoints/latest);
//  - a .safetensors file: open_clip names (visual.conv1.weight, ...; open_clip_config.json beside it is
//    read when present) or HF names (sizes inferred from the tensors).
ClipModel load_clip(const std::string& path, const ClipLoadOptions& options = {});

// The image tower of a LLaVA (models/llava/vision_tower.h): whatever load_clip reads, and also the directories that
// hold an image tower alone: a transformers CLIPVisionModel (model_type clip_vision_model, vision_model.*) and a
// LlavaForConditionalGeneration (its vision_config and vision tower, in either layout of models/llava/hf_layout.h).
// From those, only vision_model is real: the text tower and the projections are small zero placeholders.
ClipModel load_clip_image_tower(const std::string& path, const ClipLoadOptions& options = {});

// The CLIP tokenizer that goes with the weights at `path`, for ClipTokenizer: an HF directory that has vocab.json
// and merges.txt, or the `clip.vocab` of a run's (or checkpoint's) config when that file is there (a relative path
// counts from the current directory, as it did for the run started from it); "" when none is known.
std::string clip_vocab_of(const std::string& path);

// Infers the sizes from the tensors of a state dict in HF names or open_clip names (activation and
// LayerNorm eps are not in the tensors: taken from `base`). `where` names the source in errors.
ClipModelConfig infer_clip_config(const std::function<bool(const std::string&)>& has,
                                  const std::function<std::vector<int64_t>(const std::string&)>& shape,
                                  const ClipModelConfig& base, const std::string& where);

// Copies a state dict into `model`: `get(name)` returns the tensor of an HF-named parameter (the open_clip
// map is applied by the caller's `get`). Every parameter must be present with its exact shape; errors
// name `where` and the tensor.
void load_clip_state(ClipModel& model, const std::function<torch::Tensor(const std::string&)>& get,
                     const std::string& where);

// open_clip state dict -> HF-named tensors: splits packed in_proj qkv, transposes proj matrices,
// renames class_embedding / positional_embedding / ln_pre / ln_post / ln_final / token_embedding.
// Tensors are taken through `get(open_clip_name)`; the result holds every HF parameter name.
std::vector<std::pair<std::string, torch::Tensor>> open_clip_to_hf(
    const ClipModelConfig& config, const std::function<torch::Tensor(const std::string&)>& get);
// The inverse map (HF-named parameters of `model` -> open_clip names), used by tests and interop.
std::vector<std::pair<std::string, torch::Tensor>> hf_to_open_clip(ClipModel& model);

// The text position table [L,W] with `context_length` rows: the first rows when shorter; stretched by linear
// interpolation when longer (CLIP's 77 positions for a text tower that reads longer reports).
torch::Tensor resize_text_positions(const torch::Tensor& table, int64_t context_length);

// Writes `out_dir`/config.json, model.safetensors (`dtype`, HF names; only CLIPModel's parameters, so a
// task's extra parameters on the module such as SigLIP's logit_bias are left out) and preprocessor_config.json
// (CLIPImageProcessor: shortest-edge resize, center crop, OpenAI mean/std). The tokenizer files are
// ClipTokenizer::save_hf's (`pathvlm export --vocab` writes both).
void export_hf_clip(ClipModel& model, const ClipModelConfig& config, const std::string& out_dir,
                    torch::ScalarType dtype = torch::kFloat32);

}  // namespace pathvlm::models
