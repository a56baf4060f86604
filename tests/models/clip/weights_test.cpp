// CLIP weights in and out: HF export round trip, the open_clip name map, run checkpoints, HF config parsing,
// and clear errors for sources that are not CLIP weights.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "models/clip/weights.h"
#include "io/safetensors.h"
#include "test_util.h"

using namespace pathvlm;
using pathvlm::testing::error_of;
using models::ClipModel;
using models::ClipModelConfig;
namespace fs = std::filesystem;

namespace {

// Head width 64 so that the sizes can also be inferred from the tensors alone (CLIP's convention).
ClipModelConfig config_64(const std::string& act = "quick_gelu") {
  ClipModelConfig c;
  c.embed_dim = 32;
  c.image_size = 32;
  c.patch_size = 16;
  c.vision_width = 128;
  c.vision_layers = 2;
  c.vision_heads = 2;
  c.text_width = 64;
  c.text_layers = 2;
  c.text_heads = 1;
  c.context_length = 12;
  c.vocab_size = 50;
  c.hidden_act = act;
  return c;
}

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) : path(fs::temp_directory_path() / ("pathvlm_clipw_" + name)) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

struct Inputs {
  torch::Tensor pixels, ids;
};

Inputs inputs() {
  torch::manual_seed(11);
  auto ids = torch::randint(1, 48, {3, 12}, torch::kInt64);
  ids.index_put_({torch::arange(3), torch::tensor({4, 11, 7})}, 49);
  return {torch::randn({2, 3, 32, 32}), ids};
}

void expect_same_outputs(ClipModel& a, ClipModel& b) {
  torch::NoGradGuard no_grad;
  auto in = inputs();
  EXPECT_EQ((a->encode_image(in.pixels) - b->encode_image(in.pixels)).abs().max().item<double>(), 0.0);
  EXPECT_EQ((a->encode_text(in.ids) - b->encode_text(in.ids)).abs().max().item<double>(), 0.0);
  EXPECT_EQ(a->logit_scale.item<double>(), b->logit_scale.item<double>());
}

ClipModel make_model(const ClipModelConfig& c) {
  torch::manual_seed(5);
  ClipModel model(c);
  torch::NoGradGuard no_grad;
  model->logit_scale.fill_(3.3);
  for (auto& p : model->parameters()) p.add_(torch::randn_like(p) * 0.01);
  return model;
}

