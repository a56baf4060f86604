// text::BpeTokenizer: the ids and decodes equal the real Hugging Face tokenizers library's
// (tests/text/hf_tokenizers_reference.js, Rust through its Node bindings, installed by scripts/test_peers.sh) on
// LLaMA-3's and Qwen3's tokenizer.json and on LLaMA-3's vocabulary under GPT-2's pre-tokenizer, for hard texts and
// random ones, and on a small tokenizer.json in CONCH's shape (NFD, StripAccents, Lowercase; BOS and EOS from
// TemplateProcessing); round trips; a hand-made tokenizer whose ids are worked out by hand; refused files; the
// clean-up of tokenization spaces.
#include "text/bpe_tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "core/utf8.h"
#include "peers_util.h"
#include "test_util.h"
#include "text/fix_text.h"

using namespace pathvlm;
using pathvlm::testing::error_of;
using pathvlm::testing::peer_tokenizer;
using pathvlm::testing::TempDir;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const text::BpeTokenizer& peer(const char* model) {
  static text::BpeTokenizer llama3(peer_tokenizer("llama3")), qwen3(peer_tokenizer("qwen3")),
      llama2(peer_tokenizer("llama2")), yi(peer_tokenizer("yi"));
  const std::string name = model;
  return name == "llama3" ? llama3 : name == "qwen3" ? qwen3 : name == "llama2" ? llama2 : yi;
}

struct Reference {
  std::vector<int64_t> ids;
  std::string decode, decode_skip;
};

// The library's answers for `records` ({"text": ...} or {"ids": [...]}) on `tokenizer_json`.
std::vector<Reference> run_reference(const std::string& tokenizer_json, const std::vector<json>& records) {
  std::vector<Reference> refs;
  for (const auto& j : pathvlm::testing::run_node_reference("hf_tokenizers_reference.js", tokenizer_json, records)) {
    refs.push_back({j.value("ids", std::vector<int64_t>{}), j["decode"], j["decode_skip"]});
  }
  return refs;
}

std::vector<std::string> hard_texts() {
  return {
      "",
      "Hello world",
      "The H&E-stained section shows invasive ductal carcinoma (grade 2/3), Ki-67 ~30%; margins >1 mm.",
      "Numbers: 1234567, 3.14, 0.001, 1e-5, 2024-01-31, 12,345.678 and ١٢٣٤ and ½ ² Ⅻ.",
      "DON'T I'm we'LL they'Re you'VE she'S it'd 'tis O'Neil's rock'n'roll ''s '",
      "x'ſa 'ſ 'K",
      "   leading spaces",
      "trailing spaces   ",
      "tabs\tand\t\tmore\t",
      "line\r\nbreaks\r\n\r\nand\n\n\nmore\n",
      "\n\n\n",
      " \n \n  \n\t\n",
      "a  b   c    d\u00A0e\u3000f\u2009g\u0085h\u000Bi\u000Cj",
      "emoji 😀👍🏽🇫🇷👨‍👩‍👧 done",
      "中文病理报告：浸润性导管癌。日本語のテキスト、한국어 텍스트",
      "العربية: سرطان الثدي. עברית. हिन्दी. ไทย",
      "Cafe\u0301 na\u0308ive A\u030A \u1E9B\u0323 e\u0301\u0301 \u0301 alone",
      "Café naïve Å",
      "<|im_start|>user\nDescribe the slide.<|im_end|>\n<|im_start|>assistant\n",
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
      "<|endoftext|><|end_of_text|><think>\n</think>",
      "partial <|im_sta and <|begin_of and <| and |> and <|im_start|",
      "x<|im_start|>y<|im_start|><|im_start|>z",
      "control \x01\x1f\x7f zero\u200Bwidth\u200D joiner \uFEFF bom",
      "!!!??? ... --- *** ((())) [[x]] {{y}} \"quoted\" `code` ~tilde~ ^caret^ |pipe| \\back\\",
      "mixed123abc456def7890ghij",
      "https://example.org/path?q=1&r=2#frag user@example.com",
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 ꙮ 𓀀",
  };
}

// Random texts mixing what the pre-tokenisers and added-token matching treat apart.
std::vector<std::string> random_texts(uint64_t seed, int count) {
  static const std::vector<std::vector<std::string>> kAtoms = {
      {"a", "b", "e", "s", "t", "x", "z", "A", "S", "T", "Q", "Z", "the", "The", "THE", "Hello", "tumor", "cell"},
      {"0", "1", "7", "12", "345", "6789", "2024", "3.14", "٣", "½", "²", "Ⅻ", "𝟙"},
      {".", ",", "!", "?", ":", ";", "-", "(", ")", "\"", "&", "%", "/", "#", "...", "--", "<", ">", "|", "\\"},
      {" ", " ", " ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\n\n", "\u00A0", "\u3000", "\u2009", "\u0085", "\v",
       "\f", " \n", "\t\n "},
      {"'", "'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'d", "'D", "'ſ",
       "n't", "'x"},
      {"é", "É", "ñ", "ü", "ß", "ø", "ł", "ſ", "K", "İ", "ǅ"},
      {"e\u0301", "A\u030A", "n\u0303", "\u0301", "\u0327", "o\u0308\u0301", "\u1E9B\u0323", "\u0345"},
      {"日本語", "中文", "한국어", "カタカナ", "مرحبا", "שלום", "नमस्ते", "สวัสดี"},
      {"😀", "👍🏽", "🇫🇷", "👨‍👩‍👧", "🔬", "\u200B", "\u200D", "\uFEFF", "\x01", "\x1f", "\x7f"},
      {"<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
       "<think>", "<|im_sta", "<|", "|>", "<|reserved_special_token_5|>"},
  };
  std::mt19937_64 rng(pathvlm::testing::test_seed(seed));
  std::vector<std::string> texts;
  for (int i = 0; i < count; ++i) {
    std::string text;
    const int atoms = 1 + static_cast<int>(rng() % 30);
    for (int a = 0; a < atoms; ++a) {
      // Letters, digits, punctuation and whitespace most often; the rest now and then.
      const size_t group = rng() % 10 < 7 ? rng() % 4 : rng() % kAtoms.size();
      text += kAtoms[group][rng() % kAtoms[group].size()];
    }
    texts.push_back(text);
  }
  return texts;
}

