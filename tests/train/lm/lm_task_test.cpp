// The `lm` task: a packed row computes what its documents compute alone, the tiny LLaMA learns the built-in
// corpus well below its unigram entropy, and lm.pretrained loads an export through init_from (frozen weights
// recorded as external in partial checkpoints).
#include "train/lm/task.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "text/sentencepiece_tokenizer.h"
#include "train/trainer.h"
#include "../train_test_util.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using namespace pathvlm::testing;

namespace {

// The last value of `key` in a run's metrics.jsonl.
double last_metric(const std::string& metrics, const std::string& key) {
  std::ifstream in(metrics);
  std::string line;
  double value = std::nan("");
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.contains(key)) value = j[key].get<double>();
  }
  return value;
}

}  // namespace

TEST(LmTask, APackedRowComputesWhatItsDocumentsComputeAlone) {
  torch::manual_seed(3);
  models::LlamaForCausalLM lm(models::llama_preset("tiny"));
  lm->eval();
  torch::NoGradGuard no_grad;
  // Row: the end of document A (continued from an earlier sequence), document B, the start of document C.
  const std::vector<int64_t> a = {40, 41, 42, 2}, b = {1, 50, 51, 52, 53, 2}, c = {1, 60, 61};
  std::vector<std::vector<int64_t>> docs = {{1, 30, 31, 32, 33, 34, 35, 36}, {}, b, c};
  docs[0].insert(docs[0].end(), a.begin(), a.end());  // 8 + 4 tokens: the row starts 4 tokens before A's end
  data::PackedSequences packed(docs, /*seq_len=*/8);
  ASSERT_GE(packed.size(), 2);
  data::BatchRequest request;
  request.records = {1};
  auto batch = packed.batch(request);
  models::LlamaInputs inputs;
  inputs.position_ids = batch.at("position_ids");
  inputs.attention_mask = data::packed_attention_mask(batch.at("document_ids"));
  auto logits = lm->forward(batch.at("input_ids"), inputs)[0];  // [8, vocab]

  auto alone = [&](const std::vector<int64_t>& tokens) { return lm->forward(torch::tensor(tokens).view({1, -1}))[0]; };
  // Row 1 is stream [8, 16]: A's last 4 tokens, B's first 4 tokens (the row's inputs are 8 tokens).
  EXPECT_TRUE(torch::allclose(logits.narrow(0, 0, 4), alone(a), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(logits.narrow(0, 4, 4), alone({1, 50, 51, 52}), 1e-5, 1e-5));
  // Without the mask and positions the same row computes something else (the check above is not vacuous).
  auto plain = lm->forward(batch.at("input_ids"))[0];
  EXPECT_FALSE(torch::allclose(plain.narrow(0, 4, 4), alone({1, 50, 51, 52}), 1e-3, 1e-3));
}

TEST(LmTask, TheTinyLlamaLearnsTheCorpusWellBelowItsUnigramEntropy) {
  auto dir = fresh_dir("lm_learn");
  auto job = tiny_lm_job(dir, "learn", /*seed=*/5, /*steps=*/150);
  auto& lm = job.task_config<train::LmConfig>();
  lm.data.eval = {tiny_text_corpus().eval_jsonl};
  job.optim.lr = 1e-2;
  job.optim.warmup_steps = 10;
  job.eval.every = 150;
  job.log.every = 50;
  ASSERT_EQ(train::train(job), 0);
  const double eval_loss = last_metric(dir + "/learn/metrics.jsonl", "eval/loss");
  const double perplexity = last_metric(dir + "/learn/metrics.jsonl", "eval/perplexity");
  const double accuracy = last_metric(dir + "/learn/metrics.jsonl", "eval/accuracy");

  // The unigram entropy of the training targets (nats per token): what a model without context reaches.
  text::SentencePieceTokenizer tokenizer(lm.tokenizer);
  auto packed = data::PackedSequences::tokenize(data::read_text_corpus(lm.data.train), tokenizer, lm.seq_len);
  std::map<int64_t, double> counts;
  double total = 0;
  for (int64_t k = 0; k < packed.size(); ++k) {
    const auto tokens = packed.tokens(k), doc = packed.document_of(k);
    for (int64_t i = 0; i < lm.seq_len; ++i)
      if (doc[i + 1] == doc[i]) counts[tokens[i + 1]] += 1, total += 1;
  }
  double entropy = 0;
  for (const auto& [token, n] : counts) entropy -= n / total * std::log(n / total);
  ASSERT_GT(entropy, 3.0);  // a real spread of tokens, not a degenerate corpus
  EXPECT_LT(eval_loss, 0.6 * entropy) << "unigram entropy " << entropy;
  EXPECT_NEAR(perplexity, std::exp(eval_loss), 1e-6 * perplexity);
  EXPECT_GT(accuracy, 0.3);
  fs::remove_all(dir);
}

TEST(LmTask, PretrainedLoadsAnExportThroughInitFromAndFrozenWeightsStayExternal) {
  auto dir = fresh_dir("lm_pretrained");
  auto first = tiny_lm_job(dir, "first", /*seed=*/1, /*steps=*/3);
  ASSERT_EQ(train::train(first), 0);
  const std::string exported = dir + "/first/export";
  for (const char* file : {"config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(exported + "/" + file)) << file;
  const auto weights = load_all(exported + "/model.safetensors");

  // From the export: its shape and tokenizer, its weights (lr 0 keeps them), the frozen layer 0 left out of the
  // checkpoint and recorded by source.
  auto second = tiny_lm_job(dir, "second", /*seed=*/2, /*steps=*/1);
  auto& lm = second.task_config<train::LmConfig>();
  lm.pretrained = exported;
  lm.tokenizer = "";
  second.optim.lr = 0;
  second.optim.weight_decay = 0;
  second.train.freeze = {"model.layers.0"};
  second.checkpoint.every_steps = 1;
  ASSERT_EQ(train::train(second), 0);
  const auto after = load_all(dir + "/second/export/model.safetensors");
  ASSERT_EQ(after.size(), weights.size());
  for (const auto& [name, t] : weights) EXPECT_TRUE(torch::equal(t, after.at(name))) << name;
  const std::string step = dir + "/second/checkpoints/step_00000001";
  const auto own = load_all(step + "/model.safetensors");
  for (const auto& [name, t] : own) EXPECT_NE(name.rfind("model.layers.0.", 0), 0u) << name;
  EXPECT_LT(own.size(), weights.size());
  auto state = nlohmann::json::parse(read_text(step + "/trainer_state.json"));
  EXPECT_EQ(state.at("external").at("tensors").size(), weights.size() - own.size());
  EXPECT_HAS(read_text(dir + "/second/log.txt"), "init_from " + exported);
  fs::remove_all(dir);
}

// A tokenizer.json without BOS (Qwen's kind): documents are packed as text + EOS, and the export carries the file
// with a config whose bos_token_id is null.
TEST(LmTask, TrainsAndExportsWithATokenizerJsonThatHasNoBos) {
  auto dir = fresh_dir("lm_tokenizer_json");
  auto job = tiny_lm_job(dir, "bytes", /*seed=*/3, /*steps=*/3);
  auto& lm = job.task_config<train::LmConfig>();
  lm.tokenizer = write_byte_level_tokenizer(dir + "/tokenizer");
  const auto tokenizer = train::make_lm_tokenizer(lm);
  EXPECT_EQ(tokenizer->bos_id(), -1);
  EXPECT_EQ(tokenizer->eos_id(), 256);
  const auto documents = data::read_text_corpus(lm.data.train);
  auto packed = data::PackedSequences::tokenize(documents, *tokenizer, lm.seq_len);
  const auto first = packed.tokens(0);
  EXPECT_EQ(first[0], static_cast<unsigned char>(documents[0].text[0]));  // the text's first byte, no BOS
  const auto doc = packed.document_of(0);
  for (int64_t i = 0; i < lm.seq_len; ++i) {  // each document ends with EOS
    if (doc[i + 1] != doc[i]) {
      EXPECT_EQ(first[i], 256) << i;
    }
  }

  ASSERT_EQ(train::train(job), 0);
  const std::string exported = dir + "/bytes/export";
  EXPECT_TRUE(fs::exists(exported + "/tokenizer.json"));
  EXPECT_FALSE(fs::exists(exported + "/tokenizer.model"));
  std::ifstream config_file(exported + "/config.json");
  const auto config = nlohmann::json::parse(config_file);
  EXPECT_TRUE(config["bos_token_id"].is_null());
  EXPECT_EQ(config["eos_token_id"], 256);
  EXPECT_EQ(config["vocab_size"], 257);
  EXPECT_EQ(text::open_tokenizer(exported)->encode("ab", true), (std::vector<int64_t>{'a', 'b'}));
  fs::remove_all(dir);
}
