// LLaVA exports: the full key set and shapes of a tiny model's export, config.json / processor / tokenizer files, the
// single-FC form computing the same projection, shards and dtypes, refusals, the mm_projector file round trip, and
// (with PATHVLM_LLAVA_EXPORT_CHECK_DIR) the inputs of scripts/gpu/check_llava_export.py.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/instruct_images.h"
#include "io/safetensors.h"
#include "llava_test_util.h"
#include "models/clip/weights.h"
#include "models/llama/weights.h"
#include "models/llava/checkpoint.h"
#include "models/llava/weights.h"
#include "models/lora/apply.h"
#include "models/vit/hf_weights.h"
#include "models/vit/timm_vit_util.h"
#include "models/vit/timm_weights.h"
#include "test_util.h"
#include "text/peers_util.h"
#include "text/sentencepiece_tokenizer.h"
#include "text/tokenizer.h"

using namespace pathvlm;
using nlohmann::json;
using pathvlm::testing::error_of;
using pathvlm::testing::TempDir;
using pathvlm::testing::tiny_llava;
using pathvlm::testing::tiny_pixels;
namespace fs = std::filesystem;

namespace {

// A tiny LLaVA whose tower is a timm ViT with two register tokens (32 px, 8 px patches: 18 image rows).
models::LlavaModel vit_tower_llava(uint64_t seed, const std::string& image_aspect_ratio) {
  pathvlm::testing::Layout layout;
  layout.name = "llava_export_check_" + std::to_string(seed);
  layout.reg_tokens = 2;
  const auto dir = pathvlm::testing::write_timm_vit(layout);
  auto vit = models::load_timm_vit(dir);
  fs::remove_all(dir);
  auto llama_config = pathvlm::testing::tiny_llama_config();
  llama_config.vocab_size = 32000;
  models::LlavaConfig config;
  config.image_aspect_ratio = image_aspect_ratio;
  return models::LlavaModel(config, models::LlavaVisionTower(vit, config.vision_feature_layer, false),
                            pathvlm::testing::random_llama(llama_config, seed));
}

const std::string kTokenizer = std::string(PATHVLM_SHARED_DATA) + "/tokenizers/llama2_tokenizer.model";
constexpr int64_t kVocab = 32000;  // LLaMA-2's tokenizer

#define SKIP_WITHOUT_TOKENIZER()              \
  if (!fs::exists(kTokenizer))                \
  GTEST_SKIP() << "shared test data missing: " << kTokenizer << " (see ../shared/data/README.md)"

json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return json::parse(in);
}

std::set<std::string> keys_of(const json& j) {
  std::set<std::string> out;
  for (const auto& item : j.items()) out.insert(item.key());
  return out;
}

// Every tensor name of a tiny LLaVA export (CLIP tiny: 4 blocks; the tests' LLaMA: 2 layers, untied head).
std::set<std::string> expected_tensor_names() {
  std::set<std::string> names;
  const std::string vision = "vision_tower.vision_model.";
  for (const char* n : {"embeddings.class_embedding", "embeddings.patch_embedding.weight",
                        "embeddings.position_embedding.weight", "pre_layrnorm.weight", "pre_layrnorm.bias",
                        "post_layernorm.weight", "post_layernorm.bias"}) {
    names.insert(vision + n);
  }
  for (int i = 0; i < 4; ++i) {
    for (const char* n : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
                          "layer_norm1", "mlp.fc1", "mlp.fc2", "layer_norm2"}) {
      for (const char* p : {".weight", ".bias"}) names.insert(vision + "encoder.layers." + std::to_string(i) + "." + n + p);
    }
  }
  for (const char* n : {"linear_1.weight", "linear_1.bias", "linear_2.weight", "linear_2.bias"}) {
    names.insert(std::string("multi_modal_projector.") + n);
  }
  const std::string lm = "language_model.model.";
  names.insert(lm + "embed_tokens.weight");
  names.insert(lm + "norm.weight");
  names.insert("language_model.lm_head.weight");
  for (int i = 0; i < 2; ++i) {
    for (const char* n : {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                          "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                          "mlp.down_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight"}) {
      names.insert(lm + "layers." + std::to_string(i) + "." + n);
    }
  }
  return names;
}

