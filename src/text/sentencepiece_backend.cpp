#include "text/sentencepiece_backend.h"

#include <dlfcn.h>

#include <filesystem>

#include "core/error.h"

namespace fs = std::filesystem;

namespace pathvlm::text {
namespace {

struct Plugin {
  CreateSentencePieceBackend create = nullptr;
  TrainSentencePieceModel train = nullptr;
};

// Opened once and never closed: backends made by it live until the program ends.
const Plugin& plugin() {
  static const Plugin opened = [] {
    std::error_code ignored;
    const std::vector<fs::path> candidates = {
        fs::read_symlink("/proc/self/exe", ignored).parent_path() / kSentencePiecePlugin,
        fs::path(PATHVLM_SENTENCEPIECE_PLUGIN)};
    std::string problems;
    for (const auto& file : candidates) {
      if (!fs::is_regular_file(file)) continue;
      void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (handle == nullptr) {
        problems += str("; ", dlerror());
        continue;
      }
      Plugin found;
      found.create = reinterpret_cast<CreateSentencePieceBackend>(dlsym(handle, kCreateSymbol));
      found.train = reinterpret_cast<TrainSentencePieceModel>(dlsym(handle, kTrainSymbol));
      PATHVLM_CHECK(found.create != nullptr && found.train != nullptr, "SentencePiece plugin '", file.string(),
                    "' lacks ", kCreateSymbol, " or ", kTrainSymbol);
      return found;
    }
    throw Error(str("cannot load the SentencePiece plugin ", kSentencePiecePlugin,
                    " (looked next to the program and at '", PATHVLM_SENTENCEPIECE_PLUGIN, "'", problems, ")"));
  }();
  return opened;
}

}  // namespace

std::unique_ptr<SentencePieceBackend> make_sentencepiece_backend() {
  return std::unique_ptr<SentencePieceBackend>(plugin().create());
}

std::string train_sentencepiece_model(const std::unordered_map<std::string, std::string>& options,
                                      const std::vector<std::string>& texts, std::string* model) {
  std::string error;
  plugin().train(options, texts, model, &error);
  return error;
}

}  // namespace pathvlm::text
