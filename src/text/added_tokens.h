// The tokens a tokenizer cuts out of a text before its model sees the rest (special tokens, chat markers,
// SentencePiece's control pieces): matched from left to right, the longest at one position, as the tokenizers
// library and transformers' slow tokenizers match them.
//
//   text::AddedTokens added;
//   added.add({"</s>", 2});
//   added.cut("hi</s>yo", [](const std::string& run, bool first) { ... }, [](int32_t id) { ... });
//   // -> run "hi" (first), id 2, run "yo"
#pragma once
#include <bitset>
#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace pathvlm::text {

struct AddedToken {
  std::string content;
  int32_t id;
};

class AddedTokens {
 public:
  // `token.content` must not be empty.
  void add(AddedToken token);
  // Longest first; tokens of one length in the order added.
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  bool empty() const { return tokens_.empty(); }
  // The id of the token whose content is `content`, -1 when none.
  int32_t id_of(const std::string& content) const;
  // The first token in `text` at or after `from` (the longest at its position), nullptr when none; `at` receives its
  // position.
  const AddedToken* find(const std::string& text, size_t from, size_t& at) const;

  // Calls on_text(run, first) for each non-empty run of text between tokens (`first`: the run opens the text) and
  // on_token(id) for each token, in the text's order.
  void cut(const std::string& text, const std::function<void(const std::string&, bool)>& on_text,
           const std::function<void(int32_t)>& on_token) const;

 private:
  std::vector<AddedToken> tokens_;
  std::bitset<256> first_bytes_;  // a quick test per position
};

// An added token as transformers' files write it (tokenizer_config.json's added_tokens_decoder; tokenizer.json's
// added_tokens add its "id"): nothing stripped, matched in the raw text.
nlohmann::json hf_added_token(const std::string& content, bool special);

}  // namespace pathvlm::text