std::set<std::string> names_in(const safetensors::Checkpoint& ckpt) {
  return {ckpt.names().begin(), ckpt.names().end()};
}

}  // namespace

TEST(LlavaWeights, ExportHasTheLegacyKeyLayoutConfigAndProcessorFiles) {
  SKIP_WITHOUT_TOKENIZER();
  TempDir tmp("llava_export");
  auto llava = tiny_llava("mlp2x_gelu", "patch", 1, kVocab);
  const auto dir = tmp / "out";
  models::export_hf_llava(llava, dir, torch::kFloat32, 1ull << 30, kTokenizer);

  const auto ckpt = safetensors::Checkpoint::open(dir);
  EXPECT_EQ(names_in(ckpt), expected_tensor_names());
  EXPECT_EQ(ckpt.names().size(), 96u);
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors.index.json"));
  for (const auto& item : llava->named_parameters()) {
    const auto stored = ckpt.get(item.key());
    if (item.key() == "language_model.model.embed_tokens.weight" || item.key() == "language_model.lm_head.weight") {
      // <image> appended: one more row, the mean of the others.
      ASSERT_EQ(stored.sizes(), torch::IntArrayRef({kVocab + 1, 32})) << item.key();
      EXPECT_TRUE(torch::equal(stored.narrow(0, 0, kVocab), item.value())) << item.key();
      EXPECT_TRUE(torch::allclose(stored[kVocab], item.value().mean(0), 1e-5, 1e-6)) << item.key();
    } else {
      EXPECT_TRUE(torch::equal(stored, item.value())) << item.key();
    }
  }

  const auto config = read_json(dir + "/config.json");
  EXPECT_EQ(keys_of(config), (std::set<std::string>{"architectures", "model_type", "vision_config", "text_config",
                                                    "image_token_index", "image_seq_length", "projector_hidden_act",
                                                    "multimodal_projector_bias", "vision_feature_layer",
                                                    "vision_feature_select_strategy", "tie_word_embeddings",
                                                    "pad_token_id", "dtype", "torch_dtype"}));
  EXPECT_EQ(config["architectures"], json::array({"LlavaForConditionalGeneration"}));
  EXPECT_EQ(config["model_type"], "llava");
  EXPECT_EQ(config["image_token_index"], kVocab);
  EXPECT_EQ(config["image_seq_length"], 16);
  EXPECT_EQ(config["projector_hidden_act"], "gelu");
  EXPECT_EQ(config["multimodal_projector_bias"], true);
  EXPECT_EQ(config["vision_feature_layer"], -2);
  EXPECT_EQ(config["vision_feature_select_strategy"], "default");
  EXPECT_EQ(config["tie_word_embeddings"], false);
  EXPECT_EQ(config["pad_token_id"], 0);
  EXPECT_EQ(config["dtype"], "float32");
  const auto& vision = config["vision_config"];
  EXPECT_EQ(vision["model_type"], "clip_vision_model");
  EXPECT_EQ(vision["hidden_size"], 128);
  EXPECT_EQ(vision["num_hidden_layers"], 4);
  EXPECT_EQ(vision["image_size"], 64);
  EXPECT_EQ(vision["patch_size"], 16);
  EXPECT_EQ(vision["hidden_act"], "quick_gelu");
  const auto& text = config["text_config"];
  EXPECT_EQ(text["model_type"], "llama");
  EXPECT_EQ(text["vocab_size"], kVocab + 1);
  EXPECT_EQ(text["hidden_size"], 32);
  EXPECT_EQ(text["num_key_value_heads"], 2);
  EXPECT_EQ(text["rope_theta"], 500.0);
  EXPECT_EQ(text["pad_token_id"], 0);

  EXPECT_EQ(read_json(dir + "/processor_config.json"), (json{{"image_token", "<image>"},
                                                             {"num_additional_image_tokens", 1},
                                                             {"patch_size", 16},
                                                             {"vision_feature_select_strategy", "default"}}));
  const auto preprocessor = read_json(dir + "/preprocessor_config.json");
  EXPECT_EQ(preprocessor["image_processor_type"], "CLIPImageProcessor");
  EXPECT_FALSE(preprocessor.contains("do_pad"));
  EXPECT_EQ(preprocessor["processor_class"], "LlavaProcessor");
  EXPECT_EQ(preprocessor["size"]["shortest_edge"], 64);
  EXPECT_EQ(preprocessor["crop_size"], (json{{"height", 64}, {"width", 64}}));
  const auto generation = read_json(dir + "/generation_config.json");
  EXPECT_EQ(generation["bos_token_id"], 1);
  EXPECT_EQ(generation["eos_token_id"], 2);
  EXPECT_EQ(generation["pad_token_id"], 0);

  EXPECT_TRUE(fs::exists(dir + "/tokenizer.model"));
  const auto tok = read_json(dir + "/tokenizer_config.json");
  EXPECT_EQ(tok["tokenizer_class"], "LlamaTokenizer");
  EXPECT_EQ(tok["legacy"], true);
  EXPECT_EQ(tok["pad_token"], "<unk>");
  EXPECT_EQ(tok["additional_special_tokens"], json::array({"<image>"}));
  EXPECT_EQ(keys_of(tok["added_tokens_decoder"]), (std::set<std::string>{"0", "1", "2", "32000"}));
  EXPECT_EQ(tok["added_tokens_decoder"]["32000"], (json{{"content", "<image>"},
                                                        {"lstrip", false},
                                                        {"normalized", false},
                                                        {"rstrip", false},
                                                        {"single_word", false},
                                                        {"special", true}}));
  EXPECT_EQ(tok["added_tokens_decoder"]["1"]["content"], "<s>");
  EXPECT_EQ(read_json(dir + "/added_tokens.json"), (json{{"<image>", 32000}}));
  const auto special = read_json(dir + "/special_tokens_map.json");
  EXPECT_EQ(special["pad_token"], "<unk>");
  EXPECT_EQ(special["bos_token"], "<s>");
  EXPECT_EQ(special["additional_special_tokens"], json::array({"<image>"}));
  // tokenizer.json (what transformers 5 reads first) knows <image> too.
  const auto added = read_json(dir + "/tokenizer.json")["added_tokens"];
  EXPECT_EQ(std::count_if(added.begin(), added.end(),
                          [](const json& t) { return t["content"] == "<image>" && t["id"] == 32000; }),
            1);
}


