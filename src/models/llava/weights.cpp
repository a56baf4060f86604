#include "models/llava/weights.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/text_file.h"
#include "io/safetensors.h"
#include "models/clip/hf_config.h"
#include "models/clip/weights.h"
#include "models/hf_dtype.h"
#include "models/llama/config.h"
#include "models/llama/weights.h"
#include "models/lora/apply.h"
#include "models/vit/hf_weights.h"
#include "text/bpe_tokenizer.h"
#include "text/sentencepiece_tokenizer.h"
#include "text/tokenizer.h"

namespace pathvlm::models {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kImageToken = "<image>";

// The LLaMA of the export: a vocabulary row for <image> (`image_id`: one more row when it follows the last) and a
// padding id.
LlamaConfig exported_text_config(const LlavaModelImpl& model, int64_t image_id, int64_t pad_id) {
  auto text = model.language_model->config();
  text.vocab_size = std::max(text.vocab_size, image_id + 1);
  if (text.pad_token_id < 0) text.pad_token_id = pad_id;
  return text;
}

// The vision_config of the tower: a CLIP's CLIPVisionConfig, a ViT's Dinov2Config.
json tower_config(const LlavaVisionTowerImpl& tower, torch::ScalarType dtype) {
  if (tower.vit) return json::parse(hf_dinov2_config_json(tower.vit->config(), dtype));
  return json::parse(hf_clip_config_json(tower.clip_config(), dtype)).at("vision_config");
}

json llava_config(const LlavaModelImpl& model, const LlamaConfig& text, int64_t image_id, torch::ScalarType dtype) {
  const auto& c = model.config();
  return {{"architectures", {"LlavaForConditionalGeneration"}},
          {"model_type", "llava"},
          {"vision_config", tower_config(*model.vision_tower, dtype)},
          {"text_config", json::parse(hf_llama_config_json(text, dtype))},
          {"image_token_index", image_id},
          {"image_seq_length", model.image_tokens()},
          {"projector_hidden_act", c.projector == "linear" ? "linear" : "gelu"},
          {"multimodal_projector_bias", true},
          {"vision_feature_layer", c.vision_feature_layer},
          {"vision_feature_select_strategy", c.vision_feature_select == "full" ? "full" : "default"},
          {"tie_word_embeddings", text.tie_word_embeddings},
          {"pad_token_id", text.pad_token_id},
          {"dtype", hf_dtype_name(dtype)},
          {"torch_dtype", hf_dtype_name(dtype)}};
}

// The padding id of the export: LLaVA pads LLaMA-2 and Mistral with <unk>; a tokenizer.json's own padding token
// where it has one (Qwen's <|endoftext|>), else its <unk> (a SentencePiece-style file), else its EOS (LLaMA-3 has no
// padding token).
int64_t export_pad_id(const text::Tokenizer& tok) {
  if (const auto* sp = dynamic_cast<const text::SentencePieceTokenizer*>(&tok)) return sp->unk_id();
  const auto& bpe = dynamic_cast<const text::BpeTokenizer&>(tok);
  return bpe.pad_id() >= 0 ? bpe.pad_id() : bpe.unk_id() >= 0 ? bpe.unk_id() : bpe.eos_id();
}

// The processor's settings of tokenizer_config.json: <image> an additional special token, `pad` the padding token,
// padding on the left (generation), LLaVA's processor class.
void add_llava_processor_settings(json& config, const std::string& pad, int64_t max_length) {
  config["pad_token"] = pad;
  auto special = config.value("additional_special_tokens", json::array());
  if (std::find(special.begin(), special.end(), kImageToken) == special.end()) special.push_back(kImageToken);
  config["additional_special_tokens"] = special;
  config["model_max_length"] = max_length;
  config["padding_side"] = "left";
  config["processor_class"] = "LlavaProcessor";
}

// <image> as a special added token of id `image_id` in `out`/tokenizer.json, where the tokenizers library reads it
// (the tokenizer of a LLaVA export has it already).
void add_image_to_tokenizer_json(const fs::path& out, int64_t image_id) {
  auto tokenizer = json::parse(read_text_file(out / "tokenizer.json"));
  auto& added = tokenizer["added_tokens"];
  const bool has_image = std::any_of(added.begin(), added.end(), [](const json& t) {
    return t.is_object() && t.value("content", "") == kImageToken;
  });
  if (has_image) return;
  json image = text::hf_added_token(kImageToken, /*special=*/true);
  image["id"] = image_id;
  added.push_back(image);
  write_text_file(out / "tokenizer.json", tokenizer.dump() + "\n");
}

// A tokenizer.json's files (BpeTokenizer::save_hf) with <image> added as a special token of id `image_id`, in
// tokenizer.json and in tokenizer_config.json's added_tokens_decoder (where transformers reads it).
void write_bpe_tokenizer(const text::Tokenizer& tok, const fs::path& out, int64_t image_id, int64_t max_length) {
  tok.save_hf(out.string());
  add_image_to_tokenizer_json(out, image_id);

  const auto config_file = out / "tokenizer_config.json";
  auto config = fs::exists(config_file) ? json::parse(read_text_file(config_file)) : json::object();
  config["added_tokens_decoder"][std::to_string(image_id)] = text::hf_added_token(kImageToken, /*special=*/true);
  add_llava_processor_settings(config, tok.id_to_piece(export_pad_id(tok)), max_length);
  write_text_file(config_file, config.dump(2) + "\n");
}

// The id the tokenizer files at `tokenizer_source` (a directory, or a file in one) already give <image>, as a
// LlavaForConditionalGeneration directory does (tokenizer_config.json's added_tokens_decoder, or added_tokens.json);
// -1 when they give it none.
int64_t existing_image_id(const std::string& tokenizer_source) {
  const fs::path source(tokenizer_source);
  const fs::path dir = fs::is_directory(source) ? source : source.parent_path();
  const auto config_file = dir / "tokenizer_config.json", added_file = dir / "added_tokens.json";
  try {
    if (fs::exists(config_file)) {
      const auto config = json::parse(read_text_file(config_file));
      if (config.contains("added_tokens_decoder") && config["added_tokens_decoder"].is_object())
        for (const auto& [id, token] : config["added_tokens_decoder"].items())
          if (token.is_object() && token.value("content", "") == kImageToken) return std::stoll(id);
    }
    if (fs::exists(added_file)) {
      const auto added = json::parse(read_text_file(added_file));
      if (added.is_object() && added.contains(kImageToken) && added[kImageToken].is_number_integer())
        return added[kImageToken].get<int64_t>();
    }
  } catch (const std::exception& e) {
    throw Error(str("tokenizer files in '", dir.string(), "': ", e.what()));
  }
  return -1;
}

// LlamaTokenizer's files (SentencePieceTokenizer::save_hf, with its added tokens) plus <image> as a special added
// token with id `image_id` and the unknown token as padding.
void write_sentencepiece_tokenizer(const text::SentencePieceTokenizer& tok, const fs::path& out, int64_t image_id,
                                   int64_t max_length) {
  tok.save_hf(out.string());
  const auto unk = tok.id_to_piece(tok.unk_id());
  auto config = json::parse(read_text_file(out / "tokenizer_config.json"));
  add_llava_processor_settings(config, unk, max_length);
  config["added_tokens_decoder"][std::to_string(image_id)] = text::hf_added_token(kImageToken, /*special=*/true);
  write_text_file(out / "tokenizer_config.json", config.dump(2) + "\n");

  auto special = json::parse(read_text_file(out / "special_tokens_map.json"));
  special["pad_token"] = unk;
  special["additional_special_tokens"] = {kImageToken};
  write_text_file(out / "special_tokens_map.json", special.dump(2) + "\n");
  write_text_file(out / "added_tokens.json", json{{kImageToken, image_id}}.dump(2) + "\n");
  if (fs::exists(out / "tokenizer.json")) add_image_to_tokenizer_json(out, image_id);
}

void check_no_lora(LlavaModel& model, const std::string& what) {
  for (const auto& item : model->named_parameters()) {
    PATHVLM_CHECK(!is_lora_parameter(item.key()), what, ": the model carries LoRA adapters ('", item.key(),
                  "'); merge them first (models::merge_lora)");
  }
}

// LLaVA's mm_projector names of our projector's tensors (suffix after "mm_projector.") and back.
std::map<std::string, std::string> projector_names(const LlavaProjectorImpl& projector) {
  if (projector.type() == "linear") return {{"weight", "linear_1.weight"}, {"bias", "linear_1.bias"}};
  return {{"0.weight", "linear_1.weight"},
          {"0.bias", "linear_1.bias"},
          {"2.weight", "linear_2.weight"},
          {"2.bias", "linear_2.bias"}};
}

}  // namespace

