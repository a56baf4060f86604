// The instruct task through the Trainer: what phase 1 trains and saves, phase 2 starting from phase 1, evaluation by
// generation, and (real `pathvlm train` under mpirun) 1 vs 2 vs 3 ranks and bitwise resume in both phases.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/host_reads.h"
#include "core/join.h"
#include "io/safetensors.h"
#include "models/clip/weights.h"
#include "models/llama/config.h"
#include "models/conch/conch_util.h"
#include "models/conch/weights.h"
#include "models/llava/hf_layout.h"
#include "models/swin/swin_util.h"
#include "models/vit/hf_weights.h"
#include "models/vit/timm_vit_util.h"
#include "test_util.h"
#include "train/instruct/instruct_test_util.h"
#include "train/instruct/task.h"
#include "train/job_config.h"
#include "train/train_test_util.h"
#include "train/trainer.h"
#include "wsi/embed.h"
#include "wsi/embed_tiles.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using namespace pathvlm::testing;

namespace {

Tensors with_prefix(const Tensors& all, const std::string& prefix) {
  Tensors out;
  for (const auto& [name, t] : all)
    if (name.rfind(prefix, 0) == 0) out[name] = t;
  return out;
}

std::string checkpoint_weights(const std::string& run, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step_%08lld", static_cast<long long>(step));
  return run + "/checkpoints/" + name + "/model.safetensors";
}

// A phase-2 job of one step at learning rate 0 without weight decay: the weights it saves are those it started from.
JobConfig starting_weights_job(const std::string& dir, const std::string& name) {
  auto job = tiny_instruct_job(dir, name, 2, 1);
  job.optim.lr = 0;
  job.optim.weight_decay = 0;
  job.optim.warmup_steps = 0;
  job.checkpoint.export_final = false;
  return job;
}

const std::string kTile = std::string(PATHVLM_SHARED_DATA) + "/tiles/he_01581x_25327y.png";

// `opened` (a LLaVA checkpoint holding `run`'s weights) sees a tile as `run` does and answers a question about it with
// the same greedy tokens and text.
void expect_answers_like(train::InstructRun& run, train::InstructRun& opened) {
  const auto seen = run.task->image_file_features({kTile});
  ASSERT_TRUE(torch::equal(seen, opened.task->image_file_features({kTile})));
  const text::Conversation question{"q", {{text::Speaker::human, "<image>\nWhat tissue is shown?"}}};
  generate::GenerateOptions options;
  options.max_new_tokens = 6;
  const auto expected = run.task->reply({question}, {seen}, options);
  ASSERT_GE(expected[0].ids.size(), 2u);
  const auto answered = opened.task->reply({question}, {seen}, options);
  ASSERT_EQ(answered.size(), 1u);
  EXPECT_EQ(answered[0].ids, expected[0].ids);
  EXPECT_EQ(answered[0].text, expected[0].text);
}

}  // namespace

TEST(InstructTask, PhaseOneTrainsTheProjectorAloneAndCheckpointsLeaveTheTowerOut) {
  auto dir = fresh_dir("instruct_phase1");
  auto job = tiny_instruct_job(dir, "p1", /*phase=*/1, /*steps=*/6);
  job.checkpoint.every_steps = 2;
  job.checkpoint.keep_last = 5;
  job.checkpoint.export_final = false;
  train::train(job);
  const auto early = load_all(checkpoint_weights(dir + "/p1", 2));
  const auto late = load_all(checkpoint_weights(dir + "/p1", 6));
  EXPECT_TRUE(with_prefix(late, "vision_tower.").empty()) << "the frozen tower is rebuilt, never saved";
  const auto projector = with_prefix(late, "multi_modal_projector.");
  ASSERT_EQ(projector.size(), 4u);  // linear_1/2 weight and bias
  for (const auto& [name, t] : projector) EXPECT_FALSE(torch::equal(t, early.at(name))) << name << " did not train";
  const auto llm = with_prefix(late, "language_model.");
  ASSERT_FALSE(llm.empty());
  for (const auto& [name, t] : llm) EXPECT_TRUE(torch::equal(t, early.at(name))) << name << " moved in phase 1";
  const auto log = read_text(dir + "/p1/log.txt");
  EXPECT_HAS(log, "instruct.data.train: " + tiny_instruct_data().phase1 + ": 32 records, 0 malformed");
  EXPECT_HAS(log, "template plain");
  fs::remove_all(dir);
}