// A model that pads images to a square (LLaVA-1.5's image_aspect_ratio pad) exports LlavaImageProcessor with do_pad:
// CLIPImageProcessor cannot pad, and would crop what the model was trained to see whole.
TEST(LlavaWeights, APaddingModelExportsLlavaImageProcessorWithDoPad) {
  SKIP_WITHOUT_TOKENIZER();
  TempDir tmp("llava_pad_export");
  auto llava = tiny_llava("mlp2x_gelu", "patch", 1, kVocab, "pad");
  const auto dir = tmp / "out";
  models::export_hf_llava(llava, dir, torch::kFloat32, 1ull << 30, kTokenizer);
  auto preprocessor = read_json(dir + "/preprocessor_config.json");
  EXPECT_EQ(preprocessor["image_processor_type"], "LlavaImageProcessor");
  EXPECT_EQ(preprocessor["do_pad"], true);
  EXPECT_EQ(preprocessor["processor_class"], "LlavaProcessor");
  EXPECT_EQ(preprocessor["image_mean"], (json{0.48145466, 0.4578275, 0.40821073}));  // the padding colour's source
  EXPECT_EQ(preprocessor["size"]["shortest_edge"], 64);
  EXPECT_EQ(preprocessor["crop_size"], (json{{"height", 64}, {"width", 64}}));
}
TEST(LlavaWeights, SingleFcExportComputesExactlyTheLinearProjection) {
  SKIP_WITHOUT_TOKENIZER();
  TempDir tmp("llava_fc");
  auto llava = tiny_llava("linear", "full", 2, kVocab);
  const auto dir = tmp / "out";
  models::export_hf_llava(llava, dir, torch::kFloat32, 1ull << 30, kTokenizer);
  const auto ckpt = safetensors::Checkpoint::open(dir);
  EXPECT_EQ(names_in(ckpt), expected_tensor_names());  // linear_2 is written too
  EXPECT_TRUE(torch::equal(ckpt.get("multi_modal_projector.linear_2.weight"), torch::eye(32)));
  EXPECT_TRUE(torch::equal(ckpt.get("multi_modal_projector.linear_2.bias"), torch::zeros({32})));

  // HF's projector: linear_2(identity(linear_1(x))) from the exported tensors.
  torch::NoGradGuard no_grad;
  const auto features = llava->image_features(tiny_pixels(2, 5));
  ASSERT_EQ(features.size(1), 17);
  namespace F = torch::nn::functional;
  const auto hf = F::linear(F::linear(features, ckpt.get("multi_modal_projector.linear_1.weight"),
                                      ckpt.get("multi_modal_projector.linear_1.bias")),
                            ckpt.get("multi_modal_projector.linear_2.weight"),
                            ckpt.get("multi_modal_projector.linear_2.bias"));
  EXPECT_TRUE(torch::equal(hf, llava->project(features)));

  const auto config = read_json(dir + "/config.json");
  EXPECT_EQ(config["projector_hidden_act"], "linear");
  EXPECT_EQ(config["vision_feature_select_strategy"], "full");
  EXPECT_EQ(config["image_seq_length"], 17);
  const auto processor = read_json(dir + "/processor_config.json");
  // (64/16)^2 + 1 = 17 image tokens, the CLS row kept.
  EXPECT_EQ(processor["num_additional_image_tokens"], 1);
  EXPECT_EQ(processor["vision_feature_select_strategy"], "full");
}

