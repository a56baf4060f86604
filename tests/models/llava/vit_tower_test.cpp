// ViT tile encoders as LLaVA's vision tower (PathChat's UNI): the hidden state LLaVA selects, and the LLaVA export
// of such a model, whose tower is a transformers Dinov2Model, compared with transformers' forward of the exported
// files (written in numpy: tests/models/vit/hf_vit_reference.py) and read back.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <string>

#include "core/error.h"
#include "core/text_file.h"
#include "models/llama/llama_test_util.h"
#include "models/llava/model.h"
#include "models/llava/weights.h"
#include "models/vit/hf_vit_util.h"
#include "models/vit/hf_weights.h"
#include "models/vit/timm_vit_util.h"
#include "models/vit/timm_weights.h"
#include "test_util.h"

using namespace pathvlm;
using namespace pathvlm::testing;
using nlohmann::json;
namespace fs = std::filesystem;

#define EXPECT_HAS(haystack, needle) EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

namespace {

const std::string kTokenizer = std::string(PATHVLM_SHARED_DATA) + "/tokenizers/llama2_tokenizer.model";

models::LlavaModel vit_llava(const models::Vit& vit, const std::string& select, uint64_t seed) {
  auto lm_config = tiny_llama_config();
  lm_config.vocab_size = 32000;  // LLaMA-2's tokenizer, for the export
  models::LlavaConfig config;
  config.vision_feature_select = select;
  return models::LlavaModel(config, models::LlavaVisionTower(vit, config.vision_feature_layer, select == "full"),
                            random_llama(lm_config, seed));
}

double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

}  // namespace

TEST(LlavaVitTower, SelectsTheHiddenStateLlavaReadsWithTheRegistersKept) {
  Layout layout;
  layout.name = "llava_tower_registers";
  layout.reg_tokens = 2;
  auto vit = models::load_timm_vit(write_timm_vit(layout));
  const auto pixels = normalised(random_pixels(2));
  const int64_t rows = (kImage / kPatch) * (kImage / kPatch) + 1 + 2;  // patches, class token, registers

  models::LlavaVisionTower patch(vit, -2, /*keep_cls=*/false), last(vit, -1, /*keep_cls=*/true);
  EXPECT_EQ(patch->num_tokens(), rows - 1);
  EXPECT_EQ(last->num_tokens(), rows);
  EXPECT_EQ(patch->shape().prefix_tokens, 3);
  EXPECT_EQ(patch->shape().mean, kMean);  // the ViT's own pixel statistics, not CLIP's
  EXPECT_EQ(patch->shape().kind, "ViT");
  for (const auto& p : vit->parameters()) EXPECT_FALSE(p.requires_grad());

  const auto selected = patch(pixels), whole = last(pixels);
  ASSERT_EQ(selected.sizes(), torch::IntArrayRef({2, rows - 1, kWidth}));
  EXPECT_FALSE(selected.requires_grad());
  // The last hidden state is the tokens before the final norm; "patch" drops the class token only.
  EXPECT_TRUE(torch::allclose(vit->norm(whole), vit->forward_tokens(pixels), 1e-5, 1e-6));
  EXPECT_TRUE(torch::equal(selected, vit->hidden_state(pixels, 1).narrow(1, 1, rows - 1)));
  EXPECT_TRUE(torch::equal(vit->hidden_state(pixels, -3), vit->hidden_state(pixels, 0)));

  EXPECT_HAS(error_of([&] { models::LlavaVisionTower(vit, 3, false); }),
             "vision_feature_layer 3 is outside the 3 hidden states of the ViT (-3..2)");
  EXPECT_HAS(error_of([&] { patch->clip_config(); }), "a ViT has no CLIP config");
  // The tower and the config must agree on what is selected.
  models::LlavaConfig config;
  config.vision_feature_select = "full";
  EXPECT_HAS(error_of([&] { models::LlavaModel(config, patch, random_llama(tiny_llama_config(), 1)); }),
             "not what the config says (-2, full)");
}

