// generate() on a tiny random LLaMA with LLaMA-2's vocabulary: the KV cache against recomputation, a padded batch
// against prompts one by one, EOS and stop strings (one spanning tokens), seeds, top_p and the length limit.
// generate_from_embeds(): the embeddings of token prompts generate what the tokens do; LLaVA prompts with image
// rows spliced in, cached against recomputed and batched against one by one.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "generate/generate.h"
#include "models/llama/config.h"
#include "models/llava/model.h"
#include "text/sentencepiece_tokenizer.h"
#include "test_util.h"

using namespace pathvlm;
using pathvlm::testing::error_of;

namespace {

const std::string kTokenizer = std::string(PATHVLM_SHARED_DATA) + "/tokenizers/llama2_tokenizer.model";

#define SKIP_WITHOUT_TOKENIZER()      \
  if (!std::filesystem::exists(kTokenizer)) \
  GTEST_SKIP() << "shared test data missing: " << kTokenizer << " (see ../shared/data/README.md)"

// 3 layers, GQA 4/2, LLaMA-2's 32000 ids so the shared tokenizer decodes what it generates. A wider init than
// HF's 0.02 spreads the logits, so greedy picks are far from ties and the random model does not just repeat.
models::LlamaForCausalLM tiny_model() {
  auto config = models::llama_preset("tiny");
  config.vocab_size = 32000;
  config.num_hidden_layers = 3;
  config.initializer_range = 0.1;
  torch::manual_seed(1234);
  return models::LlamaForCausalLM(config);
}

struct Fixture {
  models::LlamaForCausalLM model = tiny_model();
  text::SentencePieceTokenizer tokenizer{kTokenizer};
  generate::DecodeFn decode = [this](const std::vector<int64_t>& ids) { return tokenizer.decode(ids); };
  std::vector<std::vector<int64_t>> prompts = {
      tokenizer.encode("Describe the tissue."),
      tokenizer.encode("Hi"),
      tokenizer.encode("A lymph node with metastatic carcinoma, described by a pathologist in a few words:"),
  };
};

Fixture& fixture() {
  static auto* f = new Fixture();
  return *f;
}

generate::GenerateOptions greedy(int64_t new_tokens) {
  generate::GenerateOptions options;
  options.max_new_tokens = new_tokens;
  return options;
}

generate::GenerateOptions sampled(int64_t new_tokens, uint64_t seed) {
  auto options = greedy(new_tokens);
  options.temperature = 1.0;
  options.top_p = 0.9;
  options.seed = seed;
  return options;
}

std::vector<generate::Generation> one_by_one(const std::vector<std::vector<int64_t>>& prompts,
                                             const generate::GenerateOptions& options) {
  auto& f = fixture();
  std::vector<generate::Generation> out;
  for (const auto& p : prompts) out.push_back(generate::generate(f.model, {p}, options, f.decode).front());
  return out;
}

void expect_same(const std::vector<generate::Generation>& a, const std::vector<generate::Generation>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].ids, b[i].ids) << "prompt " << i;
    EXPECT_EQ(a[i].text, b[i].text) << "prompt " << i;
    EXPECT_EQ(a[i].finish, b[i].finish) << "prompt " << i;
  }
}

}  // namespace

TEST(Generate, CacheEqualsRecomputation) {
  SKIP_WITHOUT_TOKENIZER();
  auto& f = fixture();
  auto options = greedy(20);
  const auto cached = generate::generate(f.model, f.prompts, options, f.decode);
  options.use_cache = false;
  const auto recomputed = generate::generate(f.model, f.prompts, options, f.decode);
  expect_same(cached, recomputed);
  for (const auto& g : cached) {
    EXPECT_EQ(g.ids.size(), 20u);
    EXPECT_EQ(g.finish, generate::FinishReason::length);
    EXPECT_EQ(g.text, f.tokenizer.decode(g.ids));
  }
}

TEST(Generate, PaddedBatchEqualsOneByOneGreedy) {
  SKIP_WITHOUT_TOKENIZER();
  auto& f = fixture();
  const auto options = greedy(16);
  expect_same(generate::generate(f.model, f.prompts, options, f.decode), one_by_one(f.prompts, options));
}