TEST(LlavaWeights, ShardedBf16ExportHoldsTheSameTensors) {
  SKIP_WITHOUT_TOKENIZER();
  TempDir tmp("llava_shards");
  auto llava = tiny_llava("mlp2x_gelu", "patch", 3, kVocab);
  const auto dir = tmp / "out";
  models::export_hf_llava(llava, dir, torch::kBFloat16, 1ull << 20, kTokenizer);
  EXPECT_TRUE(fs::exists(dir + "/model.safetensors.index.json"));
  const auto ckpt = safetensors::Checkpoint::open(dir);
  EXPECT_GT(ckpt.files().size(), 1u);
  EXPECT_EQ(names_in(ckpt), expected_tensor_names());
  for (const auto& name : ckpt.names()) EXPECT_EQ(ckpt.info(name).dtype, torch::kBFloat16) << name;
  EXPECT_TRUE(torch::equal(ckpt.get("multi_modal_projector.linear_1.weight"),
                           llava->multi_modal_projector->linear_1->weight.to(torch::kBFloat16)));
  EXPECT_EQ(read_json(dir + "/config.json")["dtype"], "bfloat16");
}

TEST(LlavaWeights, ExportRefusesAMismatchedTokenizerAndUnmergedLora) {
  SKIP_WITHOUT_TOKENIZER();
  TempDir tmp("llava_refuse");
  auto small = tiny_llava("linear", "patch", 4);  // 61 embedding rows
  EXPECT_NE(error_of([&] { models::export_hf_llava(small, tmp / "a", torch::kFloat32, 1ull << 30, kTokenizer); })
                .find("has 32000 ids but the language model has 61 embedding rows"),
            std::string::npos);
  auto adapted = tiny_llava("linear", "patch", 4, kVocab);
  models::apply_lora(*adapted->language_model, {"q_proj"}, models::LoraOptions(2, 4));
  EXPECT_NE(error_of([&] { models::export_hf_llava(adapted, tmp / "b", torch::kFloat32, 1ull << 30, kTokenizer); })
                .find("carries LoRA adapters"),
            std::string::npos);
}

