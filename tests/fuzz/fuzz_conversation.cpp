// Conversations through every conversation template on two small tokenizer.json files (byte-level and
// SentencePiece-style, with every template's markers as special tokens). The first input byte picks the template
// and the tokenizer, the rest are the turns (separated by 0x1e, human first). Invariants: a conversation with a
// problem is refused with an Error; otherwise its sequence (or an Error) has one label per id, each the id or
// ignored, one sentinel per image, supervised tokens, and ids equal to tokenizing the prompt string the pieces spell
// the way LLaVA does (split at images, each chunk encoded alone); its generation prompt supervises nothing.
#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "text/bpe_tokenizer.h"
#include "text/conversation.h"

using pathvlm::fuzz::require;
namespace text = pathvlm::text;

namespace {

// The seed tokenizer `seed` (tests/fuzz/corpus/tokenizer_json/) with the templates' markers added, in its own
// folder beside a tokenizer_config.json naming <s> and </s>. Merges whose tokens the seed lacks are dropped (the
// seeds start fuzzing there; not all of them load).
text::BpeTokenizer with_markers(const std::string& seed) {
  auto json = nlohmann::json::parse(
      std::ifstream(std::string(PATHVLM_SOURCE_DIR) + "/tests/fuzz/corpus/tokenizer_json/" + seed));
  const auto& vocab = json["model"]["vocab"];
  auto merges = nlohmann::json::array();
  for (const auto& merge : json["model"]["merges"]) {
    auto pair = merge.is_array() ? merge : nlohmann::json::array();
    if (merge.is_string()) {
      const auto text = merge.get<std::string>();
      const auto space = text.find(' ');
      pair = {text.substr(0, space), text.substr(space + 1)};
    }
    const auto joined = pair[0].get<std::string>() + pair[1].get<std::string>();
    if (vocab.contains(pair[0].get<std::string>()) && vocab.contains(pair[1].get<std::string>()) &&
        vocab.contains(joined))
      merges.push_back(merge);
  }
  json["model"]["merges"] = merges;
  auto& added = json["added_tokens"];
  int64_t next = static_cast<int64_t>(json["model"]["vocab"].size());
  for (const auto& t : added) next = std::max<int64_t>(next, t["id"].get<int64_t>() + 1);
  for (const char* marker : {"<s>", "</s>", "<|im_start|>", "<|im_end|>", "<|start_header_id|>", "<|end_header_id|>",
                             "<|eot_id|>", "[INST]", "[/INST]", "<image>"}) {
    bool present = false;
    for (const auto& t : added) present = present || t["content"] == marker;
    if (present) continue;
    added.push_back({{"id", next++}, {"content", marker}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  const auto dir = pathvlm::fuzz::scratch_dir() / seed;
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << json.dump();
  std::ofstream(dir / "tokenizer_config.json") << R"({"bos_token": "<s>", "eos_token": "</s>"})";
  return text::BpeTokenizer((dir / "tokenizer.json").string());
}

// LLaVA's tokenizer_image_token of a prompt string: chunks between images encoded alone, -200 between them.
std::vector<int64_t> llava_ids(const std::string& prompt, const text::Tokenizer& tok) {
  std::vector<int64_t> ids;
  const std::string image = text::kImagePlaceholder;
  size_t start = 0;
  for (;;) {
    const auto at = prompt.find(image, start);
    const auto chunk = prompt.substr(start, at == std::string::npos ? std::string::npos : at - start);
    if (!chunk.empty()) {
      const auto chunk_ids = tok.encode(chunk, /*add_bos=*/false);
      ids.insert(ids.end(), chunk_ids.begin(), chunk_ids.end());
    }
    if (at == std::string::npos) return ids;
    ids.push_back(text::kImageToken);
    start = at + image.size();
  }
}

void check(const text::ConversationTemplate& tmpl, const text::Conversation& conversation,
           const text::Tokenizer& tok) {
  const bool refused = !tmpl.problem(conversation, tok).empty();
  try {
    const auto pieces = tmpl.training_pieces(conversation, tok);
    require(!refused, "a conversation with a problem was tokenized");
    const auto seq = text::tokenize_pieces(pieces, tok);
    require(seq.labels.size() == seq.input_ids.size(), "labels and ids differ in length");
    for (size_t i = 0; i < seq.labels.size(); ++i) {
      const auto id = seq.input_ids[i];
      require(id == text::kImageToken || (id >= 0 && id < tok.vocab_size()), "an id outside the vocabulary");
      require(seq.labels[i] == text::kIgnoreIndex || seq.labels[i] == id, "a label that is not its id");
    }
    require(seq.images() == text::count_image_placeholders(conversation), "images and placeholders differ");
    require(seq.supervised_tokens() > 0, "a conversation with replies supervises nothing");
    require(seq.input_ids == llava_ids(text::join_pieces(pieces, tok), tok),
            "the ids differ from tokenizing the prompt string");
  } catch (const pathvlm::Error&) {
  }
  auto question = conversation;
  question.turns.pop_back();
  if (question.turns.empty() || !tmpl.problem(question, tok).empty()) return;
  try {
    require(tmpl.generation_prompt(question, tok).supervised_tokens() == 0, "a generation prompt supervises");
  } catch (const pathvlm::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const text::BpeTokenizer byte_level = with_markers("tiny_llama3_style.json");
  static const text::BpeTokenizer sentencepiece_style = with_markers("tiny_llama2_style.json");
  if (size < 2) return 0;
  const auto& names = text::ConversationTemplate::names();
  const auto tmpl = text::ConversationTemplate::named(names[data[0] % names.size()]);
  const auto& tok = (data[0] / names.size()) % 2 ? sentencepiece_style : byte_level;
  text::Conversation conversation{"fuzz", {}};
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  size_t start = 0;
  for (;;) {
    const auto at = rest.find('\x1e', start);
    const auto speaker = conversation.turns.size() % 2 ? text::Speaker::gpt : text::Speaker::human;
    conversation.turns.push_back(
        {speaker, rest.substr(start, at == std::string::npos ? std::string::npos : at - start)});
    if (at == std::string::npos) break;
    start = at + 1;
  }
  check(tmpl, conversation, tok);
  return 0;
}