TEST(Generate, PaddedBatchEqualsOneByOneSampled) {
  SKIP_WITHOUT_TOKENIZER();
  auto& f = fixture();
  const auto options = sampled(16, 77);
  const auto batched = generate::generate(f.model, f.prompts, options, f.decode);
  expect_same(batched, one_by_one(f.prompts, options));
  // A prompt's samples depend on its seed and tokens only, not on its neighbours in the batch.
  const auto reordered = generate::generate(f.model, {f.prompts[2], f.prompts[0]}, options, f.decode);
  EXPECT_EQ(reordered[0].ids, batched[2].ids);
  EXPECT_EQ(reordered[1].ids, batched[0].ids);
}

TEST(Generate, RowsFinishingEarlyDoNotDisturbTheOthers) {
  SKIP_WITHOUT_TOKENIZER();
  auto& f = fixture();
  // EOS := the 4th token prompt 0 generates, so prompt 0 stops early while the others go on (or stop too).
  const auto free_run = generate::generate(f.model, {f.prompts[0]}, greedy(12), f.decode).front();
  auto options = greedy(12);
  options.eos_id = free_run.ids[3];
  const auto batched = generate::generate(f.model, f.prompts, options, f.decode);
  EXPECT_LT(batched[0].ids.size(), 12u);
  expect_same(batched, one_by_one(f.prompts, options));
}

TEST(Generate, EosStopsARow) {
  SKIP_WITHOUT_TOKENIZER();
  auto& f = fixture();
  const auto free_run = generate::generate(f.model, {f.prompts[2]}, greedy(20), f.decode).front();
  const int64_t eos = free_run.ids[6];
  const auto first = std::find(free_run.ids.begin(), free_run.ids.end(), eos) - free_run.ids.begin();
  auto options = greedy(20);
  options.eos_id = eos;
  const auto stopped = generate::generate(f.model, {f.prompts[2]}, options, f.decode).front();
  EXPECT_EQ(stopped.finish, generate::FinishReason::eos);
  // The ids keep the EOS token, as Hugging Face's generate output does.
  EXPECT_EQ(stopped.ids, std::vector<int64_t>(free_run.ids.begin(), free_run.ids.begin() + first + 1));
  EXPECT_EQ(stopped.text, f.tokenizer.decode(stopped.ids));
}

TEST(Generate, StopStringSpanningTokensStopsAndCutsTheText) {
  SKIP_WITHOUT_TOKENIZER();
  auto& f = fixture();
  const auto options = sampled(24, 5);
  const auto free_run = generate::generate(f.model, {f.prompts[0]}, options, f.decode).front();
  const auto& ids = free_run.ids;
  auto decode_first = [&](size_t n) { return f.tokenizer.decode(std::vector<int64_t>(ids.begin(), ids.begin() + n)); };

  // A stop string made of two consecutive generated tokens: absent from the text before the second one, and in
  // neither token alone, so only a match over the decoded text of several tokens can find it.
  std::string stop;
  size_t second = 0;
  for (size_t i = 1; i + 1 < ids.size() && stop.empty(); ++i) {
    const auto candidate = f.tokenizer.decode({ids[i], ids[i + 1]});
    if (candidate.size() < 3 || decode_first(i + 1).find(candidate) != std::string::npos) continue;
    if (f.tokenizer.decode({ids[i]}).find(candidate) != std::string::npos) continue;
    if (f.tokenizer.decode({ids[i + 1]}).find(candidate) != std::string::npos) continue;
    if (decode_first(i + 2).find(candidate) == std::string::npos) continue;
    stop = candidate;
    second = i + 1;
  }
  ASSERT_FALSE(stop.empty()) << "no two consecutive tokens make a usable stop string in: " << free_run.text;

  auto with_stop = options;
  with_stop.stop = {"never appears \x01", stop};
  const auto stopped = generate::generate(f.model, {f.prompts[0]}, with_stop, f.decode).front();
  EXPECT_EQ(stopped.finish, generate::FinishReason::stop);
  // The ids end with the token that completed the stop string; the text ends before it.
  EXPECT_EQ(stopped.ids, std::vector<int64_t>(ids.begin(), ids.begin() + second + 1));
  const auto full = decode_first(second + 1);
  EXPECT_EQ(stopped.text, full.substr(0, full.find(stop)));
  EXPECT_EQ(stopped.text.find(stop), std::string::npos);

  // In a batch, the row with the stop string stops there and the others are unaffected.
  const auto batched = generate::generate(f.model, f.prompts, with_stop, f.decode);
  expect_same(batched, one_by_one(f.prompts, with_stop));
  EXPECT_EQ(batched[0].ids, stopped.ids);
}

