// Slides as the instruct task's images (PathAlign-R report generation, slide chat): a `slide` run's encoder,
// frozen, turns each slide into tokens that a projector puts before a LLaMA. The tiny slides of
// tests/train/slide/slide_test_util.h give the data; their reports name the tissue kinds the features encode.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/slide_bags.h"
#include "dist/process_group.h"
#include "models/llama/weights.h"
#include "synth/slide_synth.h"
#include "synth/synth_instruct.h"
#include "train/instruct/task.h"
#include "train/job_config.h"
#include "train/lm/config.h"
#include "train/slide/config.h"
#include "train/trainer.h"
#include "cli/cli_test_util.h"
#include "train/instruct/instruct_test_util.h"
#include "test_util.h"
#include "train/slide/slide_test_util.h"
#include "train/train_test_util.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using namespace pathvlm::testing;
using Json = nlohmann::ordered_json;

namespace {

// Report records (the request, then the slide's report) and report questions of the tiny slides, a tokenizer and
// a text corpus over the train reports, a slide run (Q-Former, 4 queries) aligned on them, and a tiny LLaMA
// pretrained on the corpus (what PathAlign-R's frozen LLM brings).
struct SlideReportSet {
  TinySlides slides;
  std::string reports, questions, chat, chat_questions, tokenizer, corpus, slide_run, llm;
  std::string val_reports, val_reports_swapped;  // held-out report records; the same with other slides' images
};

const char* const kMainTissueQuestion = "What is the predominant tissue in this slide?";

// Whether the report of a tiny slide names tissue kind `k`.
bool names_kind(const std::string& report, size_t k) {
  for (const auto& phrase : tiny_slide_phrases()[k])
    if (report.find(phrase) != std::string::npos) return true;
  return false;
}

// Chat about the tiny slides: the predominant kind (open), a kind the slide shows or lacks (yes/no, alternating).
// Records for training, or questions (eval/vqa.h's JSONL) for evaluation.
Json chat_data(const std::string& csv, bool questions) {
  const auto bags = data::SlideBagDataset::open({csv}, {});
  const auto& kinds = tiny_slide_kinds();
  Json out = Json::array();
  auto human = [](const std::string& text) { return Json{{"from", "human"}, {"value", "<image>\n" + text}}; };
  auto gpt = [](const std::string& text) { return Json{{"from", "gpt"}, {"value", text}}; };
  for (int64_t i = 0; i < bags.size(); ++i) {
    const auto& s = bags.slide(i);
    const size_t main = std::find(kinds.begin(), kinds.end(), s.label) - kinds.begin();
    size_t absent = (main + 1 + static_cast<size_t>(i)) % kinds.size();
    while (names_kind(s.report, absent)) absent = (absent + 1) % kinds.size();
    const bool yes = i % 2 == 0;
    const std::string closed = "Is there " + kinds[yes ? main : absent] + " in this slide?";
    const std::string main_answer = "Predominantly " + kinds[main] + ".";
    if (questions) {
      out.push_back(Json{{"question_id", 2 * i}, {"image", s.id}, {"text", kMainTissueQuestion},
                         {"answer", main_answer}, {"answer_type", "OPEN"}});
      out.push_back(Json{{"question_id", 2 * i + 1}, {"image", s.id}, {"text", closed},
                         {"answer", yes ? "yes" : "no"}, {"answer_type", "CLOSED"}});
    } else {
      out.push_back(Json{{"id", s.id + "-main"}, {"image", s.id},
                         {"conversations", Json::array({human(kMainTissueQuestion), gpt(main_answer)})}});
      for (size_t k = 0; k < kinds.size(); ++k)
        out.push_back(Json{{"id", s.id + "-" + kinds[k]}, {"image", s.id},
                           {"conversations", Json::array({human("Is there " + kinds[k] + " in this slide?"),
                                                          gpt(names_kind(s.report, k) ? "Yes." : "No.")})}});
    }
  }
  return out;
}

Json report_records(const std::string& csv) {
  const auto bags = data::SlideBagDataset::open({csv}, {});
  Json records = Json::array();
  for (int64_t i = 0; i < bags.size(); ++i) {
    const auto& s = bags.slide(i);
    records.push_back(Json{{"id", s.id + "-report"},
                           {"image", s.id},
                           {"conversations", Json::array({Json{{"from", "human"},
                                                               {"value", std::string("<image>\n") + synth::kSlideReportPrompt}},
                                                          Json{{"from", "gpt"}, {"value", s.report}}})}});
  }
  return records;
}

const SlideReportSet& slide_report_set() {
  static const SlideReportSet set = [] {
    SlideReportSet s;
    const std::string dir = fresh_dir("instruct_slides_data");
    s.slides = write_tiny_slides(dir);
    const auto train = report_records(s.slides.train_csv), val = report_records(s.slides.val_csv);
    s.reports = dir + "/reports.json";
    std::ofstream(s.reports) << train.dump(1);
    s.val_reports = dir + "/val_reports.json";
    std::ofstream(s.val_reports) << val.dump(1);
    auto swapped = val;
    for (size_t i = 0; i < val.size(); ++i) swapped[i]["image"] = val[(i + val.size() / 2) % val.size()]["image"];
    s.val_reports_swapped = dir + "/val_reports_swapped.json";
    std::ofstream(s.val_reports_swapped) << swapped.dump(1);
    s.questions = dir + "/questions.jsonl";
    std::ofstream questions(s.questions);
    for (size_t i = 0; i < val.size(); ++i)
      questions << Json{{"question_id", i}, {"image", val[i]["image"]}, {"text", synth::kSlideReportPrompt},
                        {"answer", val[i]["conversations"][1]["value"]}, {"answer_type", "OPEN"}}.dump()
                << "\n";
    questions.close();
    const auto chat = chat_data(s.slides.train_csv, false);
    s.chat = dir + "/chat.json";
    std::ofstream(s.chat) << chat.dump(1);
    s.chat_questions = dir + "/chat_questions.jsonl";
    std::ofstream chat_questions(s.chat_questions);
    for (const auto& q : chat_data(s.slides.val_csv, true)) chat_questions << q.dump() << "\n";
    chat_questions.close();
    s.tokenizer = dir + "/tokenizer.model";
    s.corpus = dir + "/text.jsonl";
    // The LLM learns the train reports (alone too: report generation gives it no request text); the tokenizer
    // also covers the held-out ones.
    std::vector<std::string> train_reports, val_reports;
    for (const auto& r : train) train_reports.push_back(r["conversations"][1]["value"]);
    for (const auto& r : val) val_reports.push_back(r["conversations"][1]["value"]);
    synth::write_instruct_tokenizer_and_corpus({&train, &chat}, train_reports, val_reports, 512, s.tokenizer,
                                               s.corpus);

    auto slide_job = tiny_slide_job(dir, "align", s.slides, 150);
    auto& sc = slide_job.task_config<train::SlideTaskConfig>();
    sc.encoder.kind = "qformer";
    sc.encoder.queries = 4;
    slide_job.log.every = 50;
    EXPECT_EQ(train::train(slide_job), 0);
    s.slide_run = dir + "/align";

    auto lm_job = tiny_lm_job(dir, "llm", /*seed=*/2, /*steps=*/120);
    auto& lm = lm_job.task_config<train::LmConfig>();
    lm.tokenizer = s.tokenizer;
    lm.data.train = {s.corpus};
    lm_job.log.every = 20;
    EXPECT_EQ(train::train(lm_job), 0);
    s.llm = dir + "/llm/export";
    return s;
  }();
  return set;
}

// PathAlign-R: the plain template (the slide's tokens, then its report), the LLM frozen, the projector trained.
JobConfig report_job(const std::string& runs_dir, const std::string& name, int64_t steps) {
  const auto& set = slide_report_set();
  JobConfig job;
  job.run.task = "instruct";
  job.run.name = name;
  job.run.runs_dir = runs_dir;
  job.run.seed = 4;
  job.log.tensorboard = false;
  job.log.every = 10;
  job.train.steps = steps;
  job.train.micro_batch_size = 8;
  job.train.device = "cpu";
  job.train.freeze = {"language_model"};
  job.optim.lr = 3e-3;
  job.optim.warmup_steps = 5;
  job.optim.clip_grad_norm = 1.0;
  job.checkpoint.every_steps = 0;
  job.checkpoint.resume = "none";
  job.checkpoint.export_final = false;
  auto& ic = job.task_config<train::InstructConfig>();
  ic.slide_encoder = set.slide_run;
  ic.language_model = set.llm;
  ic.conversation_template = "plain";
  ic.max_length = 64;
  ic.model.projector = "mlp2x_gelu";
  ic.data.train = {set.reports};
  ic.data.images = {set.slides.train_csv, set.slides.val_csv};
  ic.data.slide_tiles = 32;
  ic.data.workers = 1;
  ic.eval.questions = set.questions;
  ic.eval.max_new_tokens = 24;
  ic.eval.batch_size = 16;
  return job;
}

}  // namespace