void export_hf_llava(LlavaModel& model, const std::string& out_dir, torch::ScalarType dtype, uint64_t max_shard_bytes,
                     const std::string& tokenizer_source) {
  const std::string where = str("llava export '", out_dir, "'");
  PATHVLM_CHECK(model->vision_tower, where, ": the model has no image tower (its images are slide-encoder features), "
                "so it is not a LlavaForConditionalGeneration");
  check_no_lora(model, where);
  const auto tok_ptr = text::open_tokenizer(tokenizer_source);
  const auto& tok = *tok_ptr;
  const auto* sentencepiece = dynamic_cast<const text::SentencePieceTokenizer*>(&tok);
  const auto vocab = model->language_model->config().vocab_size;
  // A model from a LLaVA directory keeps the <image> its tokenizer files give, and its row. Otherwise both
  // tokenizers give an added token the id after their last one, so that is <image>'s id: LlamaTokenizer's must be
  // the next row; a tokenizer.json's may be a row the embedding already has (Qwen pads it beyond the tokenizer's
  // ids), which <image> then takes.
  const int64_t existing = existing_image_id(tokenizer_source);
  const int64_t image_id = existing >= 0 ? existing : tok.vocab_size();
  if (existing >= 0) {
    const bool own_piece = existing < tok.vocab_size() && tok.id_to_piece(existing) != kImageToken;
    PATHVLM_CHECK(existing < vocab && !own_piece, where, ": the tokenizer files of '", tokenizer_source,
                  "' give <image> the id ", existing, ", which is ",
                  own_piece ? str("the tokenizer's piece '", tok.id_to_piece(existing), "'")
                            : str("beyond the language model's ", vocab, " embedding rows"));
  } else {
    PATHVLM_CHECK(sentencepiece ? image_id == vocab : image_id <= vocab, where, ": tokenizer '", tok.path(), "' has ",
                  image_id, " ids but the language model has ", vocab, " embedding rows (<image> becomes id ",
                  image_id, ")");
  }
  const fs::path out(out_dir);
  std::error_code ec;
  fs::create_directories(out, ec);
  PATHVLM_CHECK(!ec, where, ": cannot create the directory: ", ec.message());

  // The <image> row: the mean of the tokenizer's rows (in fp32), for the input embedding and the head alike.
  const auto with_image_row = [&](const torch::Tensor& w) {
    auto wide = w.detach().to(torch::kCPU, torch::kFloat);
    const auto mean = wide.narrow(0, 0, image_id).mean(0, /*keepdim=*/true);
    if (image_id == wide.size(0)) return torch::cat({wide, mean}, 0).to(dtype);
    wide = wide.clone();
    wide.narrow(0, image_id, 1).copy_(mean);
    return wide.to(dtype);
  };
  safetensors::NamedTensors tensors;
  auto vit = model->vision_tower->vit;
  if (vit) tensors = hf_dinov2_tensors(*vit, "vision_tower.", dtype);
  for (const auto& item : model->named_parameters()) {
    const auto& name = item.key();
    if (vit && name.rfind("vision_tower.", 0) == 0) continue;  // written in Dinov2Model's names above
    const bool vocabulary = existing < 0 && (name == "language_model.model.embed_tokens.weight" ||
                                             name == "language_model.lm_head.weight");
    tensors.emplace_back(name, vocabulary ? with_image_row(item.value())
                                          : item.value().detach().to(torch::kCPU, dtype).contiguous());
  }
  const auto& projector = *model->multi_modal_projector;
  if (projector.type() == "linear") {
    // HF's projector is always linear_2(act(linear_1(x))): identity activation and matrix, zero bias.
    const auto h = projector.text_hidden();
    tensors.emplace_back("multi_modal_projector.linear_2.weight", torch::eye(h, torch::dtype(dtype)));
    tensors.emplace_back("multi_modal_projector.linear_2.bias", torch::zeros({h}, torch::dtype(dtype)));
  }
  safetensors::save_sharded(out_dir, tensors, max_shard_bytes, {{"format", "pt"}});
  tensors.clear();

  const auto text = exported_text_config(*model, image_id, export_pad_id(tok));
  write_text_file(out / "config.json", llava_config(*model, text, image_id, dtype).dump(2) + "\n");
  write_text_file(out / "generation_config.json", hf_llama_generation_config_json(text));
  if (sentencepiece) {
    write_sentencepiece_tokenizer(*sentencepiece, out, image_id, text.max_position_embeddings);
  } else {
    write_bpe_tokenizer(tok, out, image_id, text.max_position_embeddings);
  }

  const auto& tower = model->vision_tower->shape();
  auto preprocessor =
      json::parse(hf_image_processor_json(tower.image_size, tower.mean, tower.std, tower.interpolation));
  preprocessor["processor_class"] = "LlavaProcessor";
  if (model->config().pads_to_square()) {
    // CLIPImageProcessor has no padding; LlavaImageProcessor's do_pad is LLaVA's expand2square (mean-colour fill).
    preprocessor["image_processor_type"] = "LlavaImageProcessor";
    preprocessor["do_pad"] = true;
  }
  write_text_file(out / "preprocessor_config.json", preprocessor.dump(2) + "\n");
  const json processor = {
      {"image_token", kImageToken},
      // The processor's count is (S/p)^2 + this, minus one for "default": the class token, and a ViT's registers.
      {"num_additional_image_tokens", tower.prefix_tokens},
      {"patch_size", tower.patch_size},
      {"vision_feature_select_strategy", model->config().vision_feature_select == "full" ? "full" : "default"}};
  write_text_file(out / "processor_config.json", processor.dump(2) + "\n");
}