TEST(Generate, SeededSamplingRepeatsAndSeedsDiffer) {
  SKIP_WITHOUT_TOKENIZER();
  auto& f = fixture();
  const auto a = generate::generate(f.model, f.prompts, sampled(12, 1), f.decode);
  const auto b = generate::generate(f.model, f.prompts, sampled(12, 1), f.decode);
  const auto c = generate::generate(f.model, f.prompts, sampled(12, 2), f.decode);
  expect_same(a, b);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NE(a[i].ids, c[i].ids) << "prompt " << i;
}

TEST(Generate, TinyTopPIsGreedy) {
  SKIP_WITHOUT_TOKENIZER();
  auto& f = fixture();
  auto options = sampled(12, 3);
  options.top_p = 1e-9;
  expect_same(generate::generate(f.model, f.prompts, options, f.decode),
              generate::generate(f.model, f.prompts, greedy(12), f.decode));
}

TEST(Generate, StatsCountPromptAndGeneratedTokens) {
  SKIP_WITHOUT_TOKENIZER();
  auto& f = fixture();
  generate::GenerationStats stats;
  const auto out = generate::generate(f.model, f.prompts, greedy(5), f.decode, &stats);
  int64_t prompt_tokens = 0;
  for (const auto& p : f.prompts) prompt_tokens += static_cast<int64_t>(p.size());
  EXPECT_EQ(stats.prefill_tokens, prompt_tokens);
  EXPECT_EQ(stats.decode_tokens, 3 * 4);  // the first token of each comes from the prefill
  EXPECT_GT(stats.prefill_seconds, 0.0);
  EXPECT_GT(stats.decode_seconds, 0.0);
  for (const auto& g : out) EXPECT_EQ(g.ids.size(), 5u);
}

TEST(Generate, RestoresTheTrainingFlag) {
  SKIP_WITHOUT_TOKENIZER();
  auto& f = fixture();
  f.model->train();
  generate::generate(f.model, {f.prompts[1]}, greedy(2));
  EXPECT_TRUE(f.model->is_training());
  f.model->eval();
  generate::generate(f.model, {f.prompts[1]}, greedy(2));
  EXPECT_FALSE(f.model->is_training());
}

TEST(Generate, WithoutDecodeTheTextIsEmpty) {
  SKIP_WITHOUT_TOKENIZER();
  auto& f = fixture();
  const auto out = generate::generate(f.model, {f.prompts[1]}, greedy(3));
  EXPECT_EQ(out[0].ids.size(), 3u);
  EXPECT_TRUE(out[0].text.empty());
}

TEST(Generate, RefusesBadInputs) {
  SKIP_WITHOUT_TOKENIZER();
  auto& f = fixture();
  EXPECT_NE(error_of([&] { generate::generate(f.model, {}, greedy(3)); }).find("no prompts"),
            std::string::npos);
  EXPECT_NE(error_of([&] { generate::generate(f.model, {{1, 40000}}, greedy(3)); }).find("40000"),
            std::string::npos);
  EXPECT_NE(error_of([&] { generate::generate(f.model, {{}}, greedy(3)); }).find("no tokens"),
            std::string::npos);
  EXPECT_NE(error_of([&] { generate::generate(f.model, {{1}}, greedy(0)); }).find("max_new_tokens"),
            std::string::npos);
  auto with_stop = greedy(3);
  with_stop.stop = {"###"};
  EXPECT_NE(error_of([&] { generate::generate(f.model, {{1}}, with_stop); }).find("decode"),
            std::string::npos);
}

namespace {

// Left-padded token prompts as the model's embeddings and keep flags.
generate::PromptEmbeds embeds_of(models::LlamaForCausalLM& model, const std::vector<std::vector<int64_t>>& prompts) {
  size_t longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, p.size());
  const auto B = static_cast<int64_t>(prompts.size()), L = static_cast<int64_t>(longest);
  auto tokens = torch::zeros({B, L}, torch::kLong);
  auto keep = torch::zeros({B, L}, torch::kBool);
  for (int64_t b = 0; b < B; ++b) {
    const auto n = static_cast<int64_t>(prompts[b].size());
    tokens[b].narrow(0, L - n, n).copy_(torch::tensor(prompts[b], torch::kLong));
    keep[b].narrow(0, L - n, n).fill_(true);
  }
  torch::NoGradGuard no_grad;
  return {model->embed(tokens), keep};
}

}  // namespace