// PathAlign-R on the tiny set: the projector alone learns to prefix the frozen LLM with each slide's tokens. The
// held-out reports' loss falls, and is lower with each report's own slide than with another slide's: the frozen LLM
// reads the slide. (A 2-layer LLM reads soft prefixes weakly; configs/slide/report_phase1.yaml has the demo's
// BLEU-4 and ROUGE-L.)
TEST(InstructSlides, ReportGenerationThroughAFrozenLlmReadsTheSlide) {
  auto dir = fresh_dir("instruct_slides_report");
  auto job = report_job(dir, "pathalign_r", 400);
  job.optim.lr = 1e-2;
  job.optim.weight_decay = 0;
  job.task_config<train::InstructConfig>().data.eval = {slide_report_set().val_reports};
  ASSERT_EQ(train::train(job), 0);
  const auto before = evaluate(job, "");
  const auto after = evaluate(job, dir + "/pathalign_r");
  auto swapped_job = job;
  swapped_job.task_config<train::InstructConfig>().data.eval = {slide_report_set().val_reports_swapped};
  const auto swapped = evaluate(swapped_job, dir + "/pathalign_r");
  EXPECT_LT(after.at("eval/loss"), before.at("eval/loss") - 0.1) << before.at("eval/loss");
  EXPECT_LT(after.at("eval/loss"), swapped.at("eval/loss") - 0.02) << swapped.at("eval/loss");
  for (const char* key : {"eval/vqa_open_bleu4", "eval/vqa_open_rouge_l"}) {
    EXPECT_GE(after.at(key), 0.0) << key;
    EXPECT_LE(after.at(key), 1.0) << key;
  }

  // The checkpoint holds the projector only: the LLM stays in its export, the slide encoder in its run.
  const auto saved = load_all(dir + "/pathalign_r/checkpoints/step_00000400/model.safetensors");
  for (const auto& [name, t] : saved) EXPECT_EQ(name.rfind("multi_modal_projector.", 0), 0u) << name;

  // `pathvlm generate --slide`: one report per slide, the default prompt, JSON lines alone on stdout.
  const auto bags = data::SlideBagDataset::open({slide_report_set().slides.val_csv}, {});
  const auto r = run_cli(str("generate --model ", dir, "/pathalign_r --slide ", bags.slide(0).id, " --slide ",
                             bags.slide(1).id, " --shards ", slide_report_set().slides.val_csv,
                             " --max-new-tokens 24 --format jsonl --device cpu"),
                         dir);
  ASSERT_EQ(r.status, 0) << r.err;
  std::istringstream lines(r.out);
  std::vector<nlohmann::json> outputs;
  for (std::string line; std::getline(lines, line);) outputs.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(outputs.size(), 2u) << r.out;
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(outputs[i]["slide"], bags.slide(static_cast<int64_t>(i)).id);
    EXPECT_EQ(outputs[i]["prompt"], synth::kSlideReportPrompt);
    EXPECT_FALSE(outputs[i]["ids"].empty());
  }
  fs::remove_all(dir);
}

