#include "text/conversation_inspect.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/tokenizer.h"

namespace pathvlm::text {

std::string render_supervision(const SupervisedSequence& sequence, const Tokenizer& tokenizer) {
  PATHVLM_CHECK(sequence.labels.size() == sequence.input_ids.size(), "render_supervision: ", sequence.input_ids.size(),
                " input ids but ", sequence.labels.size(), " labels");
  const std::string meta_space = "\u2581";
  std::string out;
  std::vector<int64_t> run;  // ordinary tokens of one supervision
  auto flush = [&] {
    if (run.empty()) return;
    // SentencePiece's decode() drops the space the first piece starts with; it is part of what the model sees.
    if (tokenizer.id_to_piece(run.front()).rfind(meta_space, 0) == 0) out += ' ';
    out += tokenizer.decode(run);
    run.clear();
  };
  bool in_supervised = false;
  for (size_t i = 0; i < sequence.input_ids.size(); ++i) {
    const auto id = sequence.input_ids[i];
    const bool supervised = sequence.labels[i] != kIgnoreIndex;
    if (supervised != in_supervised) {
      flush();
      out += supervised ? "[[" : "]]";
      in_supervised = supervised;
    }
    if (id == kImageToken) {
      flush();
      out += kImagePlaceholder;
    } else if (tokenizer.is_special(id)) {
      flush();
      out += tokenizer.id_to_piece(id);
    } else {
      run.push_back(id);
    }
  }
  flush();
  if (in_supervised) out += "]]";
  return out;
}

std::string sequence_json(const std::string& id, const SupervisedSequence& sequence) {
  nlohmann::json json = {{"id", id}, {"input_ids", sequence.input_ids}, {"labels", sequence.labels}};
  return json.dump();
}

}  // namespace pathvlm::text