TEST(GenerateFromEmbeds, EmbeddingsOfTokenPromptsGenerateWhatTheTokensDo) {
  SKIP_WITHOUT_TOKENIZER();
  auto& f = fixture();
  const auto embeds = embeds_of(f.model, f.prompts);
  for (const auto& options : {greedy(12), sampled(12, 5)}) {
    generate::GenerationStats from_tokens, from_embeds;
    expect_same(generate::generate_from_embeds(f.model, embeds, options, f.decode, &from_embeds),
                generate::generate(f.model, f.prompts, options, f.decode, &from_tokens));
    EXPECT_EQ(from_embeds.prefill_tokens, from_tokens.prefill_tokens);
    EXPECT_EQ(from_embeds.decode_tokens, from_tokens.decode_tokens);
  }
  auto recompute = greedy(12);
  recompute.use_cache = false;
  expect_same(generate::generate_from_embeds(f.model, embeds, recompute, f.decode),
              generate::generate(f.model, f.prompts, greedy(12), f.decode));
}

TEST(GenerateFromEmbeds, LlavaPromptsWithImagesCachedEqualsRecomputedAndBatchedEqualsOneByOne) {
  SKIP_WITHOUT_TOKENIZER();
  auto& f = fixture();
  models::ClipModelConfig clip_config;  // tiny: 64 px, 16 patch rows per image
  clip_config.vocab_size = 100;
  clip_config.context_length = 8;
  torch::manual_seed(5);
  models::ClipModel clip(clip_config);
  models::LlavaModel llava(models::LlavaConfig{}, clip, f.model);
  const int64_t S = models::kImageSentinel;
  const auto text = f.tokenizer.encode("What is shown?", /*add_bos=*/false);
  std::vector<std::vector<int64_t>> prompts = {{1, S}, {1}, {1, S, S}};
  prompts[0].insert(prompts[0].end(), text.begin(), text.end());
  prompts[1].insert(prompts[1].end(), text.begin(), text.end());
  prompts[2].insert(prompts[2].end(), text.begin(), text.begin() + 2);
  torch::NoGradGuard no_grad;
  const auto rows = llava->project(llava->image_features(torch::randn({3, 3, 64, 64})));
  const auto in = llava->prompt_embeds(prompts, rows);
  const generate::PromptEmbeds batch{in.embeds, in.attention_mask};
  const auto cached = generate::generate_from_embeds(f.model, batch, greedy(10), f.decode);
  auto recompute = greedy(10);
  recompute.use_cache = false;
  expect_same(cached, generate::generate_from_embeds(f.model, batch, recompute, f.decode));
  // Each prompt alone with its own images: images 0 | none | 1, 2.
  const std::vector<torch::Tensor> own_rows = {rows.narrow(0, 0, 1), rows.narrow(0, 0, 0), rows.narrow(0, 1, 2)};
  std::vector<generate::Generation> alone;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto single = llava->prompt_embeds({prompts[i]}, own_rows[i]);
    alone.push_back(generate::generate_from_embeds(f.model, {single.embeds, single.attention_mask}, greedy(10),
                                                   f.decode)
                        .front());
  }
  expect_same(cached, alone);
  // The images matter: without them the text-only part generates something else.
  EXPECT_NE(cached[0].ids, cached[1].ids);
}

TEST(GenerateFromEmbeds, RefusesBadEmbeddings) {
  SKIP_WITHOUT_TOKENIZER();
  auto& f = fixture();
  auto right_padded = embeds_of(f.model, {{1, 2, 3}, {1, 2}});
  right_padded.keep = right_padded.keep.flip({1});
  EXPECT_NE(error_of([&] { generate::generate_from_embeds(f.model, right_padded, greedy(2)); }).find("left-padded"),
            std::string::npos);
  auto narrow = embeds_of(f.model, {{1, 2}});
  narrow.embeds = narrow.embeds.narrow(2, 0, 8);
  EXPECT_NE(error_of([&] { generate::generate_from_embeds(f.model, narrow, greedy(2)); }).find("prompt embeddings"),
            std::string::npos);
  auto short_keep = embeds_of(f.model, {{1, 2}});
  short_keep.keep = short_keep.keep.narrow(1, 0, 1);
  EXPECT_NE(error_of([&] { generate::generate_from_embeds(f.model, short_keep, greedy(2)); }).find("keep flags"),
            std::string::npos);
}