// Slide chat: phase 2 starts from the report phase's projector and trains it with the LLM on questions about the
// slides (vicuna_v1): the held-out slides' predominant kind comes out far above chance. (Yes/no questions, which
// bind a named kind to the slide, need several times more steps on this tiny set; they are scored, not asserted.)
TEST(InstructSlides, ChatPhaseTwoStartsFromTheReportPhaseAndAnswersAboutHeldOutSlides) {
  auto dir = fresh_dir("instruct_slides_chat");
  ASSERT_EQ(train::train(report_job(dir, "phase1", 20)), 0);
  auto job = report_job(dir, "phase2", 600);
  job.train.freeze.clear();
  job.train.init_from = {{dir + "/phase1", {}, true}};
  auto& ic = job.task_config<train::InstructConfig>();
  ic.conversation_template = "vicuna_v1";
  ic.max_length = 128;
  ic.data.train = {slide_report_set().chat};
  ic.eval.questions = slide_report_set().chat_questions;
  ic.eval.max_new_tokens = 8;
  job.checkpoint.export_final = true;
  ASSERT_EQ(train::train(job), 0);
  const auto log = read_text(dir + "/phase2/log.txt");
  EXPECT_HAS(log, "init_from " + dir + "/phase1");
  const auto after = evaluate(job, dir + "/phase2");
  // Chance: 1/4 (one of 4 kinds) on the 16 held-out slides.
  EXPECT_GE(after.at("eval/vqa_open_exact_match"), 0.6) << log;
  EXPECT_EQ(after.at("eval/vqa_closed_questions"), 16.0);

  // The export: the LLM as a Hugging Face LLaMA directory, the projector in LLaVA's names, the slide encoder's export.
  const std::string out = dir + "/phase2/export";
  const auto trained = load_all(dir + "/phase2/checkpoints/step_00000600/model.safetensors");
  auto llm = models::load_llama(out + "/language_model", torch::kFloat32, torch::Device(torch::kCPU));
  EXPECT_TRUE(torch::equal(llm->model->embed_tokens->weight, trained.at("language_model.model.embed_tokens.weight")));
  const auto projector = load_all(out + "/mm_projector.safetensors");
  EXPECT_TRUE(torch::equal(projector.at("model.mm_projector.0.weight"),
                           trained.at("multi_modal_projector.linear_1.weight")));
  EXPECT_TRUE(fs::exists(out + "/slide_encoder/slide_model.yaml"));
  EXPECT_TRUE(fs::exists(out + "/slide_encoder/model.safetensors"));
  fs::remove_all(dir);
}