std::string describe(const std::vector<int64_t>& ids) {
  std::ostringstream out;
  for (size_t i = 0; i < ids.size(); ++i) out << (i ? "," : "") << ids[i];
  return out.str();
}

// Encodes every text with `tok` and the library (at `tokenizer_json`), decodes the library's ids with both, and
// checks they agree; `clean_up`: the tokenizer applies transformers' clean-up after decoding, the library does not;
// `add_special`: both add their special tokens (encode's add_bos, the library's add_special_tokens).
void expect_parity(const text::BpeTokenizer& tok, const std::string& tokenizer_json, bool clean_up,
                   const std::vector<std::string>& texts, const std::string& name, bool add_special = false) {
  std::vector<json> records;
  for (const auto& t : texts) records.push_back({{"text", t}, {"add_special_tokens", add_special}});
  const auto refs = run_reference(tokenizer_json, records);
  ASSERT_EQ(refs.size(), texts.size());
  auto expected = [&](const std::string& s) { return clean_up ? text::clean_up_tokenization(s) : s; };
  size_t matched = 0;
  std::string first_mismatch;
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto ids = tok.encode(texts[i], add_special);
    const auto decoded = tok.decode(refs[i].ids, false), skipped = tok.decode(refs[i].ids, true);
    if (ids == refs[i].ids && decoded == expected(refs[i].decode) && skipped == expected(refs[i].decode_skip)) {
      ++matched;
    } else if (first_mismatch.empty()) {
      first_mismatch = "text " + json(texts[i]).dump() + "\n  ours:    " + describe(ids) + "\n  library: " +
                       describe(refs[i].ids) + "\n  decode ours " + json(decoded).dump() + " / " +
                       json(skipped).dump() + "\n  decode library " + json(refs[i].decode).dump() + " / " +
                       json(refs[i].decode_skip).dump();
    }
  }
  std::cout << name << ": " << matched << " of " << texts.size() << " texts match the library\n";
  EXPECT_EQ(matched, texts.size()) << "first mismatch: " << first_mismatch;
}

// Random id sequences (byte tokens that make invalid UTF-8, special tokens, anything) decode as the library does;
// `bytes_from`: the id of the first byte token (0 byte-level, 3 in LLaMA-2's <0x00>...).
void expect_decode_parity(const text::BpeTokenizer& tok, const std::string& tokenizer_json, bool clean_up,
                          uint64_t seed, int64_t bytes_from = 0) {
  std::mt19937_64 rng(pathvlm::testing::test_seed(seed));
  std::vector<std::vector<int64_t>> sequences;
  std::vector<json> records;
  const auto specials = [&] {
    std::vector<int64_t> ids;
    for (int64_t id = 0; id < tok.vocab_size(); ++id)
      if (tok.is_special(id)) ids.push_back(id);
    return ids;
  }();
  for (int i = 0; i < 200; ++i) {
    std::vector<int64_t> ids(rng() % 12);
    for (auto& id : ids) {
      const auto kind = rng() % 4;
      id = kind == 0 ? bytes_from + static_cast<int64_t>(rng() % 256)  // the byte tokens
           : kind == 1 ? specials[rng() % specials.size()]
                       : static_cast<int64_t>(rng() % tok.vocab_size());
    }
    records.push_back({{"ids", ids}});
    sequences.push_back(ids);
  }
  const auto refs = run_reference(tokenizer_json, records);
  ASSERT_EQ(refs.size(), sequences.size());
  for (size_t i = 0; i < sequences.size(); ++i) {
    auto expected = [&](const std::string& s) { return clean_up ? text::clean_up_tokenization(s) : s; };
    ASSERT_EQ(tok.decode(sequences[i], false), expected(refs[i].decode)) << "ids " << describe(sequences[i]);
    ASSERT_EQ(tok.decode(sequences[i], true), expected(refs[i].decode_skip)) << "ids " << describe(sequences[i]);
  }
}

// The matcher both tokenizers cut added tokens with: the earliest position first, the longest token there.
TEST(AddedTokens, FindTheLongestTokenAtTheEarliestPosition) {
  text::AddedTokens added;
  added.add({"<s>", 1});
  added.add({"</s>", 2});
  added.add({"<s>x", 7});
  size_t at = 99;
  EXPECT_EQ(added.find("a</s><s>x", 0, at)->id, 2);
  EXPECT_EQ(at, 1u);
  EXPECT_EQ(added.find("a</s><s>x", 2, at)->id, 7);
  EXPECT_EQ(at, 5u);
  EXPECT_EQ(added.find("a</s><s>", 5, at)->id, 1);
  EXPECT_EQ(added.find("<s", 0, at), nullptr);
  EXPECT_EQ(added.id_of("</s>"), 2);
  EXPECT_EQ(added.id_of("<x>"), -1);
  std::vector<std::string> parts;
  added.cut("hi<s>xyo</s></s>", [&](const std::string& run, bool first) { parts.push_back(run + (first ? "^" : "")); },
            [&](int32_t id) { parts.push_back(std::to_string(id)); });
  EXPECT_EQ(parts, (std::vector<std::string>{"hi^", "7", "yo", "2", "2"}));
  EXPECT_NE(error_of([&] { added.add({"", 3}); }).find("empty"), std::string::npos);
}

TEST(BpeTokenizerPeers, Llama3MatchesTheLibrary) {
  SKIP_WITHOUT_PEERS();
  auto texts = hard_texts();
  for (auto& t : random_texts(20240531, 400)) texts.push_back(t);
  // LLaMA-3's tokenizer_config.json sets clean_up_tokenization_spaces.
  expect_parity(peer("llama3"), peer_tokenizer("llama3"), true, texts, "llama3");
  expect_decode_parity(peer("llama3"), peer_tokenizer("llama3"), true, 11);
}

