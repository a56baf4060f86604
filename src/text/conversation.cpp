#include "text/conversation.h"

#include "core/error.h"
#include "text/special_ids.h"
#include "text/tokenizer.h"

namespace pathvlm::text {

namespace {

constexpr const char* kChatSystem =
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions.";
constexpr const char* kChatmlSystem = "You are a helpful assistant.";
constexpr const char* kLlama3Header[] = {"<|start_header_id|>", "<|end_header_id|>"};
constexpr const char* kLlama3EndOfTurn = "<|eot_id|>";
constexpr const char* kChatmlStart = "<|im_start|>";
constexpr const char* kChatmlEnd = "<|im_end|>";
// Qwen3's thinking block; with thinking off (enable_thinking=False) an empty one opens the final reply.
constexpr const char* kQwen3Think[] = {"<think>", "</think>"};
constexpr const char* kLlavaLlama2System =
    "You are a helpful language and vision assistant. You are able to understand the visual content that the user "
    "provides, and assist the user with a variety of tasks using natural language.";

// Python's str.strip() on ASCII whitespace, as LLaVA's preprocess_multimodal strips a turn.
std::string strip(const std::string& text) {
  const char* space = " \t\n\r\v\f";
  const auto begin = text.find_first_not_of(space);
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(space) - begin + 1);
}

std::string without_image_placeholders(std::string text) {
  const std::string placeholder = kImagePlaceholder;
  for (auto at = text.find(placeholder); at != std::string::npos; at = text.find(placeholder, at)) {
    text.erase(at, placeholder.size());
  }
  return text;
}

// A human turn's value: its images first, then "\n" and the rest (LLaVA's preprocess_multimodal).
void add_human_value(const std::string& value, std::vector<Piece>& out) {
  const auto images = count_image_placeholders(value);
  if (images == 0) {
    out.push_back(Piece::of_text(value));
    return;
  }
  for (int64_t k = 0; k < images; ++k) out.push_back(Piece::image());
  const auto rest = strip(without_image_placeholders(value));
  if (!rest.empty()) out.push_back(Piece::of_text("\n" + rest));
}

}  // namespace

int64_t count_image_placeholders(const std::string& text) {
  const std::string placeholder = kImagePlaceholder;
  int64_t count = 0;
  for (auto at = text.find(placeholder); at != std::string::npos; at = text.find(placeholder, at + 1)) ++count;
  return count;
}

int64_t count_image_placeholders(const Conversation& conversation) {
  int64_t count = 0;
  for (const auto& turn : conversation.turns) count += count_image_placeholders(turn.value);
  return count;
}

ConversationTemplate::ConversationTemplate(std::string name, Style style, std::string system, bool rounds_open_with_bos)
    : name_(std::move(name)), style_(style), system_(std::move(system)), rounds_open_with_bos_(rounds_open_with_bos) {}

const std::vector<std::string>& ConversationTemplate::names() {
  static const std::vector<std::string> names = {"plain",         "vicuna_v1", "pathasst", "mistral_instruct",
                                                 "llava_llama_2", "llama_3",   "chatml",   "qwen3"};
  return names;
}

ConversationTemplate ConversationTemplate::named(const std::string& name) {
  if (name == "plain") return {name, Style::plain, ""};
  if (name == "vicuna_v1") return {name, Style::vicuna_v1, kChatSystem};
  if (name == "pathasst") return {name, Style::pathasst, kChatSystem};
  if (name == "mistral_instruct") return {name, Style::llama_2, ""};
  if (name == "llava_llama_2") return {name, Style::llama_2, kLlavaLlama2System, /*rounds_open_with_bos=*/true};
  if (name == "llama_3") return {name, Style::llama_3, kLlavaLlama2System};
  if (name == "chatml") return {name, Style::chatml, kChatmlSystem};
  if (name == "qwen3") return {name, Style::qwen3, ""};
  std::string known;
  for (const auto& n : names()) known += (known.empty() ? "" : ", ") + n;
  throw Error(str("unknown conversation template '", name, "' (known: ", known, ")"));
}

std::vector<std::string> ConversationTemplate::stop_strings() const {
  switch (style_) {
    case Style::plain:
      return {"\n"};
    case Style::vicuna_v1:
    case Style::llama_2:
    case Style::llama_3:
    case Style::chatml:
    case Style::qwen3:
      return {};
    case Style::pathasst:
      return {"###"};
  }
  return {};
}

int64_t ConversationTemplate::reply_end_id(const Tokenizer& tokenizer) const {
  if (style_ == Style::llama_3) return special_token_id(kLlama3EndOfTurn, tokenizer);
  if (style_ == Style::chatml || style_ == Style::qwen3) return special_token_id(kChatmlEnd, tokenizer);
  return tokenizer.eos_id();
}

