// Settings of `pathvlm embed`: tile features with a frozen encoder (of slides' tiles or of tiles shards).
#pragma once
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "core/pixel_statistics.h"

namespace pathvlm {

struct EmbedConfig {
  int batch_size = 64;
  int readers = 4;
  int prefetch_batches = 8;
  std::string device = "auto";
  std::string precision = "auto";
  std::string features_dtype = "float32";
  bool tokens = false;
  int token_layer = -2;
  std::string tokens_dtype = "float16";
  std::string pool = "auto";
  std::vector<double> image_mean, image_std;
  std::string interpolation = "auto";
  int slides_per_shard = 256;
  int tiles_per_shard = 10000;

  template <class V>
  void visit(V& v) {
    v.field("batch_size", batch_size, "tiles per forward pass", cfg::Min(1));
    v.field("readers", readers, "threads reading and preprocessing tiles while the encoder runs", cfg::Min(1));
    v.field("prefetch_batches", prefetch_batches, "batches read ahead of the encoder (bounds memory)", cfg::Min(1));
    v.field("device", device, "auto (CUDA when present), cpu, cuda or cuda:N");
    v.field("precision", precision, "encoder precision: auto (bf16 autocast on CUDA, fp32 on CPU), bf16, fp16, fp32",
            cfg::OneOf{"auto", "bf16", "fp16", "fp32"});
    v.field("features_dtype", features_dtype, "dtype of the stored features", cfg::OneOf{"float32", "float16"});
    v.field("tokens", tokens, "also write per-tile token features (tile_features shards) for the instruction trainer "
            "(CLIP and ViT encoders)");
    v.field("token_layer", token_layer,
            "hidden state stored as tokens: -1 last block, -2 penultimate (LLaVA's mm_vision_select_layer)");
    v.field("tokens_dtype", tokens_dtype,
            "dtype of the stored token features; float32 keeps the encoder's fp32 output exactly",
            cfg::OneOf{"float32", "float16"});
    v.field("pool", pool,
            "ViT features: auto (the encoder's own: timm's global_pool, the class token for transformers ViTs, CONCH's "
            "attention pooling), token, avg (patch mean), token+avg (class token and patch mean: Virchow's and "
            "Midnight's cards) or, for CONCH v1, proj (its attention pooling projected into the space its text tower "
            "shares: encode_image(proj_contrast=True, normalize=False))",
            cfg::OneOf{"auto", "token", "avg", "token+avg", "proj"});
    v.field("image_mean", image_mean,
            "pixel mean [r,g,b] instead of the encoder's own (e.g. [0.5,0.5,0.5], Midnight's card)");
    v.field("image_std", image_std, "pixel std [r,g,b] instead of the encoder's own");
    v.field("interpolation", interpolation,
            "how tiles are resized to the encoder's input (PIL's filters, as torchvision's Resize applies them): auto "
            "(the encoder's own: timm's pretrained_cfg, transformers' preprocessor_config, bicubic for CLIP and CONCH "
            "v1, bilinear for CONCH v1.5 and CTransPath), bicubic or bilinear (e.g. TRIDENT's uni_v1, hoptimus0, "
            "phikon)",
            cfg::OneOf{"auto", "bicubic", "bilinear"});
    v.field("slides_per_shard", slides_per_shard, "slides per packed `slides` shard", cfg::Min(1));
    v.field("tiles_per_shard", tiles_per_shard, "records per tile_features shard of `embed --tiles`", cfg::Min(1));
  }

  void validate(const std::string& where) const {
    check_pixel_statistics(image_mean, image_std, "image_mean", "image_std", where);
  }
};

}  // namespace pathvlm