TEST(BpeTokenizerPeers, Qwen3MatchesTheLibrary) {
  SKIP_WITHOUT_PEERS();
  auto texts = hard_texts();
  for (auto& t : random_texts(20250429, 400)) texts.push_back(t);
  expect_parity(peer("qwen3"), peer_tokenizer("qwen3"), false, texts, "qwen3");
  expect_decode_parity(peer("qwen3"), peer_tokenizer("qwen3"), false, 12);
}

// SentencePiece-style files: the special-token strings of LLaMA-2 and Yi written in text, around and between words.
std::vector<std::string> sentencepiece_style_texts(uint64_t seed) {
  auto texts = hard_texts();
  for (auto& t : random_texts(seed, 300)) texts.push_back(t);
  for (const char* special : {"Hello <s>.", "</s> </s>", "x </s> y", "<</s>>", "a</s></s>b", "<s></s><unk>",
                              "USER: hi ASSISTANT: ok</s>USER: more", " <s> lead", "<|startoftext|>Hi<|endoftext|> ",
                              "\u2581 meta \u2581\u2581x", "<0x0A> <0xFF>", "   ", "<s>"})
    texts.push_back(special);
  return texts;
}

// The LLaMA-2 form of tokenizer.json, as transformers converts a SentencePiece model (Prepend and Replace
// normalizer, no pre-tokenizer, byte fallback, the Replace-ByteFallback-Fuse-Strip decoder): what transformers 5
// reads and saves for LLaMA-2, Vicuna, Mistral v0.1 and LLaVA-1.5. The package's vocabulary is Mistral-7B's
// (▁Hello is 22557; LLaMA-2's own file is checked in sentencepiece_tokenizer_test.cpp against its model).
TEST(BpeTokenizerPeers, Llama2FormMatchesTheLibrary) {
  SKIP_WITHOUT_PEERS();
  const auto& llama2 = peer("llama2");
  EXPECT_EQ(llama2.vocab_size(), 32000);
  EXPECT_EQ(llama2.bos_id(), 1);
  EXPECT_EQ(llama2.eos_id(), 2);
  EXPECT_EQ(llama2.unk_id(), 0);
  EXPECT_EQ(llama2.encode("Hello world"), (std::vector<int64_t>{1, 22557, 1526}));
  EXPECT_EQ(llama2.encode_continuation("Hello", " world"), (std::vector<int64_t>{1526}));
  EXPECT_EQ(llama2.decode({1, 22557, 1526, 2}), "Hello world");
  EXPECT_EQ(llama2.decode({1, 22557, 1526, 2}, false), "<s> Hello world</s>");
  expect_parity(llama2, peer_tokenizer("llama2"), false, sentencepiece_style_texts(20230718), "llama2");
  expect_decode_parity(llama2, peer_tokenizer("llama2"), false, 13, /*bytes_from=*/3);
}

// Yi's: a Replace normalizer alone (no dummy prefix), and add_bos_token false in its tokenizer_config.json.
TEST(BpeTokenizerPeers, YiMatchesTheLibrary) {
  SKIP_WITHOUT_PEERS();
  const auto& yi = peer("yi");
  EXPECT_EQ(yi.bos_id(), 1);
  EXPECT_EQ(yi.eos_id(), 2);
  EXPECT_EQ(yi.encode("Hello", true), yi.encode("Hello", false));  // add_bos_token false: no <|startoftext|>
  expect_parity(yi, peer_tokenizer("yi"), false, sentencepiece_style_texts(20231102), "yi");
  expect_decode_parity(yi, peer_tokenizer("yi"), false, 14, /*bytes_from=*/305);
}

// LLaMA-2's vocabulary under the Metaspace pre-tokenizer transformers writes without legacy (prepend_scheme first,
// no split), under Metaspace's other settings, with the older add_prefix_space form, and with the Metaspace decoder.
TEST(BpeTokenizerPeers, MetaspaceMatchesTheLibrary) {
  SKIP_WITHOUT_PEERS();
  TempDir tmp("bpe_metaspace");
  const auto base = json::parse(std::ifstream(peer_tokenizer("llama2")));
  const json metaspace_decoder = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"},
                                  {"split", true}};
  const std::vector<std::pair<json, json>> variants = {
      {{{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}, {"split", false}},
       base["decoder"]},
      {{{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}, {"split", true}},
       metaspace_decoder},
      {{{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "never"}, {"split", true}},
       {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "never"}, {"split", true}}},
      {{{"type", "Metaspace"}, {"replacement", "\u2581"}, {"add_prefix_space", true}}, metaspace_decoder},
  };
  const auto texts = sentencepiece_style_texts(20240205);
  for (size_t v = 0; v < variants.size(); ++v) {
    auto j = base;
    j["normalizer"] = nullptr;
    j["pre_tokenizer"] = variants[v].first;
    j["decoder"] = variants[v].second;
    const auto file = tmp.write("v" + std::to_string(v) + "/tokenizer.json", j.dump());
    SCOPED_TRACE(j["pre_tokenizer"].dump() + " " + j["decoder"].dump());
    const text::BpeTokenizer tok(file);
    expect_parity(tok, file, false, texts, "metaspace " + std::to_string(v));
    expect_decode_parity(tok, file, false, 15 + v, /*bytes_from=*/3);
  }
}

// GPT-2's pre-tokenizer (ByteLevel with its own regex and add_prefix_space), on LLaMA-3's vocabulary; and GPT-2's
// regex in a Split, the prefix space then going before each piece.
TEST(BpeTokenizerPeers, Gpt2PreTokenizerMatchesTheLibrary) {
  SKIP_WITHOUT_PEERS();
  TempDir tmp("bpe_gpt2");
  auto j = json::parse(std::ifstream(peer_tokenizer("llama3")));
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  j["model"]["ignore_merges"] = false;  // as GPT-2's own file
  const auto alone = tmp.write("alone/tokenizer.json", j.dump());
  j["pre_tokenizer"] = json::parse(R"({"type": "Sequence", "pretokenizers": [
      {"type": "Split",
       "pattern": {"Regex": "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"},
       "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": false}]})");
  const auto split = tmp.write("split/tokenizer.json", j.dump());
  auto texts = hard_texts();
  for (auto& t : random_texts(1977, 300)) texts.push_back(t);
  expect_parity(text::BpeTokenizer(alone), alone, false, texts, "gpt2 ByteLevel");
  expect_parity(text::BpeTokenizer(split), split, false, texts, "gpt2 Split");
}

