// Conversation templates of LLaVA-style instruction tuning: how a conversation (human questions, gpt replies,
// "<image>" placeholders) becomes one token sequence with only the replies supervised, the prompt a model
// answers at evaluation, and the stop string that ends its reply.
//
//   auto tmpl = text::ConversationTemplate::named("vicuna_v1");
//   text::Conversation conv{"id-7", {{text::Speaker::human, "<image>\nWhat tissue is this?"},
//                                    {text::Speaker::gpt, "Colonic mucosa."}}};
//   if (auto why = tmpl.problem(conv, tokenizer); !why.empty()) skip(why);
//   text::SupervisedSequence seq = tmpl.tokenize(conv, tokenizer);      // training sample
//   conv.turns.pop_back();                                              // ... up to the question
//   text::SupervisedSequence prompt = tmpl.generation_prompt(conv, tokenizer);  // + "ASSISTANT:", nothing supervised
//   options.stop = tmpl.stop_strings();
//
// Templates (S = the system message; <image> marks where the image sentinel kImageToken goes; [[...]] is what
// is supervised; the BOS is never supervised):
//   plain      LLaVA phase 1 (preprocess_plain): the human turn is replaced by its images alone.
//                <s><image>[[caption\n]]
//              One human turn and one reply. Stop string "\n". Text-only: <s>[[caption\n]].
//   vicuna_v1  LLaVA conv_vicuna_v1 (SeparatorStyle.TWO, sep " ", sep2 "</s>", roles USER / ASSISTANT);
//              S = "A chat between a curious user and an artificial intelligence assistant. The assistant gives
//              helpful, detailed, and polite answers to the user's questions."
//                <s>S USER: <image>\nQ1 ASSISTANT:[[ A1</s>]]USER: Q2 ASSISTANT:[[ A2</s>]]
//              Each reply and its </s> are supervised, exactly as LLaVA's preprocess_v1 masks them with the
//              LlamaTokenizer of its pinned stack, legacy or not (SentencePieceTokenizer's rules; not legacy,
//              the "USER" after </s> has no "▁" and LLaVA counts a token less per later round), except where LLaVA's
//              re-splitting of the prompt fails: a turn holding " ASSISTANT: ", or odd whitespace that
//              tokenizes differently in pieces (LLaVA then supervises template tokens, or reports a tokenization
//              mismatch and masks the whole sample; here the spans come from the pieces; a turn holding "</s>"
//              is refused by problem()). Generation
//              ends at EOS (no stop string). The generation prompt ends with "ASSISTANT:" (LLaVA's get_prompt).
//   pathasst   PathAsst's "###" format: LLaVA v0's training form (_add_speaker_and_signal: "S\n\n### Human: Q\n###
//              Assistant: A\n### ") with the roles named User / Assistant. PathAsst publishes no training code or
//              template, so S is conv_vicuna_v1's (it speaks of a "user", as the role does).
//                <s>S\n\n### User: <image>\nQ1\n### Assistant:[[ A1\n###]] User: Q2\n### Assistant:[[ A2\n###]]
//              Each reply and the "###" after it are supervised, so the model learns to end its reply with the
//              stop string "###". The trailing "### " of _add_speaker_and_signal loses its final space (a lone
//              space token that nothing predicts from).
//   mistral_instruct  LLaVA-Med v1.5's (conv_mistral_instruct: SeparatorStyle.LLAMA_2, no system, sep "",
//              sep2 "</s>"), for Mistral-7B-Instruct language models:
//                <s>[INST] <image>\nQ1 [/INST][[ A1 </s>]][INST] Q2 [/INST][[ A2 </s>]]
//   llava_llama_2  LLaVA's conv_llava_llama_2 (SeparatorStyle.LLAMA_2, sep "<s>", sep2 "</s>") for LLaMA-2-chat:
//                <s>[INST] <<SYS>>\nS\n<</SYS>>\n\n<image>\nQ1 [/INST][[ A1 </s>]]<s>[INST] Q2 [/INST][[ A2 </s>]]
//              S = "You are a helpful language and vision assistant. You are able to understand the visual content
//              that the user provides, and assist the user with a variety of tasks using natural language."
//              Both: each reply with the space LLaMA-2's format puts after it, and its </s>, supervised, exactly as
//              LLaVA's preprocess_llama_2 masks them (split on "</s>", then on "[/INST] "), except where a turn
//              holding "[/INST] " defeats that split (LLaVA then masks the whole sample). Generation ends at EOS;
//              the generation prompt ends with "[/INST]" (LLaVA's get_prompt). [INST] and [/INST] are text, or
//              the special tokens where the tokenizer has them (Mistral v0.3's control pieces), as tokenizing the
//              prompt gives them; a legacy tokenizer then starts a reply with a lone "▁", supervised as part of
//              the reply (LLaVA's length arithmetic, taking [/INST] for text, masks it).
//   llama_3    LLaMA-3-Instruct's chat format (LLaVA-NeXT's conv_llava_llama_3, S as llava_llama_2's), each value
//              stripped of surrounding whitespace as the model's chat template trims it (a value left empty is
//              refused by problem()); the markers are special tokens of the LLaMA-3 tokenizer (tokenizer.json);
//              <H> and </H> stand for <|start_header_id|> and <|end_header_id|>:
//                <|begin_of_text|><H>system</H>\n\nS<|eot_id|><H>user</H>\n\n<image>\nQ1<|eot_id|>
//                <H>assistant</H>\n\n[[A1<|eot_id|>]]<H>user</H>\n\nQ2<|eot_id|> ...
//              Each reply and its <|eot_id|> supervised; generation ends at <|eot_id|>, and its prompt ends with
//              "<|start_header_id|>assistant<|end_header_id|>\n\n" (the chat template's generation prompt).
//   chatml     Qwen2 / Qwen2.5's chat format (ChatML; LLaVA-NeXT's conv_qwen), S = "You are a helpful assistant.":
//                <|im_start|>system\nS<|im_end|>\n<|im_start|>user\n<image>\nQ1<|im_end|>\n
//                <|im_start|>assistant\n[[A1<|im_end|>]]\n<|im_start|>user\nQ2<|im_end|>\n ...
//              No BOS (Qwen has none). Each reply and its <|im_end|> supervised (the line break after it is the
//              template's, as in Qwen's fine-tuning); generation ends at <|im_end|>, and its prompt ends with
//              "<|im_start|>assistant\n". A reply that starts with a line break is refused by problem(): it
//              would merge with the template's "\n" into other tokens than the reply's own.
//   qwen3      Qwen3's own chat template with thinking off (enable_thinking=False), for Qwen3 language models:
//              ChatML without a system message, and the final reply (and the generation prompt) opening with an
//              empty thinking block, which is not supervised (the generation prompt holds it too):
//                <|im_start|>user\n<image>\nQ1<|im_end|>\n<|im_start|>assistant\n[[A1<|im_end|>]]\n
//                <|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n[[A2<|im_end|>]]\n
//              Earlier replies have none, as the template renders them. A reply holding "<think>" or "</think>"
//              is refused (the template would take its start for reasoning); otherwise as chatml.
// Images: like LLaVA's preprocess_multimodal, a human turn's "<image>" placeholders move to the start of the turn,
// followed by "\n" and the rest of the turn stripped of surrounding whitespace (just the images when nothing is
// left); k placeholders give k consecutive image sentinels. Turns without images are kept as written. Every
// "<image>" placeholder is one image, in order: the n-th one is the conversation's n-th image.
// Tokenization: one pass over the template's pieces (text/supervised_sequence.h), so the spans come from the
// pieces and the ids equal LLaVA's tokenizer_image_token of the prompt string.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "text/supervised_sequence.h"

