// The llama_3 and chatml conversation templates against the real thing: each prompt the template makes, rendered by
// a chat template in @huggingface/jinja and tokenized by the real Hugging Face tokenizers library
// (tests/text/chat_template_reference.js), on LLaMA-3's and Qwen3's tokenizer files (scripts/test_peers.sh):
//   - llama_3 against LLaMA-3's own chat template (from its tokenizer_config.json);
//   - chatml against ChatML as Qwen2 / Qwen2.5 and LLaVA-NeXT's preprocess_qwen write it, and its generation
//     prompts also against Qwen3's own chat template (which adds a thinking block only to a final reply).
// Same prompt string and same ids (images as -200, as LLaVA's tokenizer_image_token gives them), for fixed and random
// conversations; the supervised tokens are exactly each reply and its end-of-turn token.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "peers_util.h"
#include "test_util.h"
#include "text/bpe_tokenizer.h"
#include "text/conversation.h"
#include "text/sentencepiece_tokenizer.h"

using namespace pathvlm;
using nlohmann::json;
using pathvlm::testing::error_of;
using pathvlm::testing::peer_tokenizer;
using pathvlm::testing::peer_tokenizer_dir;

namespace {

// ChatML, as Qwen2 / Qwen2.5 and LLaVA-NeXT's preprocess_qwen render it (the system message given).
const char* kChatml =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

const std::string kLlama3AssistantHeader = "<|start_header_id|>assistant<|end_header_id|>\n\n";

struct Rendered {
  std::string text;
  std::vector<int64_t> ids;
};

json messages_of(const text::ConversationTemplate& tmpl, const text::Conversation& conversation) {
  json messages = json::array();
  if (!tmpl.system().empty()) messages.push_back({{"role", "system"}, {"content", tmpl.system()}});
  for (const auto& turn : conversation.turns) {
    messages.push_back({{"role", turn.from == text::Speaker::human ? "user" : "assistant"}, {"content", turn.value}});
  }
  return messages;
}

// The reference's rendering of each conversation; `chat_template` empty: the model's own (with thinking off for
// the qwen3 template).
std::vector<Rendered> reference(const std::string& model, const text::ConversationTemplate& tmpl,
                                const std::vector<text::Conversation>& conversations, bool generation,
                                const std::string& chat_template) {
  std::vector<json> records;
  for (const auto& c : conversations) {
    records.push_back({{"messages", messages_of(tmpl, c)}, {"add_generation_prompt", generation}});
    if (!chat_template.empty()) records.back()["chat_template"] = chat_template;
    if (tmpl.name() == "qwen3") records.back()["enable_thinking"] = false;
  }
  std::vector<Rendered> out;
  for (const auto& j :
       pathvlm::testing::run_node_reference("chat_template_reference.js", peer_tokenizer_dir(model), records)) {
    out.push_back({j["text"], j["ids"]});
  }
  return out;
}

text::Conversation conversation(const std::string& id, const std::vector<std::string>& values) {
  text::Conversation c{id, {}};
  for (size_t i = 0; i < values.size(); ++i) {
    c.turns.push_back({i % 2 == 0 ? text::Speaker::human : text::Speaker::gpt, values[i]});
  }
  return c;
}

std::vector<text::Conversation> fixed_conversations() {
  return {
      conversation("single", {"<image>\nWhat tissue is this?", "Colonic mucosa with tubular adenoma."}),
      conversation("multi", {"<image>\nDescribe the slide.", "Invasive ductal carcinoma, grade 2.",
                             "What is the Ki-67 index? Don't guess.", "About 15%; I'm not certain (n=1234567)."}),
      conversation("text-only", {"List three IHC markers for breast cancer.", "ER, PR and HER2."}),
      conversation("image-last", {"Which stain?\n<image>", "H&E."}),
      conversation("two-images", {"<image><image>\nCompare them.", "The left one shows necrosis."}),
      conversation("whitespace", {"  Look closely:\n\n  what do you see?  ", "  Mitoses,\tmany of them.  \n"}),
      conversation("unicode", {"¿Qué tejido es éste? 日本語の質問 😀", "Tejido hepático — hepatocitos normales."}),
  };
}

// Random conversations: words, numbers, punctuation, Unicode and whitespace inside values, images at the start or
// the end of a human turn. Replies start with a word (a chatml reply may not start with a line break).
std::vector<text::Conversation> random_conversations(uint64_t seed, int count) {
  std::mt19937_64 rng(seed);
  const std::vector<std::string> words = {"tumor", "H&E",   "carcinoma", "Ki-67", "12345", "3.14", "don't", "I'M",
                                          "we'll", "(n=7)", "—",         "é",     "naïve", "日本", "😀",     "x",
                                          "CD3+",  "50%",   "grade",     "  ",    "\n",    "\t",   ",",     ".",
                                          "?",     "!!",    "µm",        "Ⅻ",     "ﬁ",     "ß"};
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  auto value = [&]() {
    std::string v = words[pick(8)];  // a word first
    const auto n = 1 + pick(12);
    for (size_t i = 0; i < n; ++i) v += (pick(3) ? " " : "") + words[pick(words.size())];
    return v;
  };
  std::vector<text::Conversation> out;
  for (int k = 0; k < count; ++k) {
    std::vector<std::string> values;
    const auto rounds = 1 + pick(3);
    for (size_t r = 0; r < rounds; ++r) {
      auto question = value();
      if (r == 0 && pick(3) == 0) question = "<image>\n" + question;
      if (r == 0 && pick(5) == 0) question += "\n<image>";
      values.push_back(question);
      values.push_back(value());
    }
    out.push_back(conversation("random-" + std::to_string(k), values));
  }
  return out;
}

// The supervised runs of a sequence: each reply's tokens and its end-of-turn token, nothing else.
void expect_replies_supervised(const text::ConversationTemplate& tmpl, const text::Conversation& conversation,
                               const text::SupervisedSequence& sequence, const text::Tokenizer& tokenizer) {
  std::vector<std::vector<int64_t>> runs;
  bool in_run = false;
  for (size_t i = 0; i < sequence.labels.size(); ++i) {
    const bool supervised = sequence.labels[i] != text::kIgnoreIndex;
    if (supervised && !in_run) runs.emplace_back();
    if (supervised) runs.back().push_back(sequence.labels[i]);
    in_run = supervised;
  }
  std::vector<std::vector<int64_t>> expected;
  for (const auto& turn : conversation.turns) {
    if (turn.from != text::Speaker::gpt) continue;
    auto reply = turn.value;
    if (tmpl.name() == "llama_3") {  // the chat template trims every value
      reply.erase(0, reply.find_first_not_of(" \t\n\r\v\f"));
      reply.erase(reply.find_last_not_of(" \t\n\r\v\f") + 1);
    }
    auto ids = tokenizer.encode(reply, /*add_bos=*/false);
    ids.push_back(tmpl.reply_end_id(tokenizer));
    expected.push_back(ids);
  }
  EXPECT_EQ(runs, expected) << conversation.id;
}

// Training samples and generation prompts of `tmpl` on `model`'s tokenizer equal the reference's rendering with
// `chat_template` ("" = the model's own). `training_suffix`: what the chat template appends to a conversation that
// ends with a reply (LLaMA-3's always opens the assistant's next turn).
void expect_matches_chat_template(const std::string& template_name, const std::string& model,
                                  const std::string& chat_template, const std::string& training_suffix,
                                  bool check_training) {
  const auto tmpl = text::ConversationTemplate::named(template_name);
  const text::BpeTokenizer tokenizer(peer_tokenizer(model));
  auto conversations = fixed_conversations();
  for (auto& c : random_conversations(pathvlm::testing::test_seed(20261206), 60)) conversations.push_back(c);

  if (check_training) {
    const auto rendered = reference(model, tmpl, conversations, /*generation=*/false, chat_template);
    ASSERT_EQ(rendered.size(), conversations.size());
    for (size_t i = 0; i < conversations.size(); ++i) {
      const auto& c = conversations[i];
      ASSERT_EQ(tmpl.problem(c, tokenizer), "") << c.id;
      const auto sequence = tmpl.tokenize(c, tokenizer);
      EXPECT_EQ(text::join_pieces(tmpl.training_pieces(c, tokenizer), tokenizer) + training_suffix, rendered[i].text)
          << c.id;
      auto ids = sequence.input_ids;
      const auto suffix = tokenizer.encode(training_suffix, /*add_bos=*/false);
      ids.insert(ids.end(), suffix.begin(), suffix.end());
      EXPECT_EQ(ids, rendered[i].ids) << c.id;
      expect_replies_supervised(tmpl, c, sequence, tokenizer);
    }
  }

  for (auto& c : conversations) c.turns.pop_back();  // up to the last question
  const auto rendered = reference(model, tmpl, conversations, /*generation=*/true, chat_template);
  ASSERT_EQ(rendered.size(), conversations.size());
  for (size_t i = 0; i < conversations.size(); ++i) {
    const auto& c = conversations[i];
    const auto prompt = tmpl.generation_prompt(c, tokenizer);
    EXPECT_EQ(text::join_pieces(tmpl.generation_pieces(c, tokenizer), tokenizer), rendered[i].text) << c.id;
    EXPECT_EQ(prompt.input_ids, rendered[i].ids) << c.id;
    EXPECT_EQ(prompt.supervised_tokens(), 0) << c.id;
  }
}

}  // namespace