// A Qwen2 language model with its tokenizer.json (Qwen3's, from scripts/test_peers.sh): <image> is added to the
// tokenizer files at the id after the tokenizer's last, a row the embedding already has (Qwen pads it beyond the
// tokenizer's ids), and both our reader and the real tokenizers library read it as that one special token.
TEST(LlavaWeights, ExportOfAQwen2LanguageModelAddsImageToItsTokenizerJson) {
  SKIP_WITHOUT_PEERS();
  TempDir tmp("llava_qwen2");
  constexpr int64_t kQwenRows = 151936, kImage = 151669;  // Qwen2.5's embedding rows; its tokenizer's ids
  auto llava = tiny_llava("mlp2x_gelu", "patch", 9, kQwenRows, "square", "qwen2");
  const fs::path out = tmp / "out";
  models::export_hf_llava(llava, out, torch::kFloat32, 1ull << 30, pathvlm::testing::peer_tokenizer_dir("qwen3"));

  const auto config = read_json(out / "config.json");
  EXPECT_EQ(config["image_token_index"], kImage);
  EXPECT_EQ(config["text_config"]["model_type"], "qwen2");
  EXPECT_EQ(config["text_config"]["vocab_size"], kQwenRows);  // no row added
  EXPECT_EQ(config["text_config"]["pad_token_id"], 151643);  // Qwen's own padding token, <|endoftext|>
  const auto tokenizer_config = read_json(out / "tokenizer_config.json");
  EXPECT_EQ(tokenizer_config["added_tokens_decoder"][std::to_string(kImage)]["content"], "<image>");
  EXPECT_EQ(tokenizer_config["pad_token"], "<|endoftext|>");
  EXPECT_EQ(tokenizer_config["processor_class"], "LlavaProcessor");
  const auto special = tokenizer_config["additional_special_tokens"];
  EXPECT_NE(std::find(special.begin(), special.end(), "<image>"), special.end());
  EXPECT_NE(std::find(special.begin(), special.end(), "<|im_start|>"), special.end());  // Qwen's kept

  const auto tokenizer = text::open_tokenizer(out.string());
  const std::string prompt = "<|im_start|>user\n<image>\nWhat is it?<|im_end|>";
  const auto ids = tokenizer->encode(prompt, /*add_bos=*/false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), kImage), 1);
  EXPECT_TRUE(tokenizer->is_special(kImage));
  const auto library = pathvlm::testing::run_node_reference("hf_tokenizers_reference.js",
                                                            (out / "tokenizer.json").string(), {{{"text", prompt}}});
  ASSERT_EQ(library.size(), 1u);
  EXPECT_EQ(library[0]["ids"].get<std::vector<int64_t>>(), ids);

  // The <image> row is the mean of the tokenizer's rows; the padding rows after it are the model's.
  const auto exported = safetensors::Checkpoint::open(out.string());
  const auto embed = exported.get("language_model.model.embed_tokens.weight");
  const auto ours = llava->language_model->named_parameters()["model.embed_tokens.weight"].detach();
  ASSERT_EQ(embed.size(0), kQwenRows);
  EXPECT_TRUE(torch::allclose(embed[kImage], ours.narrow(0, 0, kImage).mean(0), 1e-6, 1e-6));
  EXPECT_TRUE(torch::equal(embed.narrow(0, kImage + 1, kQwenRows - kImage - 1),
                           ours.narrow(0, kImage + 1, kQwenRows - kImage - 1)));

  // The directory is a language model by itself, and exported again from its own tokenizer files (a model read back
  // from it) <image> keeps its id, once, and the model's row.
  const auto language_model = models::load_llama(out.string(), torch::kFloat32, torch::kCPU);
  EXPECT_EQ(language_model->config().model_type, "qwen2");
  EXPECT_TRUE(torch::equal(language_model->named_parameters()["model.norm.weight"],
                           llava->language_model->named_parameters()["model.norm.weight"]));
  const fs::path again = tmp / "again";
  models::export_hf_llava(llava, again, torch::kFloat32, 1ull << 30, out.string());
  EXPECT_EQ(read_json(again / "config.json")["image_token_index"], kImage);
  const auto added = read_json(again / "tokenizer.json")["added_tokens"];
  EXPECT_EQ(std::count_if(added.begin(), added.end(), [](const json& t) { return t["content"] == "<image>"; }), 1);
  const auto again_embedding =
      safetensors::Checkpoint::open(again.string()).get("language_model.model.embed_tokens.weight");
  EXPECT_TRUE(torch::equal(again_embedding, ours));
}