TEST(InstructTask, PhaseTwoStartsFromPhaseOne) {
  auto dir = fresh_dir("instruct_p2_from_p1");
  auto p1 = tiny_instruct_job(dir, "p1", 1, 3);
  p1.checkpoint.export_final = false;
  train::train(p1);
  // One phase-2 step at learning rate 0 (no weight decay): the saved weights are the loaded ones.
  auto p2 = starting_weights_job(dir, "p2");
  p2.train.init_from = {train::InitSource{dir + "/p1", {}, true}};
  HostReadCounter reads;  // the instruct step reads nothing on the host (core/host_reads.h)
  train::train(p2);
  EXPECT_EQ(reads.in_steps(), 0) << join(reads.in_step_reads());
  const auto from = load_all(checkpoint_weights(dir + "/p1", 3));
  const auto to = load_all(checkpoint_weights(dir + "/p2", 1));
  ASSERT_EQ(from.size(), to.size());
  for (const auto& [name, t] : from) EXPECT_TRUE(torch::equal(t, to.at(name))) << name;
  fs::remove_all(dir);
}

namespace {

// A tiny phase-2 run of 3 steps at `dir`/trained, and its weights as LLaVA saves them at `dir`/llava: the language
// model's config.json with LLaVA's keys, the language model's own tensor names, the projector as
// model.mm_projector.{0,2}, a copy of the tower, the tokenizer. Returns the run's weights.
Tensors train_and_write_original_llava(const std::string& dir) {
  auto trained_job = tiny_instruct_job(dir, "trained", 2, 3);
  trained_job.checkpoint.export_final = false;
  train::train(trained_job);
  const auto trained = load_all(checkpoint_weights(dir + "/trained", 3));

  const std::string llava = dir + "/llava";
  fs::create_directories(llava);
  const auto& ic = trained_job.task_config<train::InstructConfig>();
  const auto language_model = train::make_instruct_language_model(ic, *train::make_instruct_tokenizer(ic), false);
  auto config = nlohmann::json::parse(models::hf_llama_config_json(language_model->config(), torch::kFloat32));
  const int64_t tower_width = trained.at("multi_modal_projector.linear_1.weight").size(1);
  config["model_type"] = "llava_llama";
  config["architectures"] = {"LlavaLlamaForCausalLM"};
  config["mm_projector_type"] = "mlp2x_gelu";
  config["mm_hidden_size"] = tower_width;
  config["mm_vision_select_layer"] = -2;
  config["mm_vision_tower"] = "openai/clip-vit-large-patch14-336";
  std::ofstream(llava + "/config.json") << config.dump();
  const std::vector<std::pair<std::string, std::string>> llava_names = {
      {"language_model.model.", "model."},
      {"language_model.lm_head.", "lm_head."},
      {"multi_modal_projector.linear_1.", "model.mm_projector.0."},
      {"multi_modal_projector.linear_2.", "model.mm_projector.2."}};
  safetensors::NamedTensors tensors;
  for (const auto& [name, t] : trained)
    for (const auto& [ours, theirs] : llava_names)
      if (name.rfind(ours, 0) == 0) tensors.emplace_back(theirs + name.substr(ours.size()), t);
  EXPECT_EQ(tensors.size(), trained.size());
  tensors.emplace_back("model.vision_tower.vision_tower.vision_model.post_layernorm.weight",
                       torch::ones({tower_width}));
  safetensors::save(llava + "/model.safetensors", tensors);
  fs::copy_file(ic.tokenizer, llava + "/tokenizer.model");
  return trained;
}

}  // namespace

