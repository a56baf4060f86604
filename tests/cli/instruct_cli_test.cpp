// The instruct commands as a user runs them: `instruct inspect`, and the README's demo (synth instruct, the LLM's
// pretraining, phase 1, phase 2 on 2 ranks) followed by `generate --image`, `export --format hf-llava` and the same
// question asked of the export.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/cli_test_util.h"
#include "instruct_data_util.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace pathvlm::testing;

namespace {

// The lines of `text` that are not log lines.
std::vector<std::string> output_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] != '[') lines.push_back(line);
  return lines;
}


// Runs `command` (a shell fragment: the program is $B) in `dir`; returns its exit status, output in `log`.
int run_in(const fs::path& dir, const std::string& command, const std::string& log) {
  const std::string line = "cd " + dir.string() + " && B=" + PATHVLM_BINARY + " && " + command + " > " + log + " 2>&1";
  const int raw = std::system(line.c_str());
  return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
}

}  // namespace

TEST(InstructCli, InspectMarksTheSupervisedSpansAndPrintsIdsAndLabels) {
  const auto& data = tiny_instruct_data();
  TempDir dir("instruct_inspect");
  const auto config = dir.write("job.yaml", "run: {task: instruct}\ninstruct:\n  vision_tower: tiny\n"
                                            "  vision_image_size: 32\n  language_model: tiny\n  tokenizer: " +
                                                data.tokenizer + "\n  template: pathasst\n  max_length: 256\n");
  auto text = run_cli("instruct inspect " + data.phase2 + " --config " + config + " --limit 2", dir.path);
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("### User: <image>"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("### Assistant:[["), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("\n###]]"), std::string::npos) << text.out;  // the stop is supervised
  EXPECT_NE(text.err.find(std::to_string(data.phase2_records) + " records, 0 malformed"), std::string::npos) << text.err;

  auto jsonl = run_cli("instruct inspect " + data.phase2 + " --config " + config + " --limit 3 --format jsonl", dir.path);
  ASSERT_EQ(jsonl.status, 0) << jsonl.err;
  const auto lines = output_lines(jsonl.out);
  ASSERT_EQ(lines.size(), 3u) << jsonl.out;
  for (const auto& line : lines) {
    const auto j = nlohmann::json::parse(line);
    const auto ids = j.at("input_ids").get<std::vector<int64_t>>();
    const auto labels = j.at("labels").get<std::vector<int64_t>>();
    ASSERT_EQ(ids.size(), labels.size());
    EXPECT_EQ(std::count(ids.begin(), ids.end(), -200), 1) << line;  // one image, as LLaVA writes it
    EXPECT_EQ(labels.front(), -100);
    EXPECT_GT(std::count_if(labels.begin(), labels.end(), [](int64_t l) { return l >= 0; }), 0) << line;
  }
  auto bad = run_cli("instruct inspect " + data.phase2 + " --config " + config + " --format xml", dir.path);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("--format 'xml'"), std::string::npos) << bad.err;
}

