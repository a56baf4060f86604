// Caption and prompt text from anywhere through CLIP's tokenizer: ftfy's cleaning (mojibake, entities, widths,
// NFC), the pre-tokenising regex and BPE, on the real open_clip vocabulary. Invalid UTF-8 must be an Error naming
// the text. Invariants: encode is start of text, the first context-2 BPE ids, end of text, zero padding (as
// open_clip's, "<start_of_text>" written in the text is its special id); every id in the vocabulary; the cleaned
// text is valid UTF-8.
#include "core/error.h"
#include "core/utf8.h"
#include "fuzz_util.h"
#include "text/clip_tokenizer.h"

using pathvlm::fuzz::require;
using pathvlm::text::ClipTokenizer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ClipTokenizer tokenizer(PATHVLM_SHARED_DATA "/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz", 32);
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto ids = tokenizer.encode(text);
    const auto bpe = tokenizer.tokenize(text);
    std::vector<int64_t> expected = {ClipTokenizer::kStartOfText};
    expected.insert(expected.end(), bpe.begin(), bpe.begin() + std::min<size_t>(bpe.size(), 30));
    expected.push_back(ClipTokenizer::kEndOfText);
    expected.resize(32, 0);
    require(ids == expected, "encode is not start of text, the text's BPE ids, end of text, padding");
    for (int64_t id : bpe) require(id >= 0 && id <= ClipTokenizer::kEndOfText, "an id outside the vocabulary");
    const std::string cleaned = ClipTokenizer::clean(text);
    require(pathvlm::utf8_error_at(cleaned) == std::string::npos, "cleaning gave invalid UTF-8");
  } catch (const pathvlm::Error&) {
  }
  return 0;
}