// One of LLaVA's original checkpoints (LLaVA-1.5, LLaVA-Med v1.5) named as instruct.language_model: its language
// model and, when ours has its shape, its projector are where training starts; a projector of another shape starts
// from random weights; a tower layer other than the one its projector learned from is refused.
TEST(InstructTask, StartsFromAnOriginalLlavaCheckpoint) {
  auto dir = fresh_dir("instruct_llava_original");
  const auto trained = train_and_write_original_llava(dir);
  const std::string llava = dir + "/llava";

  // One step at learning rate 0: the saved weights are the loaded ones, the projector included.
  auto from_llava = starting_weights_job(dir, "from_llava");
  from_llava.task_config<train::InstructConfig>().language_model = llava;
  train::train(from_llava);
  const auto started = load_all(checkpoint_weights(dir + "/from_llava", 1));
  ASSERT_EQ(started.size(), trained.size());
  for (const auto& [name, t] : trained) EXPECT_TRUE(torch::equal(t, started.at(name))) << name;
  const auto widths = std::to_string(trained.at("multi_modal_projector.linear_1.weight").size(1)) + " -> " +
                      std::to_string(trained.at("multi_modal_projector.linear_2.weight").size(0));
  EXPECT_HAS(read_text(dir + "/from_llava/log.txt"),
             "its projector (mlp2x_gelu, " + widths + ") is loaded with its language model");

  // A linear projector is not LLaVA's: the language model still loads, the projector starts from random weights.
  auto linear = from_llava;
  linear.run.name = "linear";
  linear.task_config<train::InstructConfig>().model.projector = "linear";
  train::train(linear);
  const auto linear_start = load_all(checkpoint_weights(dir + "/linear", 1));
  EXPECT_TRUE(torch::equal(linear_start.at("language_model.model.norm.weight"),
                           trained.at("language_model.model.norm.weight")));
  EXPECT_FALSE(linear_start.count("multi_modal_projector.linear_2.weight"));
  EXPECT_HAS(read_text(dir + "/linear/log.txt"), "the projector starts from random weights");

  // Features of another tower layer than the projector learned from.
  auto last_layer = from_llava;
  last_layer.run.name = "last_layer";
  last_layer.task_config<train::InstructConfig>().model.vision_feature_layer = -1;
  const auto msg = error_of([&] { train::train(last_layer); });
  EXPECT_HAS(msg,
             "instruct.language_model '" + llava +
                 "' (one of LLaVA's original checkpoints, llava_llama): its projector was "
                 "trained on tower layer -2 (mm_vision_select_layer) but instruct.model.vision_feature_layer is -1");
  fs::remove_all(dir);
}

// One of LLaVA's original checkpoints opened for inference (`pathvlm generate --image`, `pathvlm export --format
// hf-llava`): the model its config.json describes sees and answers exactly as the run whose weights it holds.
TEST(InstructTask, AnOriginalLlavaCheckpointAnswersLikeTheRunItHolds) {
  auto dir = fresh_dir("instruct_llava_inference");
  train_and_write_original_llava(dir);
  const std::string llava = dir + "/llava";
  const torch::Device cpu(torch::kCPU);
  auto run = train::open_instruct_run(dir + "/trained", cpu);
  auto tower = train::make_instruct_vision_clip(tiny_instruct_job(dir, "x", 2, 1).task_config<train::InstructConfig>());
  models::export_hf_clip(tower, tower->config(), dir + "/tower");

  EXPECT_HAS(error_of([&] { train::open_instruct_model(llava, {}, cpu); }),
             "was trained with the tower 'openai/clip-vit-large-patch14-336', which is not a local directory: "
             "download it (huggingface-cli download openai/clip-vit-large-patch14-336 --local-dir DIR)");
  EXPECT_HAS(error_of([&] {
               train::open_instruct_model(dir + "/trained", {dir + "/tower", ""}, cpu);
             }),
             "is an instruct run: it brings its own vision tower and template");
  auto original = train::open_instruct_model(llava, {dir + "/tower", ""}, cpu);
  EXPECT_EQ(original.task->conversation_template().name(), "vicuna_v1");  // LLaVA-1.5's llava_v1
  expect_answers_like(run, original);

  // `pathvlm eval` of a config naming the checkpoint (a release's zero-shot baseline) scores as the run does.
  auto zero_shot = tiny_instruct_job(dir, "zero_shot", 2, 1);
  auto& zc = zero_shot.task_config<train::InstructConfig>();
  zc.language_model = llava;
  zc.vision_tower = dir + "/tower";
  zc.eval.questions = tiny_instruct_data().questions;
  zc.eval.max_new_tokens = 4;
  auto as_run = tiny_instruct_job(dir, "trained", 2, 1);
  as_run.task_config<train::InstructConfig>().eval = zc.eval;
  const auto scored = evaluate(zero_shot, "");
  EXPECT_GT(scored.at("eval/vqa_closed_questions") + scored.at("eval/vqa_open_questions"), 0);
  EXPECT_EQ(scored, evaluate(as_run, dir + "/trained"));

  original.task->export_model(dir + "/hf");
  const auto exported = nlohmann::json::parse(read_text(dir + "/hf/config.json"));
  EXPECT_EQ(exported["model_type"], "llava");
  EXPECT_EQ(exported["text_config"]["model_type"], "llama");

  // A tower of another width than the projector takes.
  auto config = nlohmann::json::parse(read_text(llava + "/config.json"));
  config["mm_hidden_size"] = 48;
  std::ofstream(llava + "/config.json") << config.dump();
  EXPECT_HAS(error_of([&] {
               train::open_instruct_model(llava, {dir + "/tower", ""}, cpu);
             }),
             "its projector takes 48-wide tower features (mm_hidden_size) but the tower '" + dir + "/tower' gives");
  fs::remove_all(dir);
}

