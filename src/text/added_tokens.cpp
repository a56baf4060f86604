#include "text/added_tokens.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace pathvlm::text {

void AddedTokens::add(AddedToken token) {
  PATHVLM_CHECK(!token.content.empty(), "added token ", token.id, " has an empty content");
  first_bytes_.set(static_cast<uint8_t>(token.content[0]));
  const auto at = std::upper_bound(tokens_.begin(), tokens_.end(), token.content.size(),
                                   [](size_t size, const AddedToken& t) { return size > t.content.size(); });
  tokens_.insert(at, std::move(token));
}

int32_t AddedTokens::id_of(const std::string& content) const {
  for (const auto& t : tokens_)
    if (t.content == content) return t.id;
  return -1;
}

const AddedToken* AddedTokens::find(const std::string& text, size_t from, size_t& at) const {
  for (size_t pos = from; pos < text.size(); ++pos) {
    if (!first_bytes_.test(static_cast<uint8_t>(text[pos]))) continue;
    for (const auto& t : tokens_) {
      if (text.compare(pos, t.content.size(), t.content) != 0) continue;
      at = pos;
      return &t;
    }
  }
  return nullptr;
}

void AddedTokens::cut(const std::string& text, const std::function<void(const std::string&, bool)>& on_text,
                      const std::function<void(int32_t)>& on_token) const {
  size_t start = 0, at = 0;
  while (const AddedToken* token = find(text, start, at)) {
    if (at > start) on_text(text.substr(start, at - start), start == 0);
    on_token(token->id);
    start = at + token->content.size();
  }
  if (start < text.size()) on_text(text.substr(start), start == 0);
}

nlohmann::json hf_added_token(const std::string& content, bool special) {
  return {{"content", content}, {"lstrip", false},        {"normalized", false},
          {"rstrip", false},    {"single_word", false}, {"special", special}};
}

}  // namespace pathvlm::text
