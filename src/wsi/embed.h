// Tile features with a frozen image encoder (a CLIP image tower, or a ViT tile encoder such as UNI): coords .h5 (from
// `pathvlm tile`, CLAM or TRIDENT) + slides -> per-slide features .h5 in TRIDENT's layout, packed `slides` shards
// with a manifest, and optionally per-tile token features (`tile_features` shards) for the instruction trainer.
//
//   EmbedRequest r;  r.coords = "tiles/";  r.out = "feats/";  r.encoder = "clip-vit-b16/";
//   auto outcomes = embed_slides(r, EmbedConfig{});
//   // feats/features/<slide>.h5   features [N,D], coords int64 [N,2] (+ the coords attributes)
//   // feats/shards/slides-00000.h5 ... + manifest.json        (schema slides/1)
//   // feats/tokens/<slide>.h5 + manifest.json                 (schema tile_features/1, with tokens: true)
//
// Reader threads read and preprocess the tiles of the current and next slides while the encoder runs on
// batches in order (CUDA with bf16 autocast when present). Resumable as `tile`: per-slide outputs are written
// to temp files and renamed; a slide whose features exist with the same settings is skipped; a failing slide
// is reported with its stage and reason while the others go on. Shards are repacked from the per-slide files
// at the end of every run, so they always list every finished slide in name order.
#pragma once
#include <array>
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "data/image.h"
#include "wsi/embed_config.h"
#include "wsi/slide_batch.h"

namespace pathvlm::wsi {

// What the encoder gives for a batch of pixels.
struct EncodedBatch {
  torch::Tensor features;  // [B,D]
  torch::Tensor tokens;    // float32 [B,T,W] when tokens are requested (the tower's output as computed), else undefined
};

// A frozen image encoder: input side, output size and the function (called from one thread only).
struct TileEncoder {
  int image_size = 224;
  int dim = 0;
  std::vector<int64_t> token_shape;  // [T,W] of the token features, empty when it gives none
  int token_layer = -2;              // the hidden state the tokens are, HF hidden_states indexing (-2 = penultimate)
  std::string name;  // stored as the `encoder` attribute
  std::string kind;  // for the start-up line: "CLIP image tower", "timm ViT, token pooling", ...
  std::array<double, 3> mean = data::kOpenAiMean, std = data::kOpenAiStd;  // the pixel normalisation it runs with
  data::Interpolation interpolation = data::Interpolation::bicubic;          // how tiles are resized to image_size
  // pixels: uint8 RGB [B,3,S,S] in host memory, normalised where the encoder runs (on a GPU after the upload: a
  // quarter of float32's bytes cross PCIe and the readers skip the arithmetic).
  std::function<EncodedBatch(const torch::Tensor& pixels, bool tokens)> encode;
};

// The encoder at `path` on `config.device` in `config.precision`, normalising pixels with config.image_mean /
// image_std where given:
//  - a timm ViT (models/vit/timm_weights.h: UNI, UNI2-h, Virchow, Prov-GigaPath, H-optimus as their hub directories
//    hold them) or a transformers one (models/vit/hf_weights.h: Phikon, Phikon-v2, Midnight): features = its
//    output pooled as config.pool says, normalised with its own mean/std (timm's pretrained_cfg, transformers'
//    preprocessor_config.json); tokens = its hidden state config.token_layer (class and register tokens first), what
//    `instruct.vision_tower` with this ViT selects from;
//  - CONCH v1 / v1.5 (models/conch/weights.h: their state dicts as safetensors): features = the attention-pooled,
//    unprojected embedding CLAM and TRIDENT write (512 / 768), with CONCH's pixel mean/std; tokens = its ViT trunk's
//    hidden state config.token_layer;
//  - CTransPath (models/swin/weights.h: its .pth's state dict as safetensors): features = its Swin's token mean
//    (768), ImageNet's pixel statistics; no tokens;
//  - otherwise a CLIP image tower (HF directory, checkpoint, export, open_clip safetensors, or a CLIP preset with
//    fixed random weights: models/clip/fixed_random.h): features = encode_image (projected),
//    tokens = image_tokens(config.token_layer).
TileEncoder load_tile_encoder(const std::string& path, const EmbedConfig& config);

struct EmbedRequest {
  std::string coords;   // a folder of coords .h5 (or one holding patches/)
  std::string out;
  std::string slides;   // optional folder or CSV to find slides by id; else each coords file's slide_path
  std::string reports;  // optional CSV (slide_id, report|text) packed into the shards' /reports
};

// One line for the log: the encoder, its kind, input size, features and pixel statistics.
std::string describe(const TileEncoder& encoder);

// Runs the whole embedding; returns one outcome per coords file in name order (`slides_out` receives the
// matching entries: id and slide path) and writes <out>/failures.csv.
std::vector<SlideOutcome> embed_slides(const EmbedRequest& request, const EmbedConfig& config,
                                       const TileEncoder& encoder, std::vector<SlideEntry>* slides_out = nullptr);

// Repacks every finished per-slide features file in <out>/features into <out>/shards (slides/1) with manifest.json.
void pack_slide_shards(const std::string& out_dir, int slides_per_shard, const std::string& reports_csv);

}  // namespace pathvlm::wsi
