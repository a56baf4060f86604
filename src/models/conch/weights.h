// CONCH image towers in (models/conch/model.h), from safetensors of the state dicts their hub repositories hold as
// pickles (convert them with scripts/convert_to_safetensors.py; pathvlm never reads pickles):
//  - v1, MahmoodLab/CONCH's pytorch_model.bin: the whole open_clip CoCa (visual.trunk.*, visual.attn_pool_contrast.*
//    as nn.MultiheadAttention, visual.ln_contrast.*, visual.proj_contrast; the text tower and the caption pooler are
//    left out). Input 448 px, OpenAI's pixel mean/std (CONCH's create_model_from_pretrained sets them).
//  - v1.5, MahmoodLab/conchv1_5's pytorch_model_vision.bin: the image tower alone (trunk.*, attn_pool_contrast.* with
//    to_q / to_kv / to_out, ln_contrast.*). A 224-px model run at 448 px as TRIDENT's `conch_v15` runs it: its
//    position embeddings are resampled as the trunk does on every call (DINO's bicubic interpolation at a scale of
//    (28 + 0.1) / 14), once, when the weights load. ImageNet's pixel mean/std.
// Both: position embeddings stored for another grid are first resampled to the model's (timm's bilinear resampling,
// as both loaders do); the pooler has 8 heads (neither repository stores it: both code it).
#pragma once
#include <memory>
#include <string>

#include "models/conch/model.h"
#include "models/conch/text.h"
#include "models/vit/loading.h"

namespace pathvlm::models {

// CONCH's image tower (its pixel mean/std in model->trunk->config()) and which release it is.
struct Conch {
  ConchVision model{nullptr};
  std::string version;  // "v1", "v1.5"
};

// Sets `pooler` from an open_clip AttentionalPooler stored under `prefix` (CONCH v1's, TITAN's): query, ln_q, ln_k
// and attn, an nn.MultiheadAttention (one in_proj_weight, or q/k/v_proj_weight where the key width differs;
// in_proj_bias; out_proj). A shape that does not fit names the tensor and t.where().
void set_multihead_pooler(AttentionalPoolerImpl& pooler, CheckpointTensors& t, const std::string& prefix);

// Whether `path` (a .safetensors file or a directory holding model.safetensors) holds a CONCH image tower.
bool is_conch(const std::string& path);

// Errors name the file and the tensor.
Conch load_conch(const std::string& path);

// CONCH v1's text tower and temperature, from the same safetensors as its image tower (MahmoodLab/CONCH's
// pytorch_model.bin converted): text.* (the caption decoder and the image tower left out). Its heads are
// width / 64, as open_clip builds them (neither file stores the count). Errors name the file and the tensor.
struct ConchTextTower {
  ConchText model{nullptr};
  double logit_scale = 0;  // exp(logit_scale): what CONCH multiplies cosine similarities by
};
ConchTextTower load_conch_text(const std::string& path);

// CONCH's tokenizer (conch_byte_level_bpe_uncased.json, in conch/open_clip_custom/tokenizers of its repository):
// the file `vocab` when given, else `model_path`'s directory's tokenizer.json; an Error saying where to find it
// (and that --vocab names it) when neither is there.
std::unique_ptr<text::Tokenizer> open_conch_tokenizer(const std::string& model_path, const std::string& vocab);

}  // namespace pathvlm::models