TEST(BpeTokenizerPeers, FilesAndSpecialTokens) {
  SKIP_WITHOUT_PEERS();
  const auto& llama3 = peer("llama3");
  EXPECT_EQ(llama3.vocab_size(), 128256);
  EXPECT_EQ(llama3.bos_id(), 128000);
  EXPECT_EQ(llama3.eos_id(), 128001);
  EXPECT_EQ(llama3.encode("Hello world"), (std::vector<int64_t>{128000, 9906, 1917}));
  EXPECT_EQ(llama3.encode_continuation("Hello", " world"), (std::vector<int64_t>{1917}));
  // "1234" + "5" is 123|45 as a whole, not 123|4|5: a cut inside a pre-token is refused.
  const auto cut = error_of([&] { llama3.encode_continuation("1234", "5"); });
  EXPECT_NE(cut.find("do not split where \"5\" starts"), std::string::npos) << cut;
  EXPECT_EQ(llama3.id_to_piece(1917), "Ġworld");
  EXPECT_EQ(llama3.id_to_piece(128000), "<|begin_of_text|>");
  EXPECT_TRUE(llama3.is_special(128000));
  EXPECT_FALSE(llama3.is_special(9906));
  EXPECT_EQ(llama3.special_tokens().tokens().size(), 256u);
  EXPECT_EQ(llama3.decode({128000, 9906, 1917}), "Hello world");
  EXPECT_EQ(llama3.decode({128000, 9906, 1917}, false), "<|begin_of_text|>Hello world");

  const auto& qwen3 = peer("qwen3");
  EXPECT_EQ(qwen3.vocab_size(), 151669);
  EXPECT_EQ(qwen3.bos_id(), -1);
  EXPECT_EQ(qwen3.eos_id(), 151645);  // <|im_end|>, as its tokenizer_config.json says
  EXPECT_EQ(qwen3.pad_id(), 151643);  // <|endoftext|>
  EXPECT_EQ(qwen3.encode("Hi", true), qwen3.encode("Hi", false));
  EXPECT_EQ(qwen3.id_to_piece(151644), "<|im_start|>");
  EXPECT_TRUE(qwen3.is_special(151644));
  EXPECT_FALSE(qwen3.is_special(151667));  // <think> is an added token, not a special one
  EXPECT_EQ(qwen3.decode(qwen3.encode("<think>x</think><|im_end|>")), "<think>x</think>");

  TempDir tmp("bpe_save");
  qwen3.save_hf(tmp / "saved");
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(tmp / (std::string("saved/") + name))) << name;
  text::BpeTokenizer saved(tmp / "saved/tokenizer.json");
  EXPECT_EQ(saved.eos_id(), 151645);
  EXPECT_EQ(saved.encode("A slide <|im_end|>"), qwen3.encode("A slide <|im_end|>"));
}

// decode(encode(x)) gives x back: NFC'd for Qwen (its normaliser), cleaned up for LLaMA-3 (its config's clean-up).
TEST(BpeTokenizerPeers, RoundTrip) {
  SKIP_WITHOUT_PEERS();
  auto texts = hard_texts();
  for (auto& t : random_texts(4242, 300)) texts.push_back(t);
  for (const auto& t : texts) {
    EXPECT_EQ(peer("llama3").decode(peer("llama3").encode(t, false), false), text::clean_up_tokenization(t)) << t;
    EXPECT_EQ(peer("qwen3").decode(peer("qwen3").encode(t, false), false), utf32_to_utf8(text::nfc(utf8_to_utf32(t))))
        << t;
  }
}

