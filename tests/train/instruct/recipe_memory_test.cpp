// The real instruct recipes (configs/instruct/) fit what they say they are sized for. Each is built as it is
// configured, its Vicuna from a Hugging Face directory holding only config.json and the tokenizer (the weights are
// never drawn, so the 13B model costs no memory here) and its tower from the preset of the same shape, and the
// startup memory table is planned for 8 ranks (plan_memory_per_rank: the same table, tests/train/memory_test.cpp).
// The table must fit an 80 GB GPU with room left for activations, and the figures the recipe's header quotes must be
// the ones computed.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "test_util.h"
#include "train/adamw.h"
#include "train/instruct/task.h"
#include "train/job_config.h"
#include "train/memory.h"
#include "train/parameters.h"

using namespace pathvlm;
namespace fs = std::filesystem;

namespace {

constexpr double kGB = 1e9;  // the recipes quote decimal gigabytes

// A Vicuna v1.5 directory without weights: the config transformers writes for it, and LLaMA 2's tokenizer.
std::string vicuna_dir(const std::string& root, int hidden, int intermediate, int layers) {
  const auto dir = fs::path(root) / ("vicuna_" + std::to_string(hidden));
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", )"
                                     << R"("hidden_size": )" << hidden << R"(, "intermediate_size": )" << intermediate
                                     << R"(, "num_hidden_layers": )" << layers << R"(, "num_attention_heads": )"
                                     << hidden / 128 << R"(, "num_key_value_heads": )" << hidden / 128
                                     << R"(, "vocab_size": 32000, "max_position_embeddings": 4096, )"
                                     << R"("rms_norm_eps": 1e-05, "hidden_act": "silu", "tie_word_embeddings": false, )"
                                     << R"("bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "rope_theta": 10000.0, )"
                                     << R"("torch_dtype": "float16"})";
  fs::copy_file(fs::path(PATHVLM_SHARED_DATA) / "tokenizers" / "llama2_tokenizer.model", dir / "tokenizer.model",
                fs::copy_options::overwrite_existing);
  return dir.string();
}

// LLaVA-Med v1.5 without weights: its config.json (Mistral-7B-Instruct's keys plus LLaVA's) and a tokenizer.
std::string llava_med_dir(const std::string& root) {
  const auto dir = fs::path(root) / "llava_med";
  fs::create_directories(dir);
  std::ofstream(dir / "config.json")
      << R"({"architectures": ["LlavaMistralForCausalLM"], "model_type": "llava_mistral", "hidden_size": 4096, )"
      << R"("intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, )"
      << R"("vocab_size": 32000, "max_position_embeddings": 32768, "rms_norm_eps": 1e-05, "hidden_act": "silu", )"
      << R"("rope_theta": 1000000.0, "sliding_window": null, "tie_word_embeddings": false, "bos_token_id": 1, )"
      << R"("eos_token_id": 2, "mm_hidden_size": 1024, "mm_projector_type": "mlp2x_gelu", )"
      << R"("mm_vision_select_layer": -2, "mm_vision_tower": "openai/clip-vit-large-patch14-336"})";
  fs::copy_file(fs::path(PATHVLM_SHARED_DATA) / "tokenizers" / "llama2_tokenizer.model", dir / "tokenizer.model",
                fs::copy_options::overwrite_existing);
  return dir.string();
}

struct Plan {
  train::MemoryTable table;
  int64_t parameters = 0, trained = 0;
};

// The recipe's model and trained set as the trainer makes them, planned for rank 0 (it holds the most) of `world`.
Plan plan_recipe(const std::string& recipe, const std::vector<std::string>& overrides, int world) {
  auto job = load_job_config(std::string(PATHVLM_SOURCE_DIR) + "/configs/instruct/" + recipe, overrides);
  const auto& cfg = job.task_config<train::InstructConfig>();
  const auto tokenizer = train::make_instruct_tokenizer(cfg);
  models::LlavaModel model(cfg.model, train::make_instruct_vision_clip(cfg),
                           train::make_instruct_language_model(cfg, *tokenizer, /*checkpoint_layers=*/true));

  auto named = model->named_parameters(/*recurse=*/true);
  std::vector<train::ParameterInfo> infos;
  for (const auto& p : named) infos.push_back({p.key(), p.value().numel(), p.value().requires_grad()});
  const auto selection = train::select_trainable(infos, job.train.freeze, job.train.trainable);
  Plan plan;
  std::vector<dist::NamedParam> params;
  for (size_t i = 0; i < infos.size(); ++i) {
    auto p = named[infos[i].name];
    p.requires_grad_(static_cast<bool>(selection.trained[i]));
    params.push_back({infos[i].name, p, train::wants_weight_decay(infos[i].name, p, job.optim.no_decay)});
    plan.parameters += p.numel();
    plan.trained += selection.trained[i] ? p.numel() : 0;
  }
  plan.table = train::plan_memory_per_rank(params, job.train.precision == "bf16", world, /*rank=*/0, job.dist);
  return plan;
}

