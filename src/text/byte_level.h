// GPT-2's bytes_to_unicode, the alphabet of byte-level BPE vocabularies (CLIP's, LLaMA-3's, Qwen's): each byte
// stands for one printable character, itself where it is printable ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF),
// else U+0100 onwards in byte order (the space is "Ġ", U+0120).
//
//   char32_t c = text::byte_stand_ins()[' '];   // U+0120
#pragma once
#include <array>

namespace pathvlm::text {

inline const std::array<char32_t, 256>& byte_stand_ins() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> stand_in{};
    char32_t next = 0x100;
    for (char32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      stand_in[b] = printable ? b : next++;
    }
    return stand_in;
  }();
  return table;
}

}  // namespace pathvlm::text