TEST(LlavaWeights, ProjectorFileRoundTripInLlavaNames) {
  TempDir tmp("llava_projector");
  const std::pair<const char*, std::set<std::string>> cases[] = {
      {"linear", {"model.mm_projector.weight", "model.mm_projector.bias"}},
      {"mlp2x_gelu",
       {"model.mm_projector.0.weight", "model.mm_projector.0.bias", "model.mm_projector.2.weight",
        "model.mm_projector.2.bias"}}};
  for (const auto& [type, names] : cases) {
    auto source = tiny_llava(type, "patch", 5);
    auto target = tiny_llava(type, "patch", 6);
    const auto file = tmp / (std::string(type) + ".safetensors");
    models::export_projector(source, file, torch::kFloat32);
    const auto f = safetensors::File::open(file);
    std::set<std::string> stored;
    for (const auto& info : f.tensors()) stored.insert(info.name);
    EXPECT_EQ(stored, names) << type;
    EXPECT_FALSE(torch::equal(source->multi_modal_projector->linear_1->weight,
                              target->multi_modal_projector->linear_1->weight));
    models::load_projector(target, file);
    auto a = source->multi_modal_projector->named_parameters(), b = target->multi_modal_projector->named_parameters();
    for (const auto& item : a) EXPECT_TRUE(torch::equal(item.value(), b[item.key()])) << type << " " << item.key();
  }
  auto mlp = tiny_llava("mlp2x_gelu", "patch", 7);
  EXPECT_NE(error_of([&] { models::load_projector(mlp, tmp / "linear.safetensors"); })
                .find("does not belong to a mlp2x_gelu projector (is it a linear one?"),
            std::string::npos);
  EXPECT_NE(error_of([&] { models::load_projector(mlp, tmp / "mm_projector.bin"); }).find("convert_to_safetensors.py"),
            std::string::npos);
  safetensors::save(tmp / "wide.safetensors",
                    {{"model.mm_projector.weight", torch::zeros({32, 64})}, {"model.mm_projector.bias", torch::zeros({32})}});
  auto linear = tiny_llava("linear", "patch", 8);
  EXPECT_NE(error_of([&] { models::load_projector(linear, tmp / "wide.safetensors"); }).find("has shape [32, 64]"),
            std::string::npos);
  safetensors::save(tmp / "none.safetensors", {{"lm_head.weight", torch::zeros({2, 2})}});
  EXPECT_NE(error_of([&] { models::load_projector(linear, tmp / "none.safetensors"); }).find("no mm_projector tensors"),
            std::string::npos);
}