// Each ViT form exported in a LLaVA is a Dinov2Model (with registers where it has them) that transformers' forward
// turns into the hidden state pathvlm's tower gives, with the pixel statistics of the exported
// preprocessor_config.json; read back from the export it is the same tower.
TEST(LlavaVitTower, ExportHoldsADinov2TowerThatComputesTheSameHiddenState) {
  if (!fs::exists(kTokenizer)) GTEST_SKIP() << "shared test data missing: " << kTokenizer;
  struct Form {
    std::string name;
    models::Vit vit;
    int registers;
  };
  Layout uni;  // UNI: GELU, LayerScale, no registers
  uni.name = "llava_export_uni";
  Layout packed;  // registers with positions, a packed SwiGLU (H-optimus-like)
  packed.name = "llava_export_packed";
  packed.reg_tokens = 4;
  packed.mlp = "packed";
  Layout no_embed_class;  // registers, positions for the patches only, a split SwiGLU (Virchow2-like)
  no_embed_class.name = "llava_export_no_embed_class";
  no_embed_class.reg_tokens = 4;
  no_embed_class.no_embed_class = true;
  no_embed_class.mlp = "split";
  HfLayout registers("llava_export_hf_registers", "dinov2_with_registers");  // positions resampled at load
  registers.reg_tokens = 2;
  registers.position_grid = 7;
  Form forms[] = {{"uni", models::load_timm_vit(write_timm_vit(uni)), 0},
                        {"packed", models::load_timm_vit(write_timm_vit(packed)), 4},
                        {"no_embed_class", models::load_timm_vit(write_timm_vit(no_embed_class)), 4},
                        {"hf_registers", models::load_hf_vit(write_hf_vit(registers)), 2}};
  TempDir tmp("llava_vit_export");
  const auto raw = random_pixels(2);
  uint64_t seed = 20;
  for (auto& form : forms) {
    SCOPED_TRACE(form.name);
    auto llava = vit_llava(form.vit, "patch", ++seed);
    const std::string out = tmp / form.name;
    models::export_hf_llava(llava, out, torch::kFloat32, 1ull << 30, kTokenizer);

    const auto config = json::parse(read_text_file(out + "/config.json"));
    EXPECT_EQ(config["vision_config"]["model_type"], form.registers ? "dinov2_with_registers" : "dinov2");
    EXPECT_EQ(config["vision_config"]["image_size"], kImage);
    EXPECT_EQ(config["image_seq_length"], llava->image_tokens());
    const auto processor = json::parse(read_text_file(out + "/processor_config.json"));
    EXPECT_EQ(processor["num_additional_image_tokens"], 1 + form.registers);
    EXPECT_EQ(processor["patch_size"], kPatch);
    const auto preprocessor = json::parse(read_text_file(out + "/preprocessor_config.json"));
    EXPECT_EQ(preprocessor["image_mean"].get<std::vector<double>>(), std::vector<double>(kMean.begin(), kMean.end()));
    EXPECT_EQ(preprocessor["crop_size"]["height"], kImage);

    torch::NoGradGuard no_grad;
    const auto pixels = normalised(raw);
    const auto ours = form.vit->hidden_state(pixels, -2);
    const auto reference = reference_features(out, raw, "hf_vit_reference.py", "hidden:-2").view_as(ours);
    EXPECT_LE(relative_error(ours, reference), 1e-5);
    // LLaVA's image features: that hidden state without the class token.
    EXPECT_LE(relative_error(llava->image_features(pixels), reference.narrow(1, 1, reference.size(1) - 1)), 1e-5);

    ASSERT_TRUE(models::is_hf_vit(out));
    auto back = models::load_hf_vit(out);
    EXPECT_EQ(back->config().mean, kMean);
    EXPECT_LE(relative_error(back->hidden_state(pixels, -2), ours), 1e-6);
  }
}

TEST(LlavaVitTower, RefusesWhatDinov2ModelCannotExpress) {
  models::VitConfig c;
  c.width = 32;
  c.heads = 4;
  c.mlp = "swiglu";
  c.mlp_hidden = 50;
  EXPECT_HAS(error_of([&] { models::hf_dinov2_config_json(c, torch::kFloat32); }),
             "a SwiGLU MLP 50 wide is not one Dinov2Model builds");
  // The widths Dinov2Model computes from mlp_ratio, as Python computes them.
  const auto ratio = [&] { return json::parse(models::hf_dinov2_config_json(c, torch::kFloat32))["mlp_ratio"]; };
  c.mlp_hidden = 48;
  const auto swiglu_hidden = static_cast<int64_t>(32 * ratio().get<double>());
  EXPECT_EQ((static_cast<int64_t>(swiglu_hidden * 2.0 / 3.0) + 7) / 8 * 8, 48);
  c.mlp = "gelu";
  c.mlp_hidden = 100;
  EXPECT_EQ(static_cast<int64_t>(32 * ratio().get<double>()), 100);
  c.class_token = false;
  c.global_pool = "avg";
  EXPECT_HAS(error_of([&] { models::hf_dinov2_config_json(c, torch::kFloat32); }), "without a class token");
}