// Several threads encoding at once get what one thread gets (the word cache is shared).
TEST(BpeTokenizerPeers, ConcurrentEncode) {
  SKIP_WITHOUT_PEERS();
  const text::BpeTokenizer tok(peer_tokenizer("qwen3"));
  const auto texts = random_texts(99, 200);
  std::vector<std::vector<int64_t>> expected;
  for (const auto& t : texts) expected.push_back(peer("qwen3").encode(t));
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (size_t i = 0; i < texts.size(); ++i) {
        const size_t at = (i + 50 * k) % texts.size();  // each thread starts elsewhere
        failures[k] += tok.encode(texts[at]) != expected[at];
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

// ---- a hand-made tokenizer: the ids follow from its merges by hand ----

// GPT-2's stand-in character of each byte: itself when printable, else U+0100 onwards in byte order.
std::string stand_in(int b) {
  auto printable = [](int c) { return (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF); };
  int next = 0x100;
  for (int c = 0; c < b; ++c) next += !printable(c);
  std::string out;
  append_utf8(out, static_cast<char32_t>(printable(b) ? b : next));
  return out;
}

const char* kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+)"
    R"(|\s+(?!\S)|\s+)";

// Bytes are ids 0-255 (byte b: id b), then he=256 ll=257 hell=258 hello=259 Ġw=260 or=261 Ġwor=262, xyz=263 (no
// merge makes it), <|endoftext|>=264 (special), <x>=265 (added, not special).
json tiny_tokenizer() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[stand_in(b)] = b;
  const std::vector<std::string> made = {"he", "ll", "hell", "hello", "Ġw", "or", "Ġwor", "xyz"};
  for (size_t i = 0; i < made.size(); ++i) vocab[made[i]] = 256 + static_cast<int>(i);
  json j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens",
       {{{"id", 264}, {"content", "<|endoftext|>"}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
         {"normalized", false}, {"special", true}},
        {{"id", 265}, {"content", "<x>"}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
         {"normalized", false}, {"special", false}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", kLlama3Regex}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}}},
      {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", {"h e", "l l", json::array({"he", "ll"}), "hell o", "Ġ w", "o r", "Ġw or"}}}}};
  return j;
}

TEST(BpeTokenizer, HandMadeMerges) {
  TempDir tmp("bpe_tiny");
  const auto path = tmp.write("tokenizer.json", tiny_tokenizer().dump());
  text::BpeTokenizer tok(path);
  EXPECT_EQ(tok.vocab_size(), 266);
  EXPECT_EQ(tok.bos_id(), -1);
  EXPECT_EQ(tok.eos_id(), 264);  // no tokenizer_config.json: <|endoftext|>
  // hello: he (rank 0), ll (1), hell (2), hello (3); " world": Ġw (4), or (5), Ġwor (6), then l, d alone.
  EXPECT_EQ(tok.encode("hello world"), (std::vector<int64_t>{259, 262, 'l', 'd'}));
  // Equal ranks merge leftmost first: lll -> ll l.
  EXPECT_EQ(tok.encode("lll"), (std::vector<int64_t>{257, 'l'}));
  // Merges only happen inside a pre-token: "he" then "'s" (a contraction) then "llo".
  EXPECT_EQ(tok.encode("he's llo"), (std::vector<int64_t>{256, '\'', 's', ' ', 257, 'o'}));
  EXPECT_EQ(tok.encode("xyz"), (std::vector<int64_t>{'x', 'y', 'z'}));  // no merge makes xyz
  EXPECT_EQ(tok.encode("hello<|endoftext|>hello<x> é"), (std::vector<int64_t>{259, 264, 259, 265, ' ', 0xC3, 0xA9}));
  EXPECT_EQ(tok.encode("<|endoftext|"),
            (std::vector<int64_t>{'<', '|', 'e', 'n', 'd', 'o', 'f', 't', 'e', 'x', 't', '|'}));
  EXPECT_EQ(tok.id_to_piece(262), "Ġwor");
  EXPECT_EQ(tok.id_to_piece(' '), "Ġ");
  EXPECT_TRUE(tok.is_special(264));
  EXPECT_FALSE(tok.is_special(265));
  ASSERT_EQ(tok.special_tokens().tokens().size(), 1u);
  EXPECT_EQ(tok.special_tokens().tokens()[0].content, "<|endoftext|>");
  EXPECT_EQ(tok.decode({259, 264, 262, 265}, false), "hello<|endoftext|> wor<x>");
  EXPECT_EQ(tok.decode({259, 264, 262, 265}, true), "hello wor<x>");
  // Invalid UTF-8 becomes U+FFFD per maximal invalid subpart: E2 82 (cut short) then FF then a lone C3.
  EXPECT_EQ(tok.decode({'a', 0xE2, 0x82, 0xFF, 'b', 0xC3}), "a\uFFFD\uFFFDb\uFFFD");
  EXPECT_EQ(tok.decode({0xED, 0xA0, 0x80, 0xF0, 0x9F, 0x98, 0x80}), "\uFFFD\uFFFD\uFFFD😀");
  for (const std::string t : {"hello world", "  x\n\n y\t", "héllo 日本 😀 <|endoftext|><x>", ""})
    EXPECT_EQ(tok.decode(tok.encode(t), false), t);

  // ignore_merges: a pre-token that is itself a token maps to it.
  auto j = tiny_tokenizer();
  j["model"]["ignore_merges"] = true;
  text::BpeTokenizer ignoring(tmp.write("ignore/tokenizer.json", j.dump()));
  EXPECT_EQ(ignoring.encode("xyz hello"), (std::vector<int64_t>{263, ' ', 259}));
}

// <unk> <s> </s> = 0 1 2, the byte tokens <0x41> <0xC3> <0xA9> = 3 4 5 (A, and é's two bytes), then ▁=6 a=7 b=8
// ▁a=9 ab=10 ▁ab=11; LLaMA-2's normalizer and decoder, byte fallback, fuse_unk.
json tiny_sentencepiece_tokenizer() {
  json vocab = json::object();
  const std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "<0x41>", "<0xC3>", "<0xA9>",
                                           "\u2581", "a", "b", "\u2581a", "ab", "\u2581ab"};
  for (size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = static_cast<int>(i);
  json added = json::array();
  for (int id = 0; id < 3; ++id)
    added.push_back({{"id", id}, {"content", tokens[id]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  json j = json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null, "pre_tokenizer": null,
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                   {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
    "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}], "pair": [],
                       "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"},
                "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
              "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true,
              "merges": [["\u2581", "a"], ["a", "b"], ["\u2581a", "b"]]}})");
  j["added_tokens"] = added;
  j["model"]["vocab"] = vocab;
  return j;
}

TEST(BpeTokenizer, HandMadeSentencePieceStyle) {
  TempDir tmp("bpe_tiny_sp");
  const auto path = tmp.write("fused/tokenizer.json", tiny_sentencepiece_tokenizer().dump());
  text::BpeTokenizer tok(path);
  using V = std::vector<int64_t>;
  // No tokenizer_config.json: BOS from the post-processor's template, EOS </s>.
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.unk_id(), 0);
  // "▁ab▁ab": ▁ a (rank 0) at both places, then ▁a b (rank 2); a b (rank 1) no longer has an a.
  EXPECT_EQ(tok.encode("ab ab"), (V{1, 11, 11}));
  EXPECT_EQ(tok.encode("b a"), (V{1, 6, 8, 9}));
  // Characters outside the vocabulary: their bytes' tokens, else <unk>, consecutive ones fused. As in the library,
  // an <unk> waits for the next character of the vocabulary: byte tokens go before it, and unknown characters on
  // both sides of them share it.
  EXPECT_EQ(tok.encode("é", false), (V{6, 4, 5}));
  EXPECT_EQ(tok.encode("A", false), (V{6, 3}));
  EXPECT_EQ(tok.encode("xy a", false), (V{6, 0, 9}));
  EXPECT_EQ(tok.encode("xyé z", false), (V{6, 4, 5, 0, 6, 0}));
  EXPECT_EQ(tok.encode("xéy", false), (V{6, 4, 5, 0}));
  // The special strings are cut out first; each run of text after one gets its own "▁" (the legacy rule).
  EXPECT_EQ(tok.encode("a</s>b", false), (V{9, 2, 6, 8}));
  EXPECT_EQ(tok.encode_continuation("a", " ab"), (V{11}));
  EXPECT_EQ(tok.decode({1, 11, 6, 4, 5, 2}), "ab é");
  EXPECT_EQ(tok.decode({1, 11, 6, 4, 5, 2}, false), "<s> ab é</s>");
  // A byte run that is not UTF-8 gives one U+FFFD per byte.
  EXPECT_EQ(tok.decode({4, 3, 7}), "\uFFFD\uFFFDa");
  EXPECT_EQ(tok.decode({7, 4}), "a\uFFFD");

  auto j = tiny_sentencepiece_tokenizer();
  j["model"]["fuse_unk"] = false;
  text::BpeTokenizer unfused(tmp.write("unfused/tokenizer.json", j.dump()));
  EXPECT_EQ(unfused.encode("xyé z", false), (V{6, 0, 4, 5, 0, 6, 0}));
  EXPECT_EQ(unfused.encode("xy a", false), (V{6, 0, 0, 9}));
  j["model"]["unk_token"] = nullptr;
  text::BpeTokenizer no_unk(tmp.write("no_unk/tokenizer.json", j.dump()));
  EXPECT_EQ(no_unk.encode("ab é", false), (V{11, 6, 4, 5}));
  const auto message = error_of([&] { no_unk.encode("ab x"); });
  EXPECT_NE(message.find("the character 'x' is not in the vocabulary"), std::string::npos) << message;
  EXPECT_NE(message.find(tmp / "no_unk/tokenizer.json"), std::string::npos) << message;
}

// The hand-made SentencePiece-style tokenizer (HandMadeSentencePieceStyle): <unk> with and without fuse_unk.
TEST(BpeTokenizerPeers, HandMadeSentencePieceStyleMatchesTheLibrary) {
  SKIP_WITHOUT_PEERS();
  TempDir tmp("bpe_tiny_sp_peer");
  const std::vector<std::string> texts = {"ab ab", "b a", "é", "A", "xyé z", "a</s>b", "  ab  ", "xx yy", "éé xé",
                                          "<s>a<unk>b</s>", "ABC abc", "", "xy a", "xéy", "xéAéy b", "aéxx"};
  for (const bool fuse : {true, false}) {
    auto j = tiny_sentencepiece_tokenizer();
    j["model"]["fuse_unk"] = fuse;
    const auto file = tmp.write(std::string(fuse ? "fused" : "unfused") + "/tokenizer.json", j.dump());
    expect_parity(text::BpeTokenizer(file), file, false, texts, fuse ? "fuse_unk" : "no fuse_unk");
  }
}

TEST(BpeTokenizer, TokenizerConfig) {
  TempDir tmp("bpe_config");
  const auto path = tmp.write("tokenizer.json", tiny_tokenizer().dump());
  tmp.write("tokenizer_config.json",
            R"({"bos_token": {"content": "<x>"}, "eos_token": "<|endoftext|>", "clean_up_tokenization_spaces": true})");
  text::BpeTokenizer tok(path);
  EXPECT_EQ(tok.bos_id(), 265);
  EXPECT_EQ(tok.eos_id(), 264);
  EXPECT_EQ(tok.pad_id(), -1);  // none named
  EXPECT_EQ(tok.encode("hello"), (std::vector<int64_t>{265, 259}));
  EXPECT_EQ(tok.encode_continuation("x", " hello"), (std::vector<int64_t>{' ', 259}));
  EXPECT_EQ(tok.decode(tok.encode("hello , world . I 'm", false)), "hello, world. I'm");

  tmp.write("tokenizer_config.json", R"({"bos_token": null, "eos_token": "<x>", "pad_token": "<|endoftext|>",)"
                                     R"( "clean_up_tokenization_spaces": false})");
  text::BpeTokenizer plain(path);
  EXPECT_EQ(plain.bos_id(), -1);
  EXPECT_EQ(plain.eos_id(), 265);
  EXPECT_EQ(plain.pad_id(), 264);
  EXPECT_EQ(plain.encode("hello"), (std::vector<int64_t>{259}));
  EXPECT_EQ(plain.decode(plain.encode("hello , world . I 'm")), "hello , world . I 'm");

  tmp.write("tokenizer_config.json", R"({"eos_token": "<nope>"})");
  const auto message = error_of([&] { text::BpeTokenizer bad(path); });
  EXPECT_NE(message.find("tokenizer_config.json"), std::string::npos) << message;
  EXPECT_NE(message.find("<nope>"), std::string::npos) << message;
  // A padding token that is none of its tokens is one transformers would add: none here.
  tmp.write("tokenizer_config.json", R"({"eos_token": "<x>", "pad_token": "<pad>"})");
  EXPECT_EQ(text::BpeTokenizer(path).pad_id(), -1);
}

TEST(BpeTokenizer, CleanUpTokenizationSpaces) {
  EXPECT_EQ(text::clean_up_tokenization("a . b ? c ! d , e ' f do n't I 'm he 's we 've they 're"),
            "a. b? c! d, e'f don't I'm he's we've they're");
  // In transformers' order: " ' " goes before " 's" is looked for.
  EXPECT_EQ(text::clean_up_tokenization("it ' s"), "it's");
  EXPECT_EQ(text::clean_up_tokenization(" . . ."), "...");
  EXPECT_EQ(text::clean_up_tokenization("no change here"), "no change here");
}

TEST(BpeTokenizer, PreTokenSplits) {
  using P = text::BpeTokenizer::SplitPattern;
  auto split = [](const std::string& s, P p) {
    std::vector<std::string> out;
    for (const auto& piece : text::split_pre_tokens(utf8_to_utf32(s), p)) out.push_back(utf32_to_utf8(piece));
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(split("I'M here  now\n\n  x 1234567 ok!!\n", P::kLlama3),
            (V{"I", "'M", " here", " ", " now", "\n\n", " ", " x", " ", "123", "456", "7", " ok", "!!\n"}));
  EXPECT_EQ(split("x 12 \t\n", P::kQwen2), (V{"x", " ", "1", "2", " \t\n"}));
  EXPECT_EQ(split("I'M here  12 ab!!  ", P::kGpt2), (V{"I", "'", "M", " here", " ", " 12", " ab", "!!", "  "}));
}

// Each refused file: the error names the file and what is not supported.
TEST(BpeTokenizer, RefusesWhatItDoesNotSupport) {
  TempDir tmp("bpe_refuse");
  auto expect_refused = [&](const std::string& name, const std::string& content, const std::string& what) {
    const auto path = tmp.write(name + "/tokenizer.json", content);
    const auto message = error_of([&] { text::BpeTokenizer tok(path); });
    EXPECT_NE(message.find(path), std::string::npos) << name << ": " << message;
    EXPECT_NE(message.find(what), std::string::npos) << name << ": " << message;
  };
  const auto tiny = tiny_tokenizer();
  expect_refused("truncated", tiny.dump().substr(0, 500), "not valid JSON");
  expect_refused("wordpiece", R"({"model": {"type": "WordPiece", "vocab": {}}})", "model type WordPiece");
  auto j = tiny;
  j["model"]["byte_fallback"] = true;
  expect_refused("byte_fallback", j.dump(), "byte_fallback is set for a byte-level pre-tokenizer");
  const auto sentencepiece = tiny_sentencepiece_tokenizer();
  j = sentencepiece;
  j["normalizer"]["normalizers"][1]["pattern"] = {{"Regex", " +"}};
  expect_refused("replace_regex", j.dump(), "Replace pattern {\"Regex\":\" +\"} is not supported");
  j = sentencepiece;
  j["decoder"]["decoders"][1] = {{"type", "WordPiece"}};
  expect_refused("decoder_step", j.dump(), "decoder WordPiece is not supported");
  j = sentencepiece;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"prepend_scheme", "sometimes"}};
  expect_refused("prepend_scheme", j.dump(), "Metaspace prepend_scheme 'sometimes' is not always, first or never");
  j = sentencepiece;
  j["decoder"]["decoders"][3]["content"] = "ab";
  expect_refused("strip", j.dump(), "Strip content 'ab' is not one character");
  j = tiny;
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+";
  expect_refused("regex", j.dump(), "Split regex '\\w+' is not supported");
  j = tiny;
  j["normalizer"] = {{"type", "NFKC"}};
  expect_refused("normalizer", j.dump(), "normalizer NFKC is not supported (only NFC, NFD, StripAccents, Lowercase");
  j = tiny;
  j["decoder"] = {{"type", "Metaspace"}};
  expect_refused("decoder", j.dump(), "decoder Metaspace");
  j = tiny;
  j["model"]["merges"].push_back("x q");
  expect_refused("merge", j.dump(), "merge 7 'x q' needs token 'xq'");
  j = tiny;
  j["model"]["vocab"]["duplicate"] = 7;
  expect_refused("duplicate", j.dump(), "id 7 is given to two tokens");
  j = tiny;
  j["added_tokens"][1]["lstrip"] = true;
  expect_refused("lstrip", j.dump(), "added token '<x>' sets lstrip");
  j = tiny;
  j["added_tokens"][1]["id"] = 300;  // the library would give it 265
  expect_refused("gap", j.dump(), "added token '<x>' has id 300 but the tokenizers library numbers it 265");
  j = tiny;
  j["model"]["vocab"].erase("Ā");
  expect_refused("bytes", j.dump(), "no token 'Ā' for byte 0");

  const auto path = tmp.write("ok/tokenizer.json", tiny.dump());
  text::BpeTokenizer tok(path);
  auto message = error_of([&] { tok.decode({1, 999}); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("id 999 is out of range (vocabulary size 266)"), std::string::npos) << message;
  message = error_of([&] { tok.encode("bad \xFF utf-8"); });
  EXPECT_NE(message.find("not valid UTF-8"), std::string::npos) << message;
  message = error_of([&] { text::BpeTokenizer missing(tmp / "none/tokenizer.json"); });
  EXPECT_NE(message.find("no such file"), std::string::npos) << message;
}

// ---- a tokenizer.json shaped as CONCH's (mahmoodlab/CONCH, conch_byte_level_bpe_uncased.json) ----

// Texts for the normalizers NFD, StripAccents and Lowercase: accents precomposed and decomposed, Greek sigmas,
// Turkish dotted I, German sharp s, full-width letters, marks (Mn, Mc, Me) on CJK and Indic letters, emoji, case.
std::vector<std::string> normalizer_texts() {
  return {"",
          " ",
          "   ",
          " \t\n  x  \n\n ",
          "a  b   c    d",
          "Café naïve Å ñ Ñ",
          "Cafe\u0301 nai\u0308ve A\u030A n\u0303 N\u0303",
          "\u212B \u2126 \u212A e\u0301\u0327 e\u0327\u0301 \u1E9B\u0323 o\u0308\u0301",
          "ΣΊΣΥΦΟΣ σοφός ς Σ ΑΣ ΌΣΟΣ.",
          "İstanbul İİ i\u0307 ı I",
          "Straße STRASSE \u1E9E ß",
          "ＨＥＬＬＯ ｗｏｒｌｄ ＡＢＣ １２３",
          "日\u0301本\u0308語\u20DD 中文 한국어 カタカナ",
          "हिन्दी क\u093E \u0915\u0903 ไทย",
          "emoji 😀👍🏽🇫🇷👨‍👩‍👧 1\uFE0F\u20E3 done",
          "The TUMOR Cells ARE Present; hElLo WoRlD",
          "ǅemal Ⅻ Ⓐ ﬁne ǈ",
          "\u0301 alone \u0301\u0301",
          "<start_of_text>Hello<end_of_text> <pad>",
          "THE CELL café"};
}

// A byte-level tokenizer.json in CONCH's shape with `normalizer`: <pad> <start_of_text> <end_of_text> = 0 1 2, the
// byte tokens from 3, then for each word below the merges that build it from its bytes left to right, so that text
// normalised to these words becomes few tokens and text that is not stays many.
json conch_shaped_tokenizer(const json& normalizer) {
  json vocab = json::object();
  const std::vector<std::string> specials = {"<pad>", "<start_of_text>", "<end_of_text>"};
  for (size_t i = 0; i < specials.size(); ++i) vocab[specials[i]] = static_cast<int>(i);
  for (int b = 0; b < 256; ++b) vocab[stand_in(b)] = 3 + b;
  json merges = json::array();
  for (const std::string word : {" the", " tumor", " cell", " cells", " cafe", " café", " naive", " are", " present",
                                 " straße", " strasse", " σοφος", " σ", " ς", " i\u0307", " istanbul", " hello",
                                 "e\u0301", "n\u0303", " ｗｏｒｌｄ", " 日本", "한국어"}) {
    std::string made;
    for (unsigned char b : word) {
      const std::string next = stand_in(b);
      if (!made.empty() && !vocab.contains(made + next)) {
        merges.push_back({made, next});
        vocab[made + next] = static_cast<int>(vocab.size());
      }
      made += next;
    }
  }
  json added = json::array();
  for (size_t i = 0; i < specials.size(); ++i)
    added.push_back({{"id", i}, {"content", specials[i]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  json j = json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<start_of_text>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<end_of_text>", "type_id": 0}}],
      "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
      "special_tokens": {
        "<end_of_text>": {"id": "<end_of_text>", "ids": [2], "tokens": ["<end_of_text>"]},
        "<start_of_text>": {"id": "<start_of_text>", "ids": [1], "tokens": ["<start_of_text>"]}}},
    "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
    "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
              "end_of_word_suffix": null, "fuse_unk": false}})");
  j["added_tokens"] = added;
  j["normalizer"] = normalizer;
  j["model"]["vocab"] = vocab;
  j["model"]["merges"] = merges;
  return j;
}

const json kConchNormalizer = json::parse(
    R"({"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"}, {"type": "Lowercase"}]})");

// The normalizers on their own, on facts of Unicode's data (Python's unicodedata gives the same).
TEST(BpeTokenizer, NfdStripAccentsLowercase) {
  auto normalize = [](const json& normalizer, const std::string& text) {
    return text::TextNormalizer(normalizer, "test: ").apply(text, text::SegmentStart::kText);
  };
  const json nfd = {{"type", "NFD"}}, strip = {{"type", "StripAccents"}}, lower = {{"type", "Lowercase"}};
  // Decomposed, the marks in canonical order (cedilla, class 202, before acute, 230); Hangul by arithmetic.
  EXPECT_EQ(normalize(nfd, "é e\u0301\u0327 Å 한"), "e\u0301 e\u0327\u0301 A\u030A \u1112\u1161\u11AB");
  // Every mark goes: nonspacing (U+0301), spacing (Devanagari AA, U+093E) and enclosing (U+20DD); precomposed
  // letters stay.
  EXPECT_EQ(normalize(strip, "e\u0301 \u0915\u093E \u65E5\u20DD é"), "e \u0915 \u65E5 é");
  // Each character on its own: no final sigma, dotted capital I to i + combining dot, sharp s kept.
  EXPECT_EQ(normalize(lower, "ΑΣ İ ẞ Ａ ǅ"), "ασ i\u0307 ß ａ ǆ");
  EXPECT_EQ(normalize(kConchNormalizer, "Café İ ÅNGSTRÖM"), "cafe i angstrom");
}

// Without the library: the template's BOS and EOS around the ids, the EOS taken from it.
TEST(BpeTokenizer, ConchShapedTemplate) {
  TempDir tmp("bpe_conch_template");
  const text::BpeTokenizer tok(tmp.write("tokenizer.json", conch_shaped_tokenizer(kConchNormalizer).dump()));
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.pad_id(), -1);  // no tokenizer_config.json names it
  EXPECT_EQ(tok.encode("", true), (std::vector<int64_t>{1, 2}));
  EXPECT_TRUE(tok.encode("", false).empty());
  for (const std::string t : {"The CELLS", "Café naïve", "<end_of_text>x"}) {
    auto expected = tok.encode(t, false);
    expected.insert(expected.begin(), 1);
    expected.push_back(2);
    EXPECT_EQ(tok.encode(t, true), expected) << t;
  }
  EXPECT_EQ(tok.decode(tok.encode("The CELLS", true)), " the cells");
}