namespace {

// `from` (a transformers LLaVA directory in the names before 4.52) copied to `to` as transformers 5 saves it: the
// tensor names of 4.52 and later, and the tokenizer as tokenizer.json alone (no tokenizer.model).
void write_in_newer_layout(const std::string& from, const std::string& to) {
  fs::create_directories(to);
  for (const auto& entry : fs::directory_iterator(from))
    if (entry.path().extension() != ".safetensors" && entry.path().filename() != "tokenizer.model")
      fs::copy_file(entry.path(), to / entry.path().filename(), fs::copy_options::overwrite_existing);
  const auto older = models::HfLlavaLayout::before_4_52(), newer = models::HfLlavaLayout::from_4_52();
  safetensors::NamedTensors tensors;
  for (const auto& [name, t] : load_all(from + "/model.safetensors")) {
    for (const auto& [a, b] : std::vector<std::pair<std::string, std::string>>{
             {older.language_model, newer.language_model}, {older.lm_head, newer.lm_head},
             {older.vision_tower, newer.vision_tower}, {older.projector, newer.projector}})
      if (name.rfind(a, 0) == 0) tensors.emplace_back(b + name.substr(a.size()), t);
  }
  safetensors::save(to + "/model.safetensors", tensors);
}

}  // namespace

// A transformers LlavaForConditionalGeneration directory (llava-hf, pathvlm's export) read back: the language model,
// tower, projector and tokenizer come from the one directory and answer exactly as the run it was exported from;
// exported again it is the same directory (its <image> id and row kept); as transformers 5 saves it (4.52+ tensor
// names, tokenizer.json alone) it reads the same; as instruct.language_model and instruct.vision_tower it is where
// training starts.
TEST(InstructTask, ATransformersLlavaDirectoryReadsBackAsTheRunItWasExportedFrom) {
  auto dir = fresh_dir("instruct_llava_hf");
  auto trained_job = tiny_instruct_job(dir, "trained", 2, 3);
  trained_job.checkpoint.export_final = false;
  train::train(trained_job);
  const auto trained = load_all(checkpoint_weights(dir + "/trained", 3));
  const torch::Device cpu(torch::kCPU);
  auto run = train::open_instruct_run(dir + "/trained", cpu);
  run.task->export_model(dir + "/hf");

  auto hf = train::open_instruct_model(dir + "/hf", {}, cpu);
  EXPECT_EQ(hf.task->conversation_template().name(), "vicuna_v1");
  expect_answers_like(run, hf);

  hf.task->export_model(dir + "/hf2");
  const auto first = load_all(dir + "/hf/model.safetensors"), second = load_all(dir + "/hf2/model.safetensors");
  ASSERT_EQ(first.size(), second.size());
  for (const auto& [name, t] : first) EXPECT_TRUE(torch::equal(t, second.at(name))) << name;
  for (const char* file : {"config.json", "added_tokens.json", "tokenizer_config.json", "processor_config.json"})
    EXPECT_EQ(nlohmann::json::parse(read_text(dir + "/hf/" + file)),
              nlohmann::json::parse(read_text(dir + "/hf2/" + file))) << file;

  // In bf16 (export --dtype): every tensor and both configs say so, and the weights read back are the run's rounded.
  run.task->export_model(dir + "/hf_bf16", torch::kBFloat16);
  for (const auto& [name, t] : load_all(dir + "/hf_bf16/model.safetensors"))
    EXPECT_EQ(t.scalar_type(), torch::kBFloat16) << name;
  const auto bf16_config = nlohmann::json::parse(read_text(dir + "/hf_bf16/config.json"));
  EXPECT_EQ(bf16_config.at("torch_dtype"), "bfloat16");
  EXPECT_EQ(bf16_config.at("text_config").at("torch_dtype"), "bfloat16");
  auto bf16 = train::open_instruct_model(dir + "/hf_bf16", {}, cpu);
  const auto exact = hf.task->llava()->named_parameters();
  for (const auto& item : bf16.task->llava()->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), exact[item.key()].to(torch::kBFloat16).to(torch::kFloat32))) << item.key();
  }

  write_in_newer_layout(dir + "/hf", dir + "/hf_4_52");
  auto newer = train::open_instruct_model(dir + "/hf_4_52", {}, cpu);
  ASSERT_EQ(newer.task->tokenizer().path(), dir + "/hf_4_52/tokenizer.json");
  expect_answers_like(run, newer);

  // One step at learning rate 0 from the directory: the saved weights are the run's (and <image>'s row).
  auto from_hf = starting_weights_job(dir, "from_hf");
  auto& fc = from_hf.task_config<train::InstructConfig>();
  fc.language_model = fc.vision_tower = dir + "/hf_4_52";
  fc.tokenizer = "";
  train::train(from_hf);
  const auto started = load_all(checkpoint_weights(dir + "/from_hf", 1));
  ASSERT_EQ(started.size(), trained.size());
  for (const auto& [name, t] : trained) {
    const auto& got = started.at(name);
    const bool vocabulary =
        name == "language_model.model.embed_tokens.weight" || name == "language_model.lm_head.weight";
    ASSERT_EQ(got.size(0), t.size(0) + (vocabulary ? 1 : 0)) << name;
    EXPECT_TRUE(torch::equal(got.narrow(0, 0, t.size(0)), t)) << name;
  }
  const auto log = read_text(dir + "/from_hf/log.txt");
  EXPECT_HAS(log, "(a transformers LlavaForConditionalGeneration): its projector");
  EXPECT_HAS(log, "skipped); model tensors missing 0; unexpected 0");  // the tower is loaded as the tower

  // A language model tensor the directory lacks would stay uninitialised memory: refused, named.
  safetensors::NamedTensors partial;
  for (const auto& [name, t] : load_all(dir + "/hf_4_52/model.safetensors"))
    if (name != "model.language_model.norm.weight") partial.emplace_back(name, t);
  safetensors::save(dir + "/hf_4_52/model.safetensors", partial);
  from_hf.run.name = "from_partial";
  EXPECT_HAS(error_of([&] { train::train(from_hf); }),
             "instruct.language_model ('" + dir + "/hf_4_52'): 1 tensors of language_model. are in no source: "
             "language_model.model.norm.weight");

  // A single FC (PathAsst's projector) goes out as linear_1 + an identity linear_2 and comes back as that FC.
  auto linear_job = tiny_instruct_job(dir, "linear", 2, 3);
  linear_job.checkpoint.export_final = false;
  linear_job.task_config<train::InstructConfig>().model.projector = "linear";
  train::train(linear_job);
  auto linear_run = train::open_instruct_run(dir + "/linear", cpu);
  linear_run.task->export_model(dir + "/hf_linear");
  auto linear_hf = train::open_instruct_model(dir + "/hf_linear", {}, cpu);
  ASSERT_EQ(linear_hf.task->llava()->config().projector, "linear");
  const auto features = linear_run.task->image_file_features({kTile});
  torch::NoGradGuard no_grad;
  const auto projected = linear_run.task->llava()->project(features);
  EXPECT_TRUE(torch::equal(linear_hf.task->llava()->project(features), projected));
  EXPECT_FALSE(torch::equal(linear_hf.task->llava()->project(features * 2), projected));
  fs::remove_all(dir);
}