void write(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST(ClipWeights, HfExportRoundTrip) {
  TempDir dir("hf");
  auto model = make_model(config_64("gelu"));
  model->register_parameter("logit_bias", torch::tensor(-10.0));  // what the clip task adds for SigLIP
  models::export_hf_clip(model, model->config(), dir.path.string());
  ASSERT_TRUE(fs::exists(dir.path / "model.safetensors"));
  ASSERT_TRUE(fs::exists(dir.path / "preprocessor_config.json"));

  auto config = nlohmann::json::parse(std::ifstream(dir.path / "config.json"));
  EXPECT_EQ(config["architectures"][0], "CLIPModel");
  EXPECT_EQ(config["model_type"], "clip");
  EXPECT_EQ(config["projection_dim"], 32);
  EXPECT_EQ(config["vision_config"]["hidden_size"], 128);
  EXPECT_EQ(config["vision_config"]["patch_size"], 16);
  EXPECT_EQ(config["vision_config"]["hidden_act"], "gelu");
  EXPECT_EQ(config["text_config"]["max_position_embeddings"], 12);
  EXPECT_EQ(config["text_config"]["eos_token_id"], 49407);

  auto file = safetensors::File::open((dir.path / "model.safetensors").string());
  EXPECT_TRUE(file.contains("vision_model.pre_layrnorm.weight"));
  EXPECT_EQ(file.info("text_projection.weight").shape, (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_FALSE(file.contains("logit_bias"));
  EXPECT_EQ(file.tensors().size(), static_cast<size_t>(16 * 4 + 7 + 4 + 2 + 1));

  ClipModel loaded{nullptr};
  EXPECT_FALSE(pathvlm::testing::moves_random_stream([&] { loaded = models::load_clip(dir.path.string()); }));
  EXPECT_EQ(loaded->config().hidden_act, "gelu");
  EXPECT_EQ(models::describe(loaded->config()), models::describe(model->config()));
  expect_same_outputs(model, loaded);
}

// An image tower alone, as transformers saves a CLIPVisionModel (model_type clip_vision_model, vision_model.* only):
// load_clip_image_tower reads it with the tower exact (its hidden states equal the CLIP's) and refuses what is not a
// CLIP tower; a whole CLIP directory goes through load_clip.
TEST(ClipWeights, AnImageTowerAloneLoadsAsTheTowerOfACLIP) {
  TempDir dir("vision_only");
  auto model = make_model(config_64("gelu"));
  models::export_hf_clip(model, model->config(), (dir.path / "clip").string());
  const auto whole = nlohmann::json::parse(std::ifstream(dir.path / "clip" / "config.json"));
  auto vision = whole["vision_config"];
  vision["model_type"] = "clip_vision_model";
  const auto tower_dir = dir.path / "tower";
  fs::create_directories(tower_dir);
  write(tower_dir / "config.json", vision.dump());
  safetensors::NamedTensors tensors;
  for (const auto& item : model->named_parameters())
    if (item.key().rfind("vision_model.", 0) == 0) tensors.emplace_back(item.key(), item.value().detach());
  safetensors::save((tower_dir / "model.safetensors").string(), tensors);

  auto tower = models::load_clip_image_tower(tower_dir.string());
  EXPECT_EQ(tower->config().hidden_act, "gelu");
  torch::NoGradGuard no_grad;
  const auto pixels = inputs().pixels;
  EXPECT_TRUE(
      torch::equal(tower->vision_model->hidden_state(pixels, -1), model->vision_model->hidden_state(pixels, -1)));
  EXPECT_TRUE(torch::equal(tower->vision_model->post_layernorm->weight, model->vision_model->post_layernorm->weight));
  EXPECT_EQ(models::describe(models::load_clip_image_tower((dir.path / "clip").string())->config()),
            models::describe(model->config()));

  vision["model_type"] = "siglip_vision_model";
  write(tower_dir / "config.json", nlohmann::json{{"model_type", "llava"}, {"vision_config", vision}}.dump());
  EXPECT_NE(error_of([&] { models::load_clip_image_tower(tower_dir.string()); }).find("is a siglip_vision_model"),
            std::string::npos);
  vision["model_type"] = "clip_vision_model";
  write(tower_dir / "config.json", vision.dump());
  tensors.emplace_back("vision_model.extra.weight", torch::zeros({2}));
  safetensors::save((tower_dir / "model.safetensors").string(), tensors);
  EXPECT_NE(error_of([&] { models::load_clip_image_tower(tower_dir.string()); })
                .find("'vision_model.extra.weight' is not a parameter of the image tower"),
            std::string::npos);
}

TEST(ClipWeights, HfConfigParsingFollowsCLIPConfigDefaults) {
  // A minimal config: every missing key takes transformers' CLIPConfig default (ViT-B/32, quick_gelu).
  auto c = models::parse_hf_clip_config(R"({"model_type": "clip", "text_config": {}, "vision_config": {}})", "x");
  EXPECT_EQ(c.embed_dim, 512);
  EXPECT_EQ(c.patch_size, 32);
  EXPECT_EQ(c.vision_width, 768);
  EXPECT_EQ(c.text_heads, 8);
  EXPECT_EQ(c.hidden_act, "quick_gelu");
  // Legacy *_config_dict entries override *_config.
  auto legacy = models::parse_hf_clip_config(
      R"({"text_config": {"hidden_size": 512}, "text_config_dict": {"hidden_size": 256, "num_attention_heads": 4},
          "vision_config": {"patch_size": 16, "hidden_act": "quick_gelu"}})", "x");
  EXPECT_EQ(legacy.text_width, 256);
  EXPECT_EQ(legacy.patch_size, 16);
  EXPECT_NE(error_of([] { models::parse_hf_clip_config("{", "cfg.json"); }).find("cfg.json"), std::string::npos);
  EXPECT_NE(error_of([] { models::parse_hf_clip_config(R"({"model_type": "llama"})", "c"); }).find("llama"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              models::parse_hf_clip_config(
                  R"({"text_config": {"hidden_act": "gelu"}, "vision_config": {"hidden_act": "quick_gelu"}})", "c");
            }).find("differs"),
            std::string::npos);
  EXPECT_NE(error_of([] { models::parse_hf_clip_config(R"({"vision_config": {"patch_size": 30}})", "c"); })
                .find("patch_size"),
            std::string::npos);
  // A value of the wrong type names the file, the tower and the key (not a JSON library's type error).
  for (const auto& [json, expect] : std::vector<std::pair<std::string, std::string>>{
           {R"({"text_config": {"hidden_act": 5}})", "cfg.json: text_config: 'hidden_act' must be a string, got 5"},
           {R"({"vision_config": {"layer_norm_eps": "1e-5"}})",
            "cfg.json: vision_config: 'layer_norm_eps' must be a number, got \"1e-5\""}}) {
    const auto message = error_of([&] { models::parse_hf_clip_config(json, "cfg.json"); });
    EXPECT_NE(message.find(expect), std::string::npos) << "expected '" << expect << "' in: " << message;
  }
}

TEST(ClipWeights, OpenClipStateDictLoadsThroughTheNameMap) {
  TempDir dir("openclip");
  auto model = make_model(config_64());
  auto open_clip = models::hf_to_open_clip(model);
  std::map<std::string, torch::Tensor> by_name(open_clip.begin(), open_clip.end());
  // open_clip's layout: packed qkv, [width, embed] projections, open_clip names.
  EXPECT_EQ(by_name.at("visual.transformer.resblocks.1.attn.in_proj_weight").sizes(), (std::vector<int64_t>{384, 128}));
  EXPECT_EQ(by_name.at("transformer.resblocks.0.attn.in_proj_bias").sizes(), (std::vector<int64_t>{192}));
  EXPECT_EQ(by_name.at("visual.proj").sizes(), (std::vector<int64_t>{128, 32}));
  EXPECT_EQ(by_name.at("text_projection").sizes(), (std::vector<int64_t>{64, 32}));
  EXPECT_TRUE(by_name.count("visual.class_embedding") && by_name.count("positional_embedding") &&
              by_name.count("ln_final.weight") && by_name.count("visual.ln_pre.bias"));
  // The open_clip v_proj slice is the HF v_proj weight.
  EXPECT_TRUE(torch::equal(by_name.at("visual.transformer.resblocks.1.attn.in_proj_weight").slice(0, 256),
                           model->vision_model->encoder->layers->ptr<models::ClipEncoderLayerImpl>(1)
                               ->self_attn->v_proj->weight));
  // OpenAI state dicts carry the text attention mask as a tensor; it is ignored.
  open_clip.emplace_back("attn_mask", torch::full({12, 12}, -INFINITY).triu(1));
  const auto file = (dir.path / "open_clip_model.safetensors").string();
  safetensors::save(file, open_clip);

  ClipModel loaded{nullptr};
  EXPECT_FALSE(pathvlm::testing::moves_random_stream([&] { loaded = models::load_clip(file); }));
  EXPECT_EQ(loaded->config().vision_heads, 2);  // width / 64
  EXPECT_EQ(loaded->config().image_size, 32);
  EXPECT_EQ(loaded->config().hidden_act, "quick_gelu");
  expect_same_outputs(model, loaded);

  // open_clip_config.json beside the weights decides the activation.
  write(dir.path / "open_clip_config.json", R"({"model_cfg": {"embed_dim": 32, "quick_gelu": false}})");
  EXPECT_EQ(models::load_clip(file)->config().hidden_act, "gelu");
  models::ClipLoadOptions options;
  options.hidden_act = "quick_gelu";
  EXPECT_EQ(models::load_clip(file, options)->config().hidden_act, "quick_gelu");
  write(dir.path / "open_clip_config.json", R"({"model_cfg": {"quick_gelu": "yes"}})");
  const auto odd = error_of([&] { models::load_clip(file); });
  EXPECT_NE(odd.find("open_clip_config.json': model_cfg: 'quick_gelu' must be true or false"), std::string::npos)
      << odd;
  fs::remove(dir.path / "open_clip_config.json");

  // A DDP-prefixed state dict loads too; an unknown tensor is refused by name.
  safetensors::NamedTensors prefixed;
  for (const auto& [name, t] : models::hf_to_open_clip(model)) prefixed.emplace_back("module." + name, t);
  const auto ddp_file = (dir.path / "ddp.safetensors").string();
  safetensors::save(ddp_file, prefixed);
  auto ddp = models::load_clip(ddp_file, options);
  expect_same_outputs(model, ddp);
  prefixed.emplace_back("module.visual.attn_pool.query", torch::zeros({4}));
  safetensors::save(ddp_file, prefixed);
  EXPECT_NE(error_of([&] { models::load_clip(ddp_file); }).find("attn_pool"), std::string::npos);
}

TEST(ClipWeights, HfNamedSafetensorsWithoutConfigInferSizes) {
  TempDir dir("bare");
  auto model = make_model(config_64());
  safetensors::NamedTensors tensors;
  for (const auto& item : model->named_parameters()) tensors.emplace_back(item.key(), item.value().detach());
  tensors.emplace_back("vision_model.embeddings.position_ids", torch::arange(5).unsqueeze(0));  // old HF buffer
  safetensors::save((dir.path / "weights.safetensors").string(), tensors);
  auto loaded = models::load_clip((dir.path / "weights.safetensors").string());
  expect_same_outputs(model, loaded);
}

TEST(ClipWeights, RunCheckpointDirectoriesLoadWithTheirConfig) {
  TempDir run("run");
  auto c = config_64("gelu");
  c.vision_heads = 4;  // not inferable from the tensors: must come from the run's config
  auto model = make_model(c);
  auto step = run.path / "checkpoints" / "step_00000010";
  fs::create_directories(step);
  safetensors::NamedTensors tensors;
  for (const auto& item : model->named_parameters()) tensors.emplace_back(item.key(), item.value().detach());
  safetensors::save((step / "model.safetensors").string(), tensors);
  const std::string yaml = "run:\n  task: clip\nclip:\n  model:\n    preset: tiny\n    embed_dim: 32\n    image_size: 32\n"
                           "    patch_size: 16\n    vision_width: 128\n    vision_layers: 2\n    vision_heads: 4\n"
                           "    text_width: 64\n    text_layers: 2\n    text_heads: 1\n    context_length: 12\n"
                           "    vocab_size: 50\n    hidden_act: gelu\n";
  write(step / "trainer_state.json", nlohmann::json({{"step", 10}, {"config", yaml}}).dump());
  write(run.path / "checkpoints" / "latest", "step_00000010\n");

  auto from_step = models::load_clip(step.string());
  EXPECT_EQ(from_step->config().vision_heads, 4);
  expect_same_outputs(model, from_step);
  auto from_run = models::load_clip(run.path.string());
  expect_same_outputs(model, from_run);

  // The tokenizer that goes with the weights: the run's clip.vocab while that file is there; an HF directory's own.
  EXPECT_EQ(models::clip_vocab_of(run.path.string()), "");  // the config names none
  const auto vocab = (run.path / "bpe_simple_vocab_16e6.txt.gz").string();
  write(step / "trainer_state.json", nlohmann::json({{"config", yaml + "  vocab: " + vocab + "\n"}}).dump());
  EXPECT_EQ(models::clip_vocab_of(run.path.string()), "");  // named, but not there
  write(vocab, "gzip");
  EXPECT_EQ(models::clip_vocab_of(run.path.string()), vocab);
  EXPECT_EQ(models::clip_vocab_of(step.string()), vocab);
  const auto hf = run.path / "hf";
  models::export_hf_clip(model, model->config(), hf.string());
  EXPECT_EQ(models::clip_vocab_of(hf.string()), "");
  write(hf / "vocab.json", "{}");
  write(hf / "merges.txt", "");
  EXPECT_EQ(models::clip_vocab_of(hf.string()), hf.string());
  EXPECT_EQ(models::clip_vocab_of((step / "model.safetensors").string()), "");

  // A run whose config has no CLIP model, or whose weights do not match it.
  write(step / "trainer_state.json", nlohmann::json({{"config", "run:\n  task: lm\n"}}).dump());
  EXPECT_NE(error_of([&] { models::load_clip(step.string()); }).find("clip.model"), std::string::npos);
  std::string wrong = yaml;
  wrong.replace(wrong.find("embed_dim: 32"), 13, "embed_dim: 16");
  write(step / "trainer_state.json", nlohmann::json({{"config", wrong}}).dump());
  EXPECT_NE(error_of([&] { models::load_clip(step.string()); }).find("the model expects"), std::string::npos);
}

TEST(ClipWeights, SourcesThatAreNotClipWeightsAreRefused) {
  TempDir dir("bad");
  EXPECT_NE(error_of([&] { models::load_clip((dir.path / "missing").string()); }).find("no such file"),
            std::string::npos);
  write(dir.path / "model.pt", "pickle");
  EXPECT_NE(error_of([&] { models::load_clip((dir.path / "model.pt").string()); }).find("pickle"), std::string::npos);
  safetensors::save((dir.path / "other.safetensors").string(), {{"model.layers.0.weight", torch::zeros({2})}});
  EXPECT_NE(error_of([&] { models::load_clip((dir.path / "other.safetensors").string()); }).find("open_clip names"),
            std::string::npos);
  // A directory of pickles (an open_clip hub repository's open_clip_pytorch_model.bin): the conversion command.
  const auto message = error_of([&] { models::load_clip(dir.path.string()); });
  EXPECT_NE(message.find("(model.pt) holds PyTorch pickles"), std::string::npos) << message;
  EXPECT_NE(message.find("convert_to_safetensors.py " + dir.path.string()), std::string::npos) << message;
  fs::remove(dir.path / "model.pt");
  EXPECT_NE(error_of([&] { models::load_clip(dir.path.string()); }).find("not a CLIP directory"), std::string::npos);
  // An HF directory whose weights lack a tensor names it.
  auto model = make_model(config_64());
  auto hf = dir.path / "hf";
  models::export_hf_clip(model, model->config(), hf.string());
  safetensors::NamedTensors partial;
  for (const auto& item : model->named_parameters()) {
    if (item.key() != "text_projection.weight") partial.emplace_back(item.key(), item.value().detach());
  }
  safetensors::save((hf / "model.safetensors").string(), partial);
  EXPECT_NE(error_of([&] { models::load_clip(hf.string()); }).find("text_projection.weight"), std::string::npos);
}
