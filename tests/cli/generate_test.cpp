// `pathvlm generate` end to end (the real program) on an exported tiny LLaMA with LLaMA-2's tokenizer, checked
// against generate::generate run in process on the same model.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cli_test_util.h"
#include "generate/generate.h"
#include "models/llama/weights.h"
#include "text/conversation.h"
#include "text/sentencepiece_tokenizer.h"

using namespace pathvlm;
namespace fs = std::filesystem;

namespace {

const std::string kTokenizer = std::string(PATHVLM_SHARED_DATA) + "/tokenizers/llama2_tokenizer.model";

#define SKIP_WITHOUT_TOKENIZER() \
  if (!fs::exists(kTokenizer)) GTEST_SKIP() << "shared test data missing: " << kTokenizer

using pathvlm::testing::read_text;
using pathvlm::testing::run_cli;

// A tiny LLaMA over LLaMA-2's 32000 ids, exported with its tokenizer as an HF directory.
struct ExportedModel {
  fs::path dir = fs::temp_directory_path() / ("pathvlm_generate_cli_" + std::to_string(::getpid()));
  models::LlamaForCausalLM model{nullptr};
  ExportedModel() {
    fs::remove_all(dir);
    fs::create_directories(dir);
    auto config = models::llama_preset("tiny");
    config.vocab_size = 32000;
    config.initializer_range = 0.1;
    torch::manual_seed(99);
    model = models::LlamaForCausalLM(config);
    models::export_hf_llama(model, (dir / "model").string(), torch::kFloat32, 1ull << 30, kTokenizer);
  }
  ~ExportedModel() { fs::remove_all(dir); }
};

std::vector<nlohmann::json> json_lines(const std::string& text) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

}  // namespace

TEST(GenerateCli, JsonlMatchesInProcessGeneration) {
  SKIP_WITHOUT_TOKENIZER();
  ExportedModel exported;
  const text::SentencePieceTokenizer tokenizer(kTokenizer);
  const std::vector<std::string> prompts = {"Describe the tissue.", "Hi"};
  const auto r = run_cli("generate --model " + (exported.dir / "model").string() +
                         " --prompt 'Describe the tissue.' Hi --max-new-tokens 6 --format jsonl --device cpu",
                         exported.dir);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("prefill"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tokens/s"), std::string::npos) << r.err;

  generate::GenerateOptions options;
  options.max_new_tokens = 6;
  options.eos_id = tokenizer.eos_id();
  std::vector<std::vector<int64_t>> prompt_ids;
  for (const auto& p : prompts) prompt_ids.push_back(tokenizer.encode(p));
  const auto expected = generate::generate(exported.model, prompt_ids, options,
                                           [&](const std::vector<int64_t>& ids) { return tokenizer.decode(ids); });

  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& line = lines[i];
    for (const char* field : {"prompt", "prompt_ids", "ids", "text", "finish_reason"}) {
      ASSERT_TRUE(line.contains(field)) << field << " missing in " << line.dump();
    }
    EXPECT_EQ(line["prompt"], prompts[i]);
    const auto ids = line["ids"].get<std::vector<int64_t>>();
    const auto given = line["prompt_ids"].get<std::vector<int64_t>>();
    EXPECT_EQ(given.front(), 1);  // BOS
    EXPECT_EQ(given, prompt_ids[i]);
    EXPECT_LE(ids.size(), 6u);
    EXPECT_EQ(ids, expected[i].ids);
    EXPECT_EQ(line["text"], tokenizer.decode(ids));
    EXPECT_EQ(line["finish_reason"], generate::to_string(expected[i].finish));
  }
}

// With --template each prompt is the user turn of that template's generation prompt, and a reply ends at the
// template's end of turn (here vicuna_v1's </s>).
TEST(GenerateCli, TemplateMakesEachPromptAUserTurn) {
  SKIP_WITHOUT_TOKENIZER();
  ExportedModel exported;
  const text::SentencePieceTokenizer tokenizer(kTokenizer);
  const auto r = run_cli("generate --model " + (exported.dir / "model").string() +
                             " --template vicuna_v1 --prompt 'What tissue is this?' --max-new-tokens 5 --format jsonl",
                         exported.dir);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto tmpl = text::ConversationTemplate::named("vicuna_v1");
  const text::Conversation conversation{"p", {{text::Speaker::human, "What tissue is this?"}}};
  const auto prompt = tmpl.generation_prompt(conversation, tokenizer).input_ids;
  generate::GenerateOptions options;
  options.max_new_tokens = 5;
  options.eos_id = tmpl.reply_end_id(tokenizer);
  const auto expected = generate::generate(exported.model, {prompt}, options,
                                           [&](const std::vector<int64_t>& ids) { return tokenizer.decode(ids); });
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 1u) << r.out;
  EXPECT_EQ(lines[0]["prompt_ids"].get<std::vector<int64_t>>(), prompt);
  EXPECT_EQ(lines[0]["ids"].get<std::vector<int64_t>>(), expected[0].ids);
  EXPECT_EQ(tokenizer.decode(prompt), tmpl.system() + " USER: What tissue is this? ASSISTANT:");

  const auto bad = run_cli("generate --model " + (exported.dir / "model").string() +
                               " --template vicuna_v1 --prompt '<image> What is it?' --max-new-tokens 2",
                           exported.dir);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("prompt 1 holds <image>: give the images with --image"), std::string::npos) << bad.err;
}

TEST(GenerateCli, TextFormatFromAJsonlPromptsFileWithStopStrings) {
  SKIP_WITHOUT_TOKENIZER();
  ExportedModel exported;
  const auto prompts_file = exported.dir / "prompts.jsonl";
  std::ofstream(prompts_file) << R"({"prompt": "###Human: What is shown?\n###Assistant:"})" << "\n\n"
                              << R"({"prompt": "Hello"})" << "\n";
  const auto r = run_cli("generate --model " + (exported.dir / "model").string() + " --prompts-file " +
                         prompts_file.string() +
                         " --max-new-tokens 4 --temperature 0.7 --top-p 0.9 --seed 5 --stop '###' --batch-size 1",
                         exported.dir);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("===== prompt 1/2 =====\n###Human: What is shown?\n###Assistant:\n----- output ("),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("===== prompt 2/2 =====\nHello\n----- output ("), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("2 prompts"), std::string::npos) << r.err;
}

TEST(GenerateCli, ErrorsNameTheProblem) {
  SKIP_WITHOUT_TOKENIZER();
  ExportedModel exported;
  const auto model = (exported.dir / "model").string();
  auto r = run_cli("generate --model " + model + " --max-new-tokens 3", exported.dir);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--prompt"), std::string::npos) << r.err;
  r = run_cli("generate --model " + model + " --prompt x --max-new-tokens 3 --format xml", exported.dir);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("xml"), std::string::npos) << r.err;
  const auto bad = exported.dir / "bad.jsonl";
  std::ofstream(bad) << "{\"text\": \"no prompt field\"}\n";
  r = run_cli("generate --model " + model + " --prompts-file " + bad.string() + " --max-new-tokens 3", exported.dir);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("line 1"), std::string::npos) << r.err;
  r = run_cli("generate --help", exported.dir);
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--prompts-file"), std::string::npos);
}
