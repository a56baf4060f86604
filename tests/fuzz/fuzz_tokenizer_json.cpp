// A downloaded tokenizer.json through text::BpeTokenizer (byte-level and SentencePiece-style seeds). Invariants: a
// file that loads encodes text (plain, special markers, Unicode) into ids below its vocabulary size, and decodes any
// of its ids; a continuation is encoded or refused with an Error.
#include "fuzz_util.h"
#include "text/bpe_tokenizer.h"

using pathvlm::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = pathvlm::fuzz::scratch_file("tokenizer.json", data, size);
  try {
    const pathvlm::text::BpeTokenizer tokenizer(path);
    for (const char* text : {"Hello world, it's 2026!", "  \n\n\tH&E <|endoftext|> <|im_start|>x", "Ça va? 日本語 😀",
                             "ab</s><s> xé", ""}) {
      const auto ids = tokenizer.encode(text, /*add_bos=*/true);
      for (const auto id : ids)
        require(id >= 0 && id < tokenizer.vocab_size(), "an encoded id is outside the vocabulary");
      tokenizer.decode(ids, /*skip_special=*/false);
    }
    for (const auto id : tokenizer.encode_continuation("Hello", " world ab"))
      require(id >= 0 && id < tokenizer.vocab_size(), "a continuation's id is outside the vocabulary");
  } catch (const pathvlm::Error&) {
  }
  return 0;
}