TEST(InstructTask, EvaluationGeneratesAnswersAndScoresThemUnderBothRules) {
  auto dir = fresh_dir("instruct_eval");
  auto job = tiny_instruct_job(dir, "ev", 2, 3);
  job.eval.every = 3;
  job.checkpoint.export_final = false;
  auto& ic = job.task_config<train::InstructConfig>();
  ic.data.eval = {tiny_instruct_data().eval_phase2};
  ic.eval.questions = tiny_instruct_data().questions;
  ic.eval.max_new_tokens = 4;
  train::train(job);
  const auto record = last_record_with(dir + "/ev/metrics.jsonl", "eval/loss");
  ASSERT_FALSE(record.is_null()) << read_text(dir + "/ev/metrics.jsonl");
  EXPECT_GT(record["eval/loss"].get<double>(), 0.0);
  for (const char* key : {"eval/vqa_closed_accuracy_llava_med", "eval/vqa_closed_accuracy_quilt", "eval/vqa_open_f1"}) {
    ASSERT_TRUE(record.contains(key)) << key << " in " << record.dump();
    EXPECT_GE(record[key].get<double>(), 0.0);
    EXPECT_LE(record[key].get<double>(), 1.0);
  }
  const auto log = read_text(dir + "/ev/log.txt");
  EXPECT_HAS(log, "llava-med");
  EXPECT_HAS(log, "quilt");
  fs::remove_all(dir);
}

TEST(InstructTask, MissingImagesAboveTheThresholdStopTheRunNamingTheFile) {
  auto dir = fresh_dir("instruct_missing");
  auto job = tiny_instruct_job(dir, "missing", 1, 1);
  job.task_config<train::InstructConfig>().data.images = {tiny_instruct_data().eval_shards};  // not the train tiles
  try {
    train::train(job);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_HAS(e.what(), tiny_instruct_data().phase1);
    EXPECT_HAS(e.what(), "32 of 32 records whose image is found nowhere");
  }
  fs::remove_all(dir);
}