// Writes what scripts/gpu/check_llava_export.py compares against (see its docstring): for each projector form, an
// fp32 export, a PNG, and reference.jsonl with our input_ids (HF's expanded form), greedy tokens and prompt logits.
// The padding form's image is 40 x 64: padded to the tower's 64 x 64, HF's LlavaImageProcessor must pad it alike.
TEST(LlavaWeights, ExportForTransformersCheck) {
  SKIP_WITHOUT_TOKENIZER();
  const char* requested = std::getenv("PATHVLM_LLAVA_EXPORT_CHECK_DIR");
  TempDir tmp("llava_transformers");
  const std::string root = requested ? std::string(requested) : tmp.path.string();
  const text::SentencePieceTokenizer tok(kTokenizer);
  const std::vector<std::pair<std::string, std::string>> prompts = {
      {"USER: ", "\nWhat does the slide show? ASSISTANT:"}, {"USER: Describe a normal lymph node. ASSISTANT:", ""}};
  // Mistral: LLaVA-Med v1.5's shape (what `pathvlm export --format hf-llava` makes of it). vit: PathChat's shape, a
  // timm ViT tile encoder with register tokens and its own pixel statistics as the tower (a Dinov2 in transformers).
  const std::tuple<const char*, const char*, uint64_t, const char*, const char*, bool> forms[] = {
      {"mlp2x_gelu", "patch", 11, "square", "llama", false},
      {"linear", "full", 12, "square", "llama", false},
      {"mlp2x_gelu", "patch", 13, "pad", "llama", false},
      {"mlp2x_gelu", "patch", 14, "pad", "mistral", false},
      {"mlp2x_gelu", "patch", 15, "pad", "llama", true}};
  for (const auto& [projector, select, seed, aspect, model_type, vit] : forms) {
    const bool pad = std::string(aspect) == "pad", mistral = std::string(model_type) == "mistral";
    const std::string dir = root + "/" + projector + "_" + select + (pad ? "_pad" : "") + (mistral ? "_mistral" : "") +
                            (vit ? "_vit" : "");
    auto llava = vit ? vit_tower_llava(seed, aspect) : tiny_llava(projector, select, seed, kVocab, aspect, model_type);
    models::export_hf_llava(llava, dir + "/model", torch::kFloat32, 1ull << 30, kTokenizer);
    fs::create_directories(dir + "/images");
    torch::manual_seed(seed);
    const auto rgb = torch::randint(0, 256, {pad ? 40 : 64, 64, 3}, torch::kUInt8);
    data::write_image(dir + "/images/0.png", rgb);
    const auto& tower = llava->vision_tower->shape();
    const auto tower_rgb =
        data::instruct_pixels(rgb, tower.image_size, pad, tower.mean).permute({1, 2, 0}).contiguous();
    const auto pixels = data::normalize_image(tower_rgb, tower.mean, tower.std).unsqueeze(0);

    torch::NoGradGuard no_grad;
    safetensors::NamedTensors reference = {{"pixel_values_0", pixels}};
    std::ofstream jsonl(dir + "/reference.jsonl");
    for (size_t i = 0; i < prompts.size(); ++i) {
      const bool with_image = !prompts[i].second.empty();
      auto ids = tok.encode(prompts[i].first);
      std::vector<int64_t> hf_ids = ids;
      if (with_image) {
        ids.push_back(models::kImageSentinel);
        hf_ids.insert(hf_ids.end(), static_cast<size_t>(llava->image_tokens()), kVocab);
        for (const auto id : tok.encode(prompts[i].second, /*add_bos=*/false)) {
          ids.push_back(id);
          hf_ids.push_back(id);
        }
      }
      const auto rows = with_image ? llava->project(llava->image_features(pixels)) : torch::Tensor();
      auto embeds = llava->prompt_embeds({ids}, rows).embeds;
      reference.emplace_back("logits_" + std::to_string(i), llava->language_model->forward_embeds(embeds));
      // Greedy by full recomputation, stopping at EOS as HF's generate does.
      std::vector<int64_t> greedy;
      for (int step = 0; step < 8; ++step) {
        const auto next = llava->language_model->forward_embeds(embeds).select(1, embeds.size(1) - 1).argmax(-1);
        greedy.push_back(next.item<int64_t>());
        if (greedy.back() == tok.eos_id()) break;
        embeds = torch::cat({embeds, llava->language_model->embed(next.unsqueeze(0))}, 1);
      }
      const std::string prompt = prompts[i].first + (with_image ? "<image>" + prompts[i].second : "");
      jsonl << json{{"prompt", prompt},
                    {"image", with_image ? json("images/0.png") : json(nullptr)},
                    {"input_ids", hf_ids},
                    {"greedy", greedy},
                    {"logits", "logits_" + std::to_string(i)},
                    {"pixel_values", with_image ? json("pixel_values_0") : json(nullptr)}}
                   .dump()
            << "\n";
      EXPECT_EQ(reference.back().second.size(1), static_cast<int64_t>(hf_ids.size()));
    }
    safetensors::save(dir + "/reference.safetensors", reference);
  }
}