class RecipeMemory : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = std::make_unique<pathvlm::testing::TempDir>("recipe_memory");
    vicuna13b_ = vicuna_dir(root_->path.string(), 5120, 13824, 40);
    vicuna7b_ = vicuna_dir(root_->path.string(), 4096, 11008, 32);
    llava_med_ = llava_med_dir(root_->path.string());
  }
  static void TearDownTestSuite() { root_.reset(); }
  // PathAsst: a PathCLIP ViT-B/16 tower; LLaVA-1.5: CLIP ViT-L/14 at 336 px.
  static std::vector<std::string> pathasst() {
    return {"instruct.language_model=" + vicuna13b_, "instruct.vision_tower=ViT-B-16"};
  }
  static std::vector<std::string> llava15() {
    return {"instruct.language_model=" + vicuna7b_, "instruct.vision_tower=ViT-L-14", "instruct.vision_image_size=336"};
  }
  static inline std::unique_ptr<pathvlm::testing::TempDir> root_;
  static std::vector<std::string> llava_med() {
    return {"instruct.language_model=" + llava_med_, "instruct.vision_tower=ViT-L-14", "instruct.vision_image_size=336"};
  }
  static inline std::string vicuna13b_, vicuna7b_, llava_med_;
};

void expect_near_quote(double bytes, double quoted_gb, double tolerance, const std::string& what) {
  EXPECT_NEAR(bytes / kGB, quoted_gb, quoted_gb * tolerance) << what << ": the recipe's header quotes " << quoted_gb
                                                             << " GB";
}

}  // namespace

// Phase 1 trains the projector only: every rank holds the bf16 model and a few MB for the projector's training.
TEST_F(RecipeMemory, PhaseOneRecipesHoldTheModelAndOnlyTheProjectorsTraining) {
  const auto pathasst1 = plan_recipe("pathasst_phase1.yaml", pathasst(), 8);
  EXPECT_NEAR(pathasst1.parameters / 1e9, 13.1, 0.05);
  EXPECT_NEAR(pathasst1.trained / 1e6, 3.9, 0.1);  // linear 768 -> 5120
  expect_near_quote(pathasst1.table.weights, 26.2, 0.01, "pathasst phase 1 weights");
  EXPECT_LT(pathasst1.table.total() - pathasst1.table.weights, 0.1 * kGB);
  EXPECT_LT(pathasst1.table.total(), 0.5 * 80 * kGB);

  const auto llava1 = plan_recipe("llava15_phase1.yaml", llava15(), 8);
  EXPECT_NEAR(llava1.parameters / 1e9, 7.07, 0.03);
  EXPECT_NEAR(llava1.trained / 1e6, 21.0, 0.5);  // mlp2x_gelu 1024 -> 4096 -> 4096
  expect_near_quote(llava1.table.weights, 14.1, 0.01, "llava15 phase 1 weights");
  EXPECT_LT(llava1.table.total() - llava1.table.weights, 0.4 * kGB);
  EXPECT_LT(llava1.table.total(), 0.5 * 40 * kGB);  // "fits 8 x 40 GB"
}

// Phase 2 trains projector + LLM with the optimizer sharded over the 8 ranks (ZeRO-2): the recipes' totals leave
// room for activations on 80 GB; unsharded, PathAsst's would not fit at all.
TEST_F(RecipeMemory, PhaseTwoRecipesFitEightyGigabytesWithTheOptimizerSharded) {
  const auto pathasst2 = plan_recipe("pathasst_phase2.yaml", pathasst(), 8);
  const auto& t = pathasst2.table;
  expect_near_quote(t.weights, 26.2, 0.01, "pathasst phase 2 weights");
  expect_near_quote(t.gradients, 3.3, 0.03, "pathasst phase 2 gradient shard");
  expect_near_quote(t.master_weights, 6.5, 0.03, "pathasst phase 2 master shard");
  expect_near_quote(t.optimizer_moments, 13.0, 0.03, "pathasst phase 2 moments");
  expect_near_quote(t.total(), 49.0, 0.03, "pathasst phase 2 total");
  EXPECT_LT(t.total(), 0.65 * 80 * kGB) << "fewer than 28 GB left for activations";

  const auto unsharded = plan_recipe("pathasst_phase2.yaml", [] {
    auto o = pathasst();
    o.push_back("dist.shard_optimizer=false");
    return o;
  }(), 8);
  EXPECT_GT(unsharded.table.total(), 80 * kGB) << "the header says that without sharding it does not fit";

  const auto llava2 = plan_recipe("llava15_phase2.yaml", llava15(), 8);
  expect_near_quote(llava2.table.weights, 14.1, 0.01, "llava15 phase 2 weights");
  expect_near_quote(llava2.table.gradients, 1.7, 0.03, "llava15 phase 2 gradient shard");
  expect_near_quote(llava2.table.master_weights, 3.4, 0.03, "llava15 phase 2 master shard");
  expect_near_quote(llava2.table.optimizer_moments, 6.8, 0.03, "llava15 phase 2 moments");
  EXPECT_LT(llava2.table.total(), 0.75 * 40 * kGB) << "the header says it fits 8 x 40 GB as well";

  const auto med = plan_recipe("llava_med15_finetune.yaml", llava_med(), 8);
  EXPECT_NEAR(med.parameters / 1e9, 7.56, 0.01);
  expect_near_quote(med.table.weights, 15.1, 0.01, "llava_med15 weights");
  expect_near_quote(med.table.gradients, 1.8, 0.03, "llava_med15 gradient shard");
  expect_near_quote(med.table.master_weights, 3.6, 0.03, "llava_med15 master shard");
  expect_near_quote(med.table.optimizer_moments, 7.3, 0.03, "llava_med15 moments");
  expect_near_quote(med.table.total(), 28.0, 0.03, "llava_med15 total");
}