// Trains `pixels` (its tower a directory) from pixels and from the features `pathvlm embed --tiles` cached with its
// tower (float32, one tile per forward): the same training up to the last bits of batched matmuls.
void expect_cached_features_train_like_the_pixels(const std::string& dir, JobConfig pixels) {
  const auto& data = tiny_instruct_data();
  pixels.checkpoint.export_final = false;
  const auto& ic = pixels.task_config<train::InstructConfig>();
  EmbedConfig embed;
  embed.device = "cpu";
  embed.batch_size = 1;
  embed.tokens_dtype = "float32";
  embed.token_layer = ic.model.vision_feature_layer;
  const auto encoder = wsi::load_tile_encoder(ic.vision_tower, embed);
  auto features = pixels;
  features.run.name = "features";
  auto& cached = features.task_config<train::InstructConfig>().data.images;
  cached.clear();
  for (const auto& [name, shards] :
       {std::pair{"train", data.train_shards}, {"support", data.support_shards}, {"eval", data.eval_shards}})
    cached.push_back(wsi::embed_tiles({shards, dir + "/feats_" + name}, embed, encoder).manifest);

  train::train(pixels);
  train::train(features);
  EXPECT_HAS(read_text(dir + "/features/log.txt"), "images as cached tower features");
  EXPECT_LE(max_relative_error(load_all(checkpoint_weights(dir + "/features", 4)),
                               load_all(checkpoint_weights(dir + "/pixels", 4))),
            1e-5);
  const auto a = logged_losses(dir + "/pixels/metrics.jsonl"), b = logged_losses(dir + "/features/metrics.jsonl");
  ASSERT_EQ(a.size(), 4u);
  for (const auto& [step, loss] : a) EXPECT_NEAR(std::stod(loss), std::stod(b.at(step)), 1e-5) << "step " << step;
}

TEST(InstructTask, CachedTowerFeaturesTrainLikeThePixels) {
  auto dir = fresh_dir("instruct_cached");
  auto pixels = tiny_instruct_job(dir, "pixels", 2, 4);
  auto& ic = pixels.task_config<train::InstructConfig>();
  auto tower = train::make_instruct_vision_clip(ic);
  models::export_hf_clip(tower, tower->config(), dir + "/tower");
  ic.vision_tower = dir + "/tower";
  expect_cached_features_train_like_the_pixels(dir, pixels);
  fs::remove_all(dir);
}

// PathChat's setup: a ViT tile encoder (here timm's, with register tokens, its own pixel statistics and UNI's bilinear
// resize) as the tower. Its cached tokens train as its pixels do; the export's tower is a transformers
// Dinov2WithRegistersModel with its processor's filter, and the export (in either tensor layout) answers as the run
// does.
TEST(InstructTask, AVitTileEncoderAsTheTowerTrainsFromPixelsAndCachedTokensAlike) {
  auto dir = fresh_dir("instruct_vit");
  pathvlm::testing::Layout layout;
  layout.name = "instruct_tower";
  layout.reg_tokens = 2;
  layout.interpolation = "bilinear";
  auto pixels = tiny_instruct_job(dir, "pixels", 2, 4);
  auto& ic = pixels.task_config<train::InstructConfig>();
  const auto tower = pathvlm::testing::write_timm_vit(layout);
  ic.vision_tower = tower;
  ic.vision_image_size = 0;
  expect_cached_features_train_like_the_pixels(dir, pixels);
  const auto log = read_text(dir + "/pixels/log.txt");
  EXPECT_HAS(log, "(ViT, pixel mean [0.7, 0.58, 0.7] std [0.21, 0.23, 0.18], frozen, 18 rows per image of width 32)");
  // 4x4 patches, the class token dropped, the two registers kept: 18 rows.
  EXPECT_EQ(train::instruct_image_tokens(ic), 18);

  auto exported = pixels;
  exported.run.name = "exported";
  exported.train.steps = 3;
  exported.checkpoint.export_final = true;
  train::train(exported);
  const auto export_dir = dir + "/exported/export";
  EXPECT_EQ(nlohmann::json::parse(read_text(export_dir + "/config.json"))["vision_config"]["model_type"],
            "dinov2_with_registers");
  EXPECT_EQ(nlohmann::json::parse(read_text(export_dir + "/preprocessor_config.json"))["resample"], 2);  // bilinear
  EXPECT_TRUE(models::is_hf_vit(export_dir));
  const torch::Device cpu(torch::kCPU);
  auto run = train::open_instruct_run(dir + "/exported", cpu);
  auto hf = train::open_instruct_model(export_dir, {}, cpu);
  expect_answers_like(run, hf);
  write_in_newer_layout(export_dir, dir + "/hf_4_52");
  auto newer = train::open_instruct_model(dir + "/hf_4_52", {}, cpu);
  expect_answers_like(run, newer);

  // Tokens cached with other pixel statistics (as Midnight's card asks of embed) are refused, naming both, until
  // the tower is given the same.
  EmbedConfig half;
  half.device = "cpu";
  half.image_mean = half.image_std = {0.5, 0.5, 0.5};
  auto other = pixels;
  other.run.name = "other_statistics";
  other.task_config<train::InstructConfig>().data.images = {
      wsi::embed_tiles({tiny_instruct_data().train_shards, dir + "/feats_half"}, half,
                       wsi::load_tile_encoder(tower, half))
          .manifest};
  EXPECT_HAS(error_of([&] { train::train(other); }),
             "made from pixels normalised with mean [0.5, 0.5, 0.5] std [0.5, 0.5, 0.5] but the tower '" + tower +
                 "' takes mean [0.7, 0.58, 0.7] std [0.21, 0.23, 0.18]");
  auto& given = other.task_config<train::InstructConfig>();
  given.vision_image_mean = given.vision_image_std = {0.5, 0.5, 0.5};
  other.checkpoint.export_final = false;
  train::train(other);
  EXPECT_HAS(read_text(dir + "/other_statistics/log.txt"), "pixel mean [0.5, 0.5, 0.5] std [0.5, 0.5, 0.5]");

  ic.vision_image_size = 64;
  EXPECT_HAS(error_of([&] { train::make_instruct_vision_tower(ic); }), "leave instruct.vision_hidden_act");
  fs::remove_all(tower);
  fs::remove_all(dir);
}

