// Random CONCH image towers for the tests (models/conch, `pathvlm embed` with CONCH): safetensors in the names of
// the two releases' state dicts (v1: the open_clip CoCa with its text tower; v1.5: the tile encoder alone), small
// but with both releases' 448-px input, and CONCH's features from the numpy reference (conch_reference.py).
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>
#include <torch/torch.h>

#include "core/utf8.h"
#include "io/safetensors.h"
#include "models/vit/timm_vit_util.h"
#include "text/byte_level.h"

namespace pathvlm::testing {

struct ConchLayout {
  std::string name;
  std::string version = "v1";  // "v1" or "v1.5"
  int stored_grid = 0;         // side of the stored position grid; 0: the model's (v1: 448 / patch; v1.5: 224 / patch)
  std::string extra_tensor{};  // a tensor no CONCH has, when not empty
  bool text_tower = false;     // v1: a whole text tower (models::load_conch_text), else two of its tensors
};

// Trunk width 192 (3 heads, the usual count for it: no CONCH file gives the heads), patch 32, 2 blocks; pooler 64
// wide (8 heads).
inline constexpr int kConchWidth = 192, kConchPatch = 32, kConchDepth = 2, kConchHidden = 96, kConchPooled = 64;
inline constexpr int kConchInput = 448;
inline constexpr int kConchProjection = 24;  // v1's contrastive embedding: narrower than the pooled features, as no
                                             // transposed read could pass
// The text tower: width 128 (2 heads of 64, as open_clip builds them), 2 blocks with a 96-wide MLP, 260 tokens (those
// of write_conch_tokenizer), 12 positions (11 token rows and the class token). CONCH's: 768, 12, 3072, 32007, 128.
inline constexpr int kConchTextWidth = 128, kConchTextDepth = 2, kConchTextHidden = 96, kConchVocab = 260,
                     kConchPositions = 12;
inline constexpr double kConchLogitScale = 4.6;  // log of the temperature CONCH multiplies similarities by

// A tokenizer.json in the form of CONCH's conch_byte_level_bpe_uncased.json, small: <pad> 0, <start_of_text> 1,
// <end_of_text> 2; byte b's character at 3 + b; one merge, "Ġ t" -> 259. Normalised NFD, accents stripped, lower case;
// ByteLevel with a prefix space.
inline void write_conch_tokenizer(const std::filesystem::path& file) {
  nlohmann::json vocab = nlohmann::json::object(), added = nlohmann::json::array();
  const char* specials[] = {"<pad>", "<start_of_text>", "<end_of_text>"};
  for (int id = 0; id < 3; ++id) {
    vocab[specials[id]] = id;
    added.push_back({{"id", id}, {"content", specials[id]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  for (int b = 0; b < 256; ++b) {
    std::string piece;
    append_utf8(piece, text::byte_stand_ins()[b]);
    vocab[piece] = 3 + b;
  }
  vocab["\u0120t"] = 259;
  const nlohmann::json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true},
                                     {"use_regex", true}};
  const nlohmann::json j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers", {{{"type", "NFD"}}, {{"type", "StripAccents"}}, {{"type", "Lowercase"}}}}}},
      {"pre_tokenizer", byte_level},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         {{{"SpecialToken", {{"id", "<start_of_text>"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"SpecialToken", {{"id", "<end_of_text>"}, {"type_id", 0}}}}}},
        {"pair", {{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens",
         {{"<start_of_text>", {{"id", "<start_of_text>"}, {"ids", {1}}, {"tokens", {"<start_of_text>"}}}},
          {"<end_of_text>", {{"id", "<end_of_text>"}, {"ids", {2}}, {"tokens", {"<end_of_text>"}}}}}}}},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"vocab", vocab}, {"merges", {"\u0120 t"}}}}};
  std::ofstream(file) << j.dump(2);
}