namespace pathvlm::text {

class Tokenizer;

enum class Speaker { human, gpt };

struct Turn {
  Speaker from = Speaker::human;
  std::string value;  // may hold "<image>" placeholders (human turns only)
};

struct Conversation {
  std::string id;  // named in errors and inspection output
  std::vector<Turn> turns;
};

// The number of "<image>" placeholders in `text`, and in all turns of `conversation`.
int64_t count_image_placeholders(const std::string& text);
int64_t count_image_placeholders(const Conversation& conversation);

// Why the conversation is not a well-formed exchange ("" when it is): no turns, a first turn that is not human,
// turns that do not alternate, an empty value, "<image>" in a reply; and a last turn that is not a reply
// (`ends_with_reply`, training data) or not a human turn (a generation prompt). Every template needs this.
std::string conversation_structure_problem(const Conversation& conversation, bool ends_with_reply);

class ConversationTemplate {
 public:
  enum class Style { plain, vicuna_v1, pathasst, llama_2, llama_3, chatml, qwen3 };

  // One of names(); throws listing them otherwise.
  static ConversationTemplate named(const std::string& name);
  static const std::vector<std::string>& names();

  const std::string& name() const { return name_; }
  Style style() const { return style_; }
  const std::string& system() const { return system_; }
  // The strings that end a generated reply, matched in the decoded text (every template also ends at reply_end_id).
  std::vector<std::string> stop_strings() const;
  // The token that ends a reply: the tokenizer's EOS, or the template's end-of-turn marker (llama_3's <|eot_id|>,
  // chatml's <|im_end|>). Throws naming the tokenizer when it has no such token.
  int64_t reply_end_id(const Tokenizer& tokenizer) const;

  // Why the conversation cannot be a training sample of this template ("" when it can): a structure problem
  // (above), one of the tokenizer's special-token strings in a value; for plain, more than one exchange.
  std::string problem(const Conversation& conversation, const Tokenizer& tokenizer) const;
  // The training sample: replies (and their stop) supervised. Throws naming the conversation when problem().
  SupervisedSequence tokenize(const Conversation& conversation, const Tokenizer& tokenizer) const;
  // The pieces tokenize() tokenizes (join_pieces() spells the prompt string); throws like tokenize().
  std::vector<Piece> training_pieces(const Conversation& conversation, const Tokenizer& tokenizer) const;

  // The prompt a model continues with its reply: the conversation so far, which ends with a human turn, and the
  // assistant header (labels all kIgnoreIndex). Throws naming the conversation when it does not fit the rules
  // above (ending with a human turn instead of a reply).
  SupervisedSequence generation_prompt(const Conversation& conversation, const Tokenizer& tokenizer) const;
  std::vector<Piece> generation_pieces(const Conversation& conversation, const Tokenizer& tokenizer) const;

 private:
  ConversationTemplate(std::string name, Style style, std::string system, bool rounds_open_with_bos = false);
  std::string structure_problem(const Conversation& conversation, bool ends_with_reply,
                                const Tokenizer& tokenizer) const;
  std::vector<Piece> pieces(const Conversation& conversation, bool ends_with_reply) const;

  std::string name_;
  Style style_;
  std::string system_;
  bool rounds_open_with_bos_;  // llava_llama_2's sep "<s>" before every human turn after the first
};

}  // namespace pathvlm::text