// CONCH as the tower: its ViT trunk's hidden state (what `embed --tokens` caches), at its 448 px input and statistics;
// CTransPath is refused.
TEST(InstructTask, ConchsTrunkIsATowerWithItsInputSizeAndPixelStatistics) {
  const auto conch_dir = write_conch({"instruct_tower", "v1.5"});
  train::InstructConfig ic;
  ic.vision_tower = conch_dir;
  ic.vision_image_size = 0;
  auto tower = train::make_instruct_vision_tower(ic);
  const auto& shape = tower->shape();
  EXPECT_EQ(shape.kind, "ViT");
  EXPECT_EQ(shape.image_size, kConchInput);
  EXPECT_EQ(shape.width, kConchWidth);
  EXPECT_EQ(shape.mean, (std::array<double, 3>{0.485, 0.456, 0.406}));  // v1.5's ImageNet statistics
  const int64_t patches = (kConchInput / kConchPatch) * (kConchInput / kConchPatch);
  EXPECT_EQ(tower->num_tokens(), patches);  // the class token dropped (patch)
  EXPECT_EQ(train::instruct_image_tokens(ic), patches);

  const auto pixels = normalised(random_pixels(1, kConchInput), shape.mean, shape.std);
  auto trunk = models::load_conch(conch_dir).model->trunk;
  torch::NoGradGuard no_grad;
  const auto expected = trunk->hidden_state(pixels, ic.model.vision_feature_layer).narrow(1, 1, patches);
  const auto got = tower(pixels);
  EXPECT_TRUE(torch::allclose(got, expected, 1e-5, 1e-5)) << (got - expected).abs().max();
  fs::remove_all(conch_dir);

  // CTransPath's Swin has no one hidden state of tokens for the projector: refused by name.
  ic.vision_tower = write_ctranspath("instruct_tower");
  EXPECT_HAS(error_of([&] { train::make_instruct_vision_tower(ic); }), "is CTransPath, a Swin");
  fs::remove_all(ic.vision_tower);
}

// ---- real `pathvlm train` under mpirun ----------------------------------------------------------------

