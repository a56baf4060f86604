// libsentencepiece behind an interface, loaded at run time from the pathvlm_sentencepiece plugin.
// Why: Debian's libsentencepiece carries its own protobuf (3.14) and exports its symbols; linked into a program
// that also loads libtorch's libprotobuf (3.21), the two copies bind to each other and the program aborts
// before main(). The plugin is opened with RTLD_LOCAL | RTLD_DEEPBIND, so each copy keeps to its own symbols.
//
//   auto backend = text::make_sentencepiece_backend();
//   std::string error = backend->load("tokenizer.model");   // "" when it loaded
//   std::vector<int> ids;
//   error = backend->encode("Hello world", &ids);
//
// The plugin is looked for next to the running program, then where the build put it.
#pragma once
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace pathvlm::text {

// One SentencePieceProcessor. Calls return "" or libsentencepiece's error message.
class SentencePieceBackend {
 public:
  virtual ~SentencePieceBackend() = default;
  virtual std::string load(const std::string& model_file) = 0;
  // A model from its serialized bytes (one changed in memory).
  virtual std::string load_serialized(const std::string& model) = 0;
  virtual std::string encode(const std::string& text, std::vector<int>* ids) const = 0;
  virtual std::string decode(const std::vector<int>& ids, std::string* text) const = 0;
  virtual std::string id_to_piece(int id) const = 0;
  virtual int piece_size() const = 0;
  // A control piece (<s>, </s>, Mistral v0.3's [INST]): never made from text, a special token.
  virtual bool is_control(int id) const = 0;
  virtual int unk_id() const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;
};

// A backend with no model loaded yet. Throws naming the plugin when it cannot be opened.
std::unique_ptr<SentencePieceBackend> make_sentencepiece_backend();

// SentencePieceTrainer with `options` (trainer flag -> value) on `texts`; `model` receives the serialized model.
// Returns "" or the trainer's error.
std::string train_sentencepiece_model(const std::unordered_map<std::string, std::string>& options,
                                      const std::vector<std::string>& texts, std::string* model);

// What the plugin exports (C names, so dlsym finds them).
extern "C" {
using CreateSentencePieceBackend = SentencePieceBackend* (*)();
using TrainSentencePieceModel = void (*)(const std::unordered_map<std::string, std::string>& options,
                                         const std::vector<std::string>& texts, std::string* model,
                                         std::string* error);
}
constexpr const char* kSentencePiecePlugin = "libpathvlm_sentencepiece.so";
constexpr const char* kCreateSymbol = "pathvlm_sentencepiece_create";
constexpr const char* kTrainSymbol = "pathvlm_sentencepiece_train";

}  // namespace pathvlm::text