// The other direction, after scripts/gpu/check_llava_export.py has loaded each export into transformers and saved it
// again (DIR/<form>/resaved: save_pretrained's 4.52+ tensor names, config.json sub-configs as differences from the
// defaults, the processor's tokenizer files): read back as a LLaVA, it gives the prompt logits of the model
// exported (on the exported vocabulary; the <image> row it gained is not compared).
TEST(LlavaWeights, ReadsWhatTransformersSavedInTheExportCheck) {
  const char* root = std::getenv("PATHVLM_LLAVA_EXPORT_CHECK_DIR");
  if (!root || !fs::exists(fs::path(root) / "mlp2x_gelu_patch" / "resaved"))
    GTEST_SKIP() << "runs after scripts/gpu/check_llava_export.py saved the exports again with transformers "
                    "(PATHVLM_LLAVA_EXPORT_CHECK_DIR/<form>/resaved)";
  for (const char* form : {"mlp2x_gelu_patch", "linear_full", "mlp2x_gelu_patch_pad", "mlp2x_gelu_patch_pad_mistral",
                           "mlp2x_gelu_patch_pad_vit"}) {
    SCOPED_TRACE(form);
    const std::string dir = std::string(root) + "/" + form, resaved = dir + "/resaved";
    const auto checkpoint = models::read_llava_checkpoint(resaved);
    ASSERT_TRUE(checkpoint && checkpoint->format == models::LlavaCheckpoint::Format::transformers);
    EXPECT_EQ(checkpoint->image_aspect_ratio, std::string(form).find("_pad") != std::string::npos ? "pad" : "square");
    models::LlavaConfig config;
    config.projector = checkpoint->projector;
    config.vision_feature_layer = checkpoint->vision_feature_layer;
    config.vision_feature_select = checkpoint->vision_feature_select;
    config.image_aspect_ratio = checkpoint->image_aspect_ratio;
    const bool vit = models::is_hf_vit(resaved);
    EXPECT_EQ(vit, std::string(form).find("_vit") != std::string::npos);
    const auto keep_cls = config.vision_feature_select == "full";
    models::LlavaModel llava(config,
                             vit ? models::LlavaVisionTower(models::load_hf_vit(resaved), config.vision_feature_layer,
                                                            keep_cls)
                                 : models::LlavaVisionTower(models::load_clip_image_tower(resaved),
                                                            config.vision_feature_layer, keep_cls),
                             models::load_llama(resaved, torch::kFloat32, torch::kCPU));
    const auto stored = safetensors::Checkpoint::open(resaved);
    torch::NoGradGuard no_grad;
    for (auto& item : llava->multi_modal_projector->named_parameters())
      item.value().copy_(stored.get(checkpoint->layout.projector + item.key()));

    const auto reference = safetensors::Checkpoint::open(dir + "/reference.safetensors");
    std::ifstream jsonl(dir + "/reference.jsonl");
    for (std::string line; std::getline(jsonl, line);) {
      const auto sample = json::parse(line);
      std::vector<int64_t> ids;  // HF's run of image_token_index ids back to one sentinel
      for (const auto id : sample["input_ids"].get<std::vector<int64_t>>()) {
        if (id != checkpoint->image_token_id) {
          ids.push_back(id);
        } else if (ids.empty() || ids.back() != models::kImageSentinel) {
          ids.push_back(models::kImageSentinel);
        }
      }
      const auto rows = sample["pixel_values"].is_null()
                            ? torch::Tensor()
                            : llava->project(llava->image_features(reference.get(sample["pixel_values"])));
      const auto logits = llava->language_model->forward_embeds(llava->prompt_embeds({ids}, rows).embeds);
      const auto expected = reference.get(sample["logits"]);
      const auto ours = logits.narrow(-1, 0, expected.size(-1));
      EXPECT_LE((ours - expected).abs().max().item<double>(), 1e-5 * expected.abs().max().item<double>())
          << sample["prompt"];
    }
  }
}