inline std::string write_conch(const ConchLayout& layout) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("pathvlm_conch_" + layout.name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  torch::manual_seed(std::hash<std::string>{}(layout.name) % 1000);
  const bool v1 = layout.version == "v1";
  const std::string visual = v1 ? "visual." : "", trunk = visual + "trunk.", pooler = visual + "attn_pool_contrast.";
  safetensors::NamedTensors t;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, double scale = 0.2, double offset = 0.0) {
    t.emplace_back(name, torch::randn(shape) * scale + offset);
  };
  const int W = kConchWidth, D = kConchPooled;
  const int grid = layout.stored_grid ? layout.stored_grid : (v1 ? kConchInput : 224) / kConchPatch;
  add(trunk + "patch_embed.proj.weight", {W, 3, kConchPatch, kConchPatch}, 0.02);
  add(trunk + "patch_embed.proj.bias", {W});
  add(trunk + "cls_token", {1, 1, W}, 1.0);
  add(trunk + "pos_embed", {1, 1 + grid * grid, W}, 0.5);
  for (int i = 0; i < kConchDepth; ++i) {
    const std::string b = trunk + "blocks." + std::to_string(i) + ".";
    for (const char* norm : {"norm1", "norm2"}) {
      add(b + norm + ".weight", {W}, 0.1, 1.0);
      add(b + norm + ".bias", {W}, 0.1);
    }
    add(b + "attn.qkv.weight", {3 * W, W}, 0.1);
    add(b + "attn.qkv.bias", {3 * W});
    add(b + "attn.proj.weight", {W, W}, 0.1);
    add(b + "attn.proj.bias", {W});
    add(b + "mlp.fc1.weight", {kConchHidden, W}, 0.1);
    add(b + "mlp.fc1.bias", {kConchHidden});
    add(b + "mlp.fc2.weight", {W, kConchHidden}, 0.1);
    add(b + "mlp.fc2.bias", {W});
    if (!v1) {  // v1.5's trunk: vit_large(init_values=1.0)
      add(b + "ls1.gamma", {W}, 0.3, 1.0);
      add(b + "ls2.gamma", {W}, 0.3, 1.0);
    }
  }
  add(trunk + "norm.weight", {W}, 0.1, 1.0);
  add(trunk + "norm.bias", {W}, 0.1);
  add(pooler + "query", {1, D}, 1.0);
  add(pooler + "ln_q.weight", {D}, 0.1, 1.0);
  add(pooler + "ln_q.bias", {D}, 0.1);
  add(pooler + "ln_k.weight", {W}, 0.1, 1.0);
  add(pooler + "ln_k.bias", {W}, 0.1);
  if (v1) {
    add(pooler + "attn.q_proj_weight", {D, D}, 0.3);
    add(pooler + "attn.k_proj_weight", {D, W}, 0.3);
    add(pooler + "attn.v_proj_weight", {D, W}, 0.3);
    add(pooler + "attn.in_proj_bias", {3 * D});
    add(pooler + "attn.out_proj.weight", {D, D}, 0.2);
    add(pooler + "attn.out_proj.bias", {D});
    // What the tile encoder leaves out: the contrastive projection, the caption pooler, the text tower, the scale.
    add("visual.proj_contrast", {D, kConchProjection});
    add("visual.attn_pool_caption.query", {4, W});
    add("visual.ln_caption.weight", {W});
    if (layout.text_tower) {
      const int T = kConchTextWidth;
      add("text.token_embedding.weight", {kConchVocab, T}, 0.5);
      add("text.positional_embedding", {kConchPositions, T}, 0.3);
      add("text.cls_emb", {T}, 0.5);
      for (int i = 0; i < kConchTextDepth; ++i) {
        const std::string b = "text.transformer.resblocks." + std::to_string(i) + ".";
        add(b + "ln_1.weight", {T}, 0.1, 1.0);
        add(b + "ln_1.bias", {T}, 0.1);
        add(b + "attn.in_proj_weight", {3 * T, T}, 0.15);
        add(b + "attn.in_proj_bias", {3 * T}, 0.1);
        add(b + "attn.out_proj.weight", {T, T}, 0.1);
        add(b + "attn.out_proj.bias", {T}, 0.1);
        add(b + "ln_2.weight", {T}, 0.1, 1.0);
        add(b + "ln_2.bias", {T}, 0.1);
        add(b + "mlp.c_fc.weight", {kConchTextHidden, T}, 0.1);
        add(b + "mlp.c_fc.bias", {kConchTextHidden}, 0.1);
        add(b + "mlp.c_proj.weight", {T, kConchTextHidden}, 0.1);
        add(b + "mlp.c_proj.bias", {T}, 0.1);
      }
      add("text.ln_final.weight", {T}, 0.1, 1.0);
      add("text.ln_final.bias", {T}, 0.1);
      add("text.text_projection", {T, kConchProjection}, 0.2);
      add("text_decoder.resblocks.0.ln_1.weight", {T});  // the caption decoder, left out
    } else {
      add("text.token_embedding.weight", {10, W});
      add("text.cls_emb", {W});
    }
    t.emplace_back("logit_scale", torch::full({}, kConchLogitScale));
  } else {
    add(pooler + "to_q.weight", {D, D}, 0.3);
    add(pooler + "to_kv.weight", {2 * D, W}, 0.3);
    add(pooler + "to_out.weight", {D, D}, 0.2);
  }
  add(visual + "ln_contrast.weight", {D}, 0.1, 1.0);
  add(visual + "ln_contrast.bias", {D}, 0.1);
  if (!layout.extra_tensor.empty()) add(layout.extra_tensor, {2});
  safetensors::save((dir / "model.safetensors").string(), t);
  return dir.string();
}

// `projected`: v1's encode_image(proj_contrast=True, normalize=False).
inline torch::Tensor conch_reference_features(const std::string& dir, const torch::Tensor& pixels,
                                              bool projected = false) {
  return reference_features(dir, pixels, "../conch/conch_reference.py", projected ? "proj" : "");
}

}  // namespace pathvlm::testing
