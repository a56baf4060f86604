// What the clip task evaluates (evaluate_clip): two towers into one embedding space, with the evaluation transform
// their images need. Either the task's own CLIP (a run, an export, HF CLIP or open_clip weights: models/clip) or
// CONCH v1 (MahmoodLab/CONCH converted to safetensors: models/conch), so a trained PathCLIP and CONCH are scored by
// the same command on the same shards:
//
//   pathvlm eval --model CONCH/ --zeroshot crc100k/ --classes crc100k_prompts_all_per_class.json --vocab ...
#pragma once
#include <torch/torch.h>

#include <array>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/image.h"
#include "models/clip/model.h"
#include "text/clip_tokenizer.h"
#include "train/clip/config.h"

namespace pathvlm::train {

struct ImageTextEncoder {
  std::string description;                     // the evaluation's start-up line
  std::shared_ptr<torch::nn::Module> modules;  // every weight of both towers (Task::model())
  int64_t embed_dim = 0;
  double logit_scale = 100;  // zero-shot probabilities: softmax(logit_scale x cosine); open_clip's 100, CONCH's own
  // The evaluation transform: shortest side to image_size with `interpolation`, center crop, then mean/std.
  int image_size = 224;
  std::array<double, 3> mean{}, std{};
  data::Interpolation interpolation = data::Interpolation::bicubic;
  // Normalised pixels [B,3,S,S] on the device -> [B,D]; texts -> [n,D] on the device. Projected, not normalised.
  std::function<torch::Tensor(const torch::Tensor& pixels)> images;
  std::function<torch::Tensor(const std::vector<std::string>& texts)> texts;
};

// A CLIP with its tokenizer; pixel statistics from clip.data, the input size from the model (train/clip/task.cpp).
ImageTextEncoder clip_encoder(models::ClipModel model, std::shared_ptr<const text::ClipTokenizer> tokenizer,
                              const ClipTaskConfig& cfg, torch::Device device);

// CONCH v1 at `path` on `device`: encode_image(proj_contrast=True) and encode_text, CONCH's eval transform (448 px,
// bicubic, OpenAI's statistics). Its tokenizer file is `vocab`, else the model directory's tokenizer.json.
ImageTextEncoder conch_encoder(const std::string& path, const std::string& vocab, torch::Device device);

}  // namespace pathvlm::train