TEST(ChatTemplatePeers, Llama3MatchesLlama3sOwnChatTemplate) {
  SKIP_WITHOUT_PEERS();
  expect_matches_chat_template("llama_3", "llama3", "", kLlama3AssistantHeader, /*check_training=*/true);
}

TEST(ChatTemplatePeers, ChatmlMatchesQwen2sChatml) {
  SKIP_WITHOUT_PEERS();
  expect_matches_chat_template("chatml", "qwen3", kChatml, "", /*check_training=*/true);
}

TEST(ChatTemplatePeers, ChatmlGenerationPromptsMatchQwen3sOwnChatTemplate) {
  SKIP_WITHOUT_PEERS();
  expect_matches_chat_template("chatml", "qwen3", "", "", /*check_training=*/false);
}

// qwen3 is Qwen3's own chat template with thinking off, training samples (the empty thinking block before the final
// reply only, no system message) and generation prompts alike.
TEST(ChatTemplatePeers, Qwen3MatchesQwen3sOwnChatTemplateWithThinkingOff) {
  SKIP_WITHOUT_PEERS();
  expect_matches_chat_template("qwen3", "qwen3", "", "", /*check_training=*/true);
  const text::BpeTokenizer qwen3(peer_tokenizer("qwen3"));
  const auto tmpl = text::ConversationTemplate::named("qwen3");
  EXPECT_EQ(tmpl.reply_end_id(qwen3), 151645);  // <|im_end|>
  EXPECT_EQ(tmpl.problem(conversation("t", {"Q", "a</think>b"}), qwen3),
            "reply 1 holds '</think>' (Qwen3's thinking block)");
  EXPECT_EQ(tmpl.problem(conversation("t", {"Q", "\nA"}), qwen3), "reply 1 starts with a line break");
  // The block is not supervised: only the reply and its <|im_end|> are.
  const auto sequence = tmpl.tokenize(conversation("s", {"Q", "A."}), qwen3);
  const auto think = std::find(sequence.input_ids.begin(), sequence.input_ids.end(), 151667);  // <think>
  ASSERT_NE(think, sequence.input_ids.end());
  EXPECT_EQ(sequence.labels[think - sequence.input_ids.begin()], text::kIgnoreIndex);
}