// CONCH's shape: normalizer NFD, StripAccents, Lowercase; ByteLevel with a prefix space; BOS and EOS from
// TemplateProcessing; no unk_token. Ids with and without the special tokens, and decodes, equal the library's.
TEST(BpeTokenizerPeers, ConchShapedMatchesTheLibrary) {
  SKIP_WITHOUT_PEERS();
  TempDir tmp("bpe_conch");
  const auto file = tmp.write("tokenizer.json", conch_shaped_tokenizer(kConchNormalizer).dump());
  const text::BpeTokenizer tok(file);
  auto texts = normalizer_texts();
  for (auto& t : hard_texts()) texts.push_back(t);
  for (auto& t : random_texts(20240319, 300)) texts.push_back(t);
  expect_parity(tok, file, false, texts, "conch");
  expect_parity(tok, file, false, texts, "conch with special tokens", /*add_special=*/true);
  expect_decode_parity(tok, file, false, 16, /*bytes_from=*/3);
}

// Each of CONCH's normalizers alone, and NFD with Lowercase but no StripAccents (marks stay, decomposed).
TEST(BpeTokenizerPeers, NormalizersAloneMatchTheLibrary) {
  SKIP_WITHOUT_PEERS();
  TempDir tmp("bpe_normalizers");
  auto texts = normalizer_texts();
  for (auto& t : random_texts(20240320, 200)) texts.push_back(t);
  const std::vector<std::pair<std::string, json>> normalizers = {
      {"nfd", {{"type", "NFD"}}},
      {"strip_accents", {{"type", "StripAccents"}}},
      {"lowercase", {{"type", "Lowercase"}}},
      {"nfd_lowercase",
       json::parse(R"({"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "Lowercase"}]})")}};
  for (const auto& [name, normalizer] : normalizers) {
    const auto file = tmp.write(name + "/tokenizer.json", conch_shaped_tokenizer(normalizer).dump());
    expect_parity(text::BpeTokenizer(file), file, false, texts, name, /*add_special=*/true);
  }
}

}  // namespace