std::string conversation_structure_problem(const Conversation& conversation, bool ends_with_reply) {
  const auto& turns = conversation.turns;
  if (turns.empty()) return "it has no turns";
  for (size_t i = 0; i < turns.size(); ++i) {
    const auto expected = i % 2 == 0 ? Speaker::human : Speaker::gpt;
    if (turns[i].from != expected) {
      return i == 0 ? "turn 0 is a gpt reply; a conversation starts with a human turn"
                    : str("turns ", i - 1, " and ", i, " come from the same speaker; human and gpt turns alternate");
    }
    if (turns[i].value.empty()) return str("turn ", i, " is empty");
    if (turns[i].from == Speaker::gpt && count_image_placeholders(turns[i].value) > 0) {
      return str("turn ", i, " is a reply holding \"", kImagePlaceholder, "\" (images go in human turns)");
    }
  }
  const bool last_is_reply = turns.back().from == Speaker::gpt;
  if (ends_with_reply && !last_is_reply) return "it ends with a human turn, not a reply";
  if (!ends_with_reply && last_is_reply) return "it ends with a reply; a generation prompt ends with a human turn";
  return "";
}

std::string ConversationTemplate::structure_problem(const Conversation& conversation, bool ends_with_reply,
                                                    const Tokenizer& tokenizer) const {
  auto why = conversation_structure_problem(conversation, ends_with_reply);
  if (!why.empty()) return why;
  const auto& turns = conversation.turns;
  for (size_t i = 0; i < turns.size(); ++i) {
    size_t at = 0;
    while (const AddedToken* special = tokenizer.special_tokens().find(turns[i].value, at, at)) {
      // A LLaVA tokenizer's own <image> token is the placeholder, cut out before the text is tokenized.
      if (special->content != kImagePlaceholder)
        return str("turn ", i, " holds the special-token string '", special->content, "'");
      at += special->content.size();
    }
  }
  if (style_ == Style::chatml || style_ == Style::qwen3) {
    for (size_t i = 1; i < turns.size(); i += 2) {
      const char first = turns[i].value[0];
      if (first == '\n' || first == '\r') return str("reply ", i, " starts with a line break");
      // Qwen3's chat template would take a reply's text before "</think>" for its reasoning.
      for (const char* think : kQwen3Think)
        if (style_ == Style::qwen3 && turns[i].value.find(think) != std::string::npos)
          return str("reply ", i, " holds '", think, "' (Qwen3's thinking block)");
    }
  }
  if (style_ == Style::llama_3) {  // its values are stripped: nothing may be left empty
    for (size_t i = 0; i < turns.size(); ++i) {
      if (strip(turns[i].value).empty()) return str("turn ", i, " holds only whitespace");
    }
  }
  const size_t plain_turns = ends_with_reply ? 2 : 1;
  if (style_ == Style::plain && turns.size() != plain_turns) {
    return str("template plain takes one human turn", ends_with_reply ? " and its reply (a caption)" : "",
               "; the conversation has ", turns.size(), " turns");
  }
  return "";
}

std::string ConversationTemplate::problem(const Conversation& conversation,
                                          const Tokenizer& tokenizer) const {
  return structure_problem(conversation, /*ends_with_reply=*/true, tokenizer);
}