TEST(ChatTemplatePeers, EndsOfTurnAndRefusals) {
  SKIP_WITHOUT_PEERS();
  const text::BpeTokenizer llama3(peer_tokenizer("llama3")), qwen3(peer_tokenizer("qwen3"));
  const auto llama_3 = text::ConversationTemplate::named("llama_3");
  const auto chatml = text::ConversationTemplate::named("chatml");
  EXPECT_EQ(llama_3.reply_end_id(llama3), 128009);  // <|eot_id|>, not the base model's EOS <|end_of_text|>
  EXPECT_EQ(llama3.eos_id(), 128001);
  EXPECT_EQ(chatml.reply_end_id(qwen3), 151645);  // <|im_end|>
  EXPECT_EQ(text::ConversationTemplate::named("vicuna_v1").reply_end_id(llama3), llama3.eos_id());

  // Qwen has no BOS: chatml starts with <|im_start|>.
  const auto c = conversation("c", {"<image>\nWhat is it?", "Fat."});
  EXPECT_EQ(chatml.tokenize(c, qwen3).input_ids.front(), 151644);

  // A template of another family: the missing marker is named.
  auto msg = error_of([&] { llama_3.tokenize(c, qwen3); });
  EXPECT_NE(msg.find("has no special token '<|start_header_id|>'"), std::string::npos) << msg;
  const std::string llama2_model = std::string(PATHVLM_SHARED_DATA) + "/tokenizers/llama2_tokenizer.model";
  if (std::filesystem::exists(llama2_model)) {
    const text::SentencePieceTokenizer llama2(llama2_model);
    msg = error_of([&] { chatml.tokenize(c, llama2); });
    EXPECT_NE(msg.find("has no special token '<|im_start|>'"), std::string::npos) << msg;
  }

  // Special-token strings in a turn, and a chatml reply that starts with a line break, are unfit samples.
  EXPECT_NE(chatml.problem(conversation("s", {"Say <|im_end|> now", "No."}), qwen3).find("'<|im_end|>'"),
            std::string::npos);
  EXPECT_NE(llama_3.problem(conversation("s", {"Q", "A<|eot_id|>"}), llama3).find("'<|eot_id|>'"), std::string::npos);
  EXPECT_EQ(chatml.problem(conversation("n", {"Q", "\nA"}), qwen3), "reply 1 starts with a line break");
  EXPECT_EQ(llama_3.problem(conversation("n", {"Q", "\nA"}), llama3), "");  // trimmed by the template
  EXPECT_EQ(llama_3.problem(conversation("w", {"Q", " \n "}), llama3), "turn 1 holds only whitespace");
}