void export_projector(LlavaModel& model, const std::string& file, torch::ScalarType dtype) {
  const auto& projector = *model->multi_modal_projector;
  const auto params = projector.named_parameters();
  safetensors::NamedTensors tensors;
  for (const auto& [llava_name, ours] : projector_names(projector)) {
    tensors.emplace_back("model.mm_projector." + llava_name, params[ours].detach().to(torch::kCPU, dtype).contiguous());
  }
  safetensors::save(file, tensors, {{"format", "pt"}});
}

void load_projector(LlavaModel& model, const std::string& file) {
  const auto f = safetensors::File::open(file);  // refuses pickles with the conversion command
  std::map<std::string, std::string> found;  // suffix after "mm_projector." -> full name
  for (const auto& info : f.tensors()) {
    const auto at = info.name.find("mm_projector.");
    if (at != std::string::npos) found[info.name.substr(at + 13)] = info.name;
  }
  PATHVLM_CHECK(!found.empty(), "projector '", file, "': no mm_projector tensors (expected LLaVA's ",
                "model.mm_projector.weight or model.mm_projector.0.weight ...)");
  auto& projector = *model->multi_modal_projector;
  const auto wanted = projector_names(projector);
  const char* other = projector.type() == "linear" ? "mlp2x_gelu" : "linear";
  for (const auto& [suffix, name] : found) {
    PATHVLM_CHECK(wanted.count(suffix), "projector '", file, "': tensor '", name, "' does not belong to a ",
                  projector.type(), " projector (is it a ", other, " one? the model's projector is ", projector.type(),
                  ")");
  }
  auto params = projector.named_parameters();
  torch::NoGradGuard no_grad;
  for (const auto& [suffix, ours] : wanted) {
    PATHVLM_CHECK(found.count(suffix), "projector '", file, "': lacks 'mm_projector.", suffix, "' of a ",
                  projector.type(), " projector");
    const auto tensor = f.get(found.at(suffix));
    auto& param = params[ours];
    PATHVLM_CHECK(tensor.sizes() == param.sizes(), "projector '", file, "': tensor '", found.at(suffix),
                  "' has shape ", tensor.sizes(), ", the model's ", ours, " is ", param.sizes(), " (CLIP width ",
                  projector.vision_hidden(), " -> LLaMA hidden ", projector.text_hidden(), ")");
    safetensors::check_convertible(tensor.scalar_type(), param.scalar_type(), str("projector '", file, "'"),
                                   found.at(suffix));
    param.copy_(tensor.to(param.device(), param.scalar_type()));
  }
}

}  // namespace pathvlm::models