// The README's instruct demo, word for word apart from the folder: the phase-1 caption loss falls; after phase 2 the
// held-out closed questions are answered above chance and the open ones far better than by the phase-1 model; the
// trained model chats about an image file and exports for transformers.
TEST(InstructCli, DemoPairLearnsThenChatsAboutAnImageAndExports) {
  if (std::string(PATHVLM_MPIRUN).empty()) GTEST_SKIP() << "mpirun not found";
  TempDir dir("instruct_demo");
  const std::string configs = std::string(PATHVLM_SOURCE_DIR) + "/configs/instruct/";
  const std::string mpi = std::string(PATHVLM_MPIRUN) + " -np 2 --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1";
  ASSERT_EQ(run_in(dir.path, "$B synth instruct --out demo/instruct --size 64 --quiet", "synth.log"), 0)
      << read_text(dir.path / "synth.log");
  for (const char* step : {"demo_llm", "demo_phase1", "demo_phase2"})
    ASSERT_EQ(run_in(dir.path, mpi + " $B train " + configs + step + ".yaml", std::string(step) + ".log"), 0)
        << read_text(dir.path / (std::string(step) + ".log"));

  const auto phase1 = dir.path / "runs/instruct_demo_phase1/metrics.jsonl";
  std::istringstream in(read_text(phase1));
  double first_loss = -1, last_loss = -1;
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("train/loss")) continue;
    if (first_loss < 0) first_loss = j["train/loss"].get<double>();
    last_loss = j["train/loss"].get<double>();
  }
  ASSERT_GT(first_loss, 0) << read_text(phase1);
  EXPECT_LT(last_loss, 0.5 * first_loss) << "phase 1 did not learn";
  const auto p1 = last_record_with(phase1, "eval/vqa_open_f1");
  const auto p2 = last_record_with(dir.path / "runs/instruct_demo_phase2/metrics.jsonl", "eval/vqa_open_f1");
  ASSERT_FALSE(p1.is_null() || p2.is_null());
  EXPECT_GE(p2["eval/vqa_closed_accuracy_quilt"].get<double>(), 0.85) << p2.dump();  // chance: 0.5
  EXPECT_GE(p2["eval/vqa_closed_accuracy_llava_med"].get<double>(), 0.85) << p2.dump();
  EXPECT_GT(p2["eval/vqa_open_f1"].get<double>(), p1["eval/vqa_open_f1"].get<double>() + 0.5) << p1.dump() << p2.dump();
  EXPECT_TRUE(p2.contains("eval/fewshot_k2_accuracy") && p2.contains("eval/knn_k2_accuracy")) << p2.dump();

  // Chat about a held-out tile: the reply names its class, as the open questions' answers do.
  const auto question = nlohmann::json::parse(output_lines(read_text(dir.path / "demo/instruct/eval/questions.jsonl"))[1]);
  ASSERT_EQ(question["answer_type"], "OPEN");
  ASSERT_EQ(run_in(dir.path,
                   "$B generate --model runs/instruct_demo_phase2 --image demo/instruct/tiles/" +
                       question["image"].get<std::string>() + " --prompt '" + question["text"].get<std::string>() +
                       "' --max-new-tokens 16 --format jsonl",
                   "chat.jsonl"),
            0)
      << read_text(dir.path / "chat.jsonl");
  const auto chat = nlohmann::json::parse(output_lines(read_text(dir.path / "chat.jsonl")).at(0));
  std::string reply = chat["text"].get<std::string>(), answer = question["answer"].get<std::string>();
  std::transform(reply.begin(), reply.end(), reply.begin(), ::tolower);
  EXPECT_NE(reply.find(answer), std::string::npos) << "reply '" << reply << "', expected '" << answer << "'";
  EXPECT_EQ(chat["finish_reason"], "eos");

  ASSERT_EQ(run_in(dir.path, "$B export runs/instruct_demo_phase2 --format hf-llava exported", "export.log"), 0)
      << read_text(dir.path / "export.log");
  const auto config = nlohmann::json::parse(read_text(dir.path / "exported/config.json"));
  EXPECT_EQ(config["model_type"], "llava");
  for (const char* file : {"model.safetensors", "tokenizer.model", "preprocessor_config.json", "processor_config.json",
                           "mm_projector.safetensors"})
    EXPECT_TRUE(fs::exists(dir.path / "exported" / file)) << file;

  // The export is a model by itself (tower, projector, language model, tokenizer): asked the same, it replies the same.
  ASSERT_EQ(run_in(dir.path,
                   "$B generate --model exported --image demo/instruct/tiles/" + question["image"].get<std::string>() +
                       " --prompt '" + question["text"].get<std::string>() + "' --max-new-tokens 16 --format jsonl",
                   "chat_exported.jsonl"),
            0)
      << read_text(dir.path / "chat_exported.jsonl");
  const auto again = nlohmann::json::parse(output_lines(read_text(dir.path / "chat_exported.jsonl")).at(0));
  EXPECT_EQ(again["ids"], chat["ids"]);
  EXPECT_EQ(again["text"], chat["text"]);
}