TEST(InstructMultiRank, WorldSizesAgreeWithOneRank) {
  std::string why;
  if (!tools_available(&why)) GTEST_SKIP() << why;
  auto dir = fresh_dir("instruct_equiv");
  const auto config = write_config(dir, tiny_instruct_job(dir, "unused", 2, 6));
  ASSERT_NO_FATAL_FAILURE(launch_world_variants(dir, config));
  const auto& variants = world_variants();
  const auto reference = load_all(dir + "/ref/export/model.safetensors");
  const auto ref_losses = logged_losses(dir + "/ref/metrics.jsonl");
  ASSERT_EQ(ref_losses.size(), 6u);
  for (size_t i = 1; i < variants.size(); ++i) {
    EXPECT_LE(max_relative_error(load_all(dir + "/" + variants[i].name + "/export/model.safetensors"), reference), 1e-5)
        << variants[i].name;
    const auto losses = logged_losses(dir + "/" + variants[i].name + "/metrics.jsonl");
    ASSERT_EQ(losses.size(), 6u) << variants[i].name;
    EXPECT_NEAR(std::stod(losses.at(6)), std::stod(ref_losses.at(6)), 1e-4) << variants[i].name;
  }
  fs::remove_all(dir);
}

// Both phases killed after step 6 (checkpoint at 4) resume bitwise; phase 2 with length-grouped batches.
TEST(InstructMultiRank, ResumeAfterSigkillIsBitwiseEqualInBothPhases) {
  std::string why;
  if (!tools_available(&why)) GTEST_SKIP() << why;
  for (int phase : {1, 2}) {
    auto dir = fresh_dir("instruct_resume_p" + std::to_string(phase));
    auto job = tiny_instruct_job(dir, "unused", phase, 10);
    job.train.micro_batch_size = 6;
    job.checkpoint.every_steps = 4;
    job.checkpoint.keep_last = 2;
    job.checkpoint.resume = "auto";
    job.task_config<train::InstructConfig>().data.group_by_length = phase == 2;
    expect_bitwise_resume(dir, write_config(dir, job), {2, "KILL", -1, 6, 4, 10});
    fs::remove_all(dir);
  }
}

// Qwen's kind of language model tokenizer (a tokenizer.json with ChatML's markers, no BOS) through the chatml
// template: samples start at <|im_start|>, each reply and its <|im_end|> are supervised, generation ends at
// <|im_end|> (the template's end of reply, not the tokenizer's EOS <|endoftext|>), and the run trains and evaluates.
TEST(InstructTask, ChatmlTrainsAndAnswersWithATokenizerJsonThatHasNoBos) {
  auto dir = fresh_dir("instruct_chatml");
  auto job = tiny_instruct_job(dir, "chatml", 2, 3);
  job.eval.every = 3;
  job.checkpoint.export_final = false;
  auto& ic = job.task_config<train::InstructConfig>();
  ic.tokenizer = write_byte_level_tokenizer(dir + "/tokenizer", {"<|im_start|>", "<|im_end|>"});
  ic.conversation_template = "chatml";
  ic.max_length = 512;  // one token per byte: the tiny LLaMA's whole context
  ic.data.eval = {tiny_instruct_data().eval_phase2};
  ic.eval.questions = tiny_instruct_data().questions;
  ic.eval.max_new_tokens = 4;

  auto too_long = ic;
  too_long.max_length = 1024;
  const auto message = error_of([&] {
    train::make_instruct_language_model(too_long, *train::make_instruct_tokenizer(too_long), false);
  });
  EXPECT_NE(message.find("instruct.max_length (1024) exceeds"), std::string::npos) << message;

  auto comm = dist::make_local_comm();
  train::TaskContext ctx{job, torch::Device(torch::kCPU), *comm, 0, 1, job.train.micro_batch_size, 1,
                         static_cast<uint64_t>(job.run.seed), ""};
  train::InstructTask task;
  task.build(ctx);
  EXPECT_EQ(task.tokenizer().bos_id(), -1);
  EXPECT_EQ(task.conversation_template().reply_end_id(task.tokenizer()), 258);  // <|im_end|>
  text::Conversation conversation{"c", {{text::Speaker::human, "<image>\nWhat is it?"}, {text::Speaker::gpt, "Fat."}}};
  const auto sample = task.conversation_template().tokenize(conversation, task.tokenizer());
  EXPECT_EQ(sample.input_ids.front(), 257);  // <|im_start|>
  std::vector<int64_t> supervised;
  for (const auto label : sample.labels)
    if (label != text::kIgnoreIndex) supervised.push_back(label);
  EXPECT_EQ(supervised, (std::vector<int64_t>{'F', 'a', 't', '.', 258}));

  ASSERT_EQ(train::train(job), 0);
  const auto record = last_record_with(dir + "/chatml/metrics.jsonl", "eval/loss");
  ASSERT_FALSE(record.is_null()) << read_text(dir + "/chatml/metrics.jsonl");
  EXPECT_TRUE(std::isfinite(record["eval/loss"].get<double>()));
  EXPECT_TRUE(record.contains("eval/vqa_open_f1")) << record.dump();
  fs::remove_all(dir);
}