TEST(InstructSlides, SlideSourcesWithoutASlideEncoderAreAnErrorNamingThem) {
  auto dir = fresh_dir("instruct_slides_errors");
  auto job = report_job(dir, "bad", 1);
  job.task_config<train::InstructConfig>().slide_encoder = "";
  try {
    train::train(job);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_HAS(e.what(), "instruct.slide_encoder is empty");
    EXPECT_HAS(e.what(), slide_report_set().slides.train_csv);
  }
  fs::remove_all(dir);
}

// ---- real `pathvlm train` under mpirun ----------------------------------------------------------------

// Slide bags through the frozen encoder, projector and LLM all training (a fresh tiny LLaMA): 1 vs 2 vs 3 ranks and
// accumulation compute the same steps.
TEST(InstructSlidesMultiRank, WorldSizesAgreeWithOneRank) {
  std::string why;
  if (!tools_available(&why)) GTEST_SKIP() << why;
  auto dir = fresh_dir("instruct_slides_equiv");
  auto job = report_job(dir, "unused", 6);
  job.train.freeze.clear();
  job.log.every = 1;
  job.checkpoint.every_steps = 6;
  job.task_config<train::InstructConfig>().language_model = "tiny";
  job.task_config<train::InstructConfig>().tokenizer = slide_report_set().tokenizer;
  job.task_config<train::InstructConfig>().eval = {};
  const auto config = write_config(dir, job);
  ASSERT_NO_FATAL_FAILURE(launch_world_variants(dir, config));
  const auto weights = [&](const std::string& run) {
    return load_all(dir + "/" + run + "/checkpoints/step_00000006/model.safetensors");
  };
  const auto reference = weights("ref");
  const auto ref_losses = logged_losses(dir + "/ref/metrics.jsonl");
  ASSERT_EQ(ref_losses.size(), 6u);
  for (size_t i = 1; i < world_variants().size(); ++i) {
    const auto& name = world_variants()[i].name;
    EXPECT_LE(max_relative_error(weights(name), reference), 1e-5) << name;
    const auto losses = logged_losses(dir + "/" + name + "/metrics.jsonl");
    ASSERT_EQ(losses.size(), 6u) << name;
    EXPECT_NEAR(std::stod(losses.at(6)), std::stod(ref_losses.at(6)), 1e-4) << name;
  }
  fs::remove_all(dir);
}
