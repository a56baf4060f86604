// The pathvlm_sentencepiece plugin: the only code linked against libsentencepiece (see sentencepiece_backend.h
// for why it is a separately loaded module). Built as a CMake MODULE, not part of pathvlm_text.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "text/sentencepiece_backend.h"

namespace pathvlm::text {
namespace {

// sentencepiece::util::Status before 0.2, absl::Status since; both have ok() and ToString().
using Status = decltype(std::declval<sentencepiece::SentencePieceProcessor&>().Load(std::string()));

std::string message(const Status& status) { return status.ok() ? "" : status.ToString(); }

class Processor : public SentencePieceBackend {
 public:
  std::string load(const std::string& model_file) override { return message(sp_.Load(model_file)); }
  std::string load_serialized(const std::string& model) override {
    return message(sp_.LoadFromSerializedProto(model));
  }
  std::string encode(const std::string& text, std::vector<int>* ids) const override {
    return message(sp_.Encode(text, ids));
  }
  std::string decode(const std::vector<int>& ids, std::string* text) const override {
    return message(sp_.Decode(ids, text));
  }
  std::string id_to_piece(int id) const override { return sp_.IdToPiece(id); }
  int piece_size() const override { return sp_.GetPieceSize(); }
  bool is_control(int id) const override { return sp_.IsControl(id); }
  int unk_id() const override { return sp_.unk_id(); }
  int bos_id() const override { return sp_.bos_id(); }
  int eos_id() const override { return sp_.eos_id(); }

 private:
  sentencepiece::SentencePieceProcessor sp_;
};

// Hands the texts to the trainer without a corpus file.
class TextIterator : public sentencepiece::SentenceIterator {
 public:
  explicit TextIterator(const std::vector<std::string>& texts) : texts_(texts) {}
  bool done() const override { return index_ >= texts_.size(); }
  void Next() override { ++index_; }
  const std::string& value() const override { return texts_[index_]; }
  Status status() const override { return {}; }

 private:
  const std::vector<std::string>& texts_;
  size_t index_ = 0;
};

}  // namespace
}  // namespace pathvlm::text

extern "C" {

pathvlm::text::SentencePieceBackend* pathvlm_sentencepiece_create() { return new pathvlm::text::Processor(); }

void pathvlm_sentencepiece_train(const std::unordered_map<std::string, std::string>& options,
                                 const std::vector<std::string>& texts, std::string* model, std::string* error) {
  pathvlm::text::TextIterator sentences(texts);
  *error = pathvlm::text::message(sentencepiece::SentencePieceTrainer::Train(options, &sentences, model));
}
}