std::vector<Piece> ConversationTemplate::pieces(const Conversation& conversation, bool ends_with_reply) const {
  std::vector<Piece> out = {Piece::bos()};
  const auto& turns = conversation.turns;
  switch (style_) {
    case Style::plain:
      for (int64_t k = 0; k < count_image_placeholders(turns[0].value); ++k) out.push_back(Piece::image());
      if (ends_with_reply) out.push_back(Piece::of_text(turns[1].value + "\n", /*supervised=*/true));
      break;
    case Style::vicuna_v1:
      out.push_back(Piece::of_text(system_ + " "));
      for (const auto& turn : turns) {
        if (turn.from == Speaker::human) {
          out.push_back(Piece::of_text("USER: "));
          add_human_value(turn.value, out);
          out.push_back(Piece::of_text(" ASSISTANT:"));
        } else {
          out.push_back(Piece::of_text(" " + turn.value, /*supervised=*/true));
          out.push_back(Piece::eos(/*supervised=*/true));
        }
      }
      break;
    case Style::pathasst:
      out.push_back(Piece::of_text(system_ + "\n\n"));
      for (size_t i = 0; i < turns.size(); ++i) {
        if (turns[i].from == Speaker::human) {
          // The "###" that opens a later human turn closed the reply before it (and was supervised there).
          out.push_back(Piece::of_text(i == 0 ? "### User: " : " User: "));
          add_human_value(turns[i].value, out);
          out.push_back(Piece::of_text("\n### Assistant:"));
        } else {
          out.push_back(Piece::of_text(" " + turns[i].value + "\n###", /*supervised=*/true));
        }
      }
      break;
    case Style::llama_2:
      for (size_t i = 0; i < turns.size(); ++i) {
        if (turns[i].from == Speaker::human) {
          if (i > 0 && rounds_open_with_bos_) out.push_back(Piece::bos());
          const bool with_system = i == 0 && !system_.empty();
          out.push_back(Piece::marker("[INST]"));
          out.push_back(Piece::of_text(" " + (with_system ? "<<SYS>>\n" + system_ + "\n<</SYS>>\n\n" : "")));
          add_human_value(turns[i].value, out);
          out.push_back(Piece::of_text(" "));
          out.push_back(Piece::marker("[/INST]"));
        } else {
          out.push_back(Piece::of_text(" " + turns[i].value + " ", /*supervised=*/true));
          out.push_back(Piece::eos(/*supervised=*/true));
        }
      }
      break;
    case Style::llama_3: {
      auto header = [&](const char* role) {
        out.push_back(Piece::special(kLlama3Header[0]));
        out.push_back(Piece::of_text(role));
        out.push_back(Piece::special(kLlama3Header[1]));
        out.push_back(Piece::of_text("\n\n"));
      };
      header("system");
      out.push_back(Piece::of_text(system_));
      out.push_back(Piece::special(kLlama3EndOfTurn));
      for (const auto& turn : turns) {
        const bool reply = turn.from == Speaker::gpt;
        header(reply ? "assistant" : "user");
        if (reply) {
          out.push_back(Piece::of_text(strip(turn.value), /*supervised=*/true));
        } else {
          add_human_value(strip(turn.value), out);
        }
        out.push_back(Piece::special(kLlama3EndOfTurn, /*supervised=*/reply));
      }
      if (!ends_with_reply) header("assistant");
      break;
    }
    case Style::chatml:
    case Style::qwen3: {
      auto open = [&](const std::string& role) {
        out.push_back(Piece::special(kChatmlStart));
        out.push_back(Piece::of_text(role + "\n"));
      };
      auto close = [&](bool supervised) {
        out.push_back(Piece::special(kChatmlEnd, supervised));
        out.push_back(Piece::of_text("\n"));
      };
      // Qwen3's final reply (and generation prompt) opens with an empty thinking block; its markers are text, or
      // special tokens where the tokenizer has them so.
      auto empty_thinking = [&] {
        if (style_ != Style::qwen3) return;
        for (const char* marker : kQwen3Think) {
          out.push_back(Piece::marker(marker));
          out.push_back(Piece::of_text("\n\n"));
        }
      };
      if (!system_.empty()) {  // Qwen3 has no default system message
        open("system");
        out.push_back(Piece::of_text(system_));
        close(false);
      }
      for (size_t i = 0; i < turns.size(); ++i) {
        const bool reply = turns[i].from == Speaker::gpt;
        open(reply ? "assistant" : "user");
        if (reply) {
          if (i + 1 == turns.size()) empty_thinking();
          out.push_back(Piece::of_text(turns[i].value, /*supervised=*/true));
        } else {
          add_human_value(turns[i].value, out);
        }
        close(reply);
      }
      if (!ends_with_reply) {
        open("assistant");
        empty_thinking();
      }
      break;
    }
  }
  return out;
}

std::vector<Piece> ConversationTemplate::training_pieces(const Conversation& conversation,
                                                         const Tokenizer& tokenizer) const {
  const auto why = structure_problem(conversation, /*ends_with_reply=*/true, tokenizer);
  PATHVLM_CHECK(why.empty(), "conversation '", conversation.id, "' (template ", name_, "): ", why);
  return pieces(conversation, /*ends_with_reply=*/true);
}

std::vector<Piece> ConversationTemplate::generation_pieces(const Conversation& conversation,
                                                           const Tokenizer& tokenizer) const {
  const auto why = structure_problem(conversation, /*ends_with_reply=*/false, tokenizer);
  PATHVLM_CHECK(why.empty(), "conversation '", conversation.id, "' (template ", name_, ", generation prompt): ", why);
  // Nothing of a prompt is learned; as one supervision, its text pieces tokenize as one run.
  auto out = pieces(conversation, /*ends_with_reply=*/false);
  for (auto& piece : out) piece.supervised = false;
  return out;
}

SupervisedSequence ConversationTemplate::tokenize(const Conversation& conversation,
                                                  const Tokenizer& tokenizer) const {
  return tokenize_pieces(training_pieces(conversation, tokenizer), tokenizer);
}

SupervisedSequence ConversationTemplate::generation_prompt(const Conversation& conversation,
                                                           const Tokenizer& tokenizer) const {
  return tokenize_pieces(generation_pieces(conversation, tokenizer), tokenizer);
}

}  // namespace pathvlm::text
