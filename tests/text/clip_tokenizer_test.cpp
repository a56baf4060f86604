// CLIP BPE tokenizer: byte-identical to open_clip's SimpleTokenizer on the 60 shared vectors and on 633 texts made
// for its cleaning (ftfy with its mojibake repair, HTML, the pre-tokeniser's classes), plus hand-checked cases
// (cleaning, truncation, unicode, special tokens, bad inputs) and the ftfy fixes and NFC on their own.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "core/utf8.h"
#include "text/clip_tokenizer.h"
#include "text/fix_text.h"
#include "test_util.h"

using pathvlm::text::ClipTokenizer;
using pathvlm::text::fix_text;
using pathvlm::text::nfc;

namespace {

const std::string kData = PATHVLM_SHARED_DATA;
const std::string kVocab = kData + "/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz";
const std::string kVectors = kData + "/tokenizers/clip_tokenizer_vectors.jsonl";

#define SKIP_WITHOUT_VOCAB()                                                                    \
  if (!std::filesystem::exists(kVocab))                                                          \
  GTEST_SKIP() << "shared test data missing: " << kVocab << " (see ../shared/data/README.md)"

const ClipTokenizer& tokenizer() {
  static ClipTokenizer tok(kVocab, 77);
  return tok;
}

// BPE ids without sot/eot/padding.
std::vector<int64_t> body(const std::string& text) { return tokenizer().tokenize(text); }

}  // namespace

TEST(ClipTokenizer, MatchesOpenClipOnEverySharedVector) {
  SKIP_WITHOUT_VOCAB();
  std::ifstream in(kVectors);
  ASSERT_TRUE(in) << kVectors;
  std::string line;
  int count = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto record = nlohmann::json::parse(line);
    auto expected = record["ids"].get<std::vector<int64_t>>();
    auto text = record["text"].get<std::string>();
    EXPECT_EQ(tokenizer().encode(text), expected) << "text: " << text;
    ++count;
  }
  EXPECT_EQ(count, 60);
}

// Written by tests/text/clip_tokenizer_vectors.py with open_clip's own tokenizer (ftfy 6, regex): curly quotes,
// ligatures, fullwidth forms, decomposed accents, HTML entities (ftfy's rules, then html.unescape twice), lines with
// '<', terminal escapes, controls, line breaks, U+0345, mojibake of ten codecs (138 texts ftfy repairs), and random
// mixes of them. Ids end at eot, unpadded.
TEST(ClipTokenizer, MatchesOpenClipOnTextsThatNeedCleaning) {
  SKIP_WITHOUT_VOCAB();
  const std::string path = std::string(PATHVLM_SOURCE_DIR) + "/tests/text/clip_tokenizer_ftfy_vectors.jsonl";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::string line;
  int count = 0, differ = 0;
  while (std::getline(in, line)) {
    auto record = nlohmann::json::parse(line);
    auto expected = record["ids"].get<std::vector<int64_t>>();
    expected.resize(77, 0);
    auto text = record["text"].get<std::string>();
    auto ids = tokenizer().encode(text);
    if (ids != expected && ++differ <= 5) ADD_FAILURE() << "text: " << record["text"].dump();
    ++count;
  }
  EXPECT_EQ(count, 633);
  EXPECT_EQ(differ, 0);
}

TEST(FixText, NfcComposesReordersAndKeepsExclusions) {
  EXPECT_EQ(nfc(U"e\u0301"), U"\u00e9");
  EXPECT_EQ(nfc(U"\u212b"), U"\u00c5");                        // a singleton decomposition
  EXPECT_EQ(nfc(U"q\u0307\u0323"), U"q\u0323\u0307");            // marks in class order, nothing to compose
  EXPECT_EQ(nfc(U"a\u0323\u0302"), U"\u1ead");                  // both marks join, the lower class first
  EXPECT_EQ(nfc(U"\u0958"), U"\u0915\u093c");                   // excluded from composition
  EXPECT_EQ(nfc(U"\u1100\u1161\u11a8"), U"\uac01");             // Hangul L V T
  EXPECT_EQ(nfc(U"\uac00\u11a8"), U"\uac01");                   // LV + T
  EXPECT_EQ(nfc(U"a\u0301\u0301"), U"\u00e1\u0301");            // the second acute is blocked by the first
  EXPECT_EQ(nfc(U"plain ascii"), U"plain ascii");
}

TEST(FixText, FtfyFixesInItsOrder) {
  EXPECT_EQ(fix_text(U"Crohn\u2019s \u201cskip\u201d \ufb01brosis \uff28\uff06\uff25\u3000x"), U"Crohn's \"skip\" fibrosis H&E x");
  EXPECT_EQ(fix_text(U"\u0149"), U"'n");                            // ligature, then its U+02BC uncurled
  EXPECT_EQ(fix_text(U"P&EACUTE;REZ &amp;amp; &eacute &#x2019;s"), U"P\u00c9REZ & &eacute 's");  // to a fixed point
  EXPECT_EQ(fix_text(U"&#59; &#12a; &nTILDE;"), U"&#59; &#12a; &nTILDE;");  // ftfy leaves these
  EXPECT_EQ(fix_text(U"a &amp;\n<b> &amp;\n&amp;"), U"a &\n<b> &amp;\n&amp;");  // no entities from the first '<' on
  EXPECT_EQ(fix_text(U"\x1b[1;31mred\x1b[0m\x07 \ufeffx\x80\x85\x81"), U"red x\u20ac\u2026\x81");
  EXPECT_EQ(fix_text(U"a\r\nb\rc\u2028d\u2029e"), U"a\nb\nc\nd\ne");
  EXPECT_EQ(fix_text(U"cafe\u0301 \u00e6 \u0153 \u00b5"), U"caf\u00e9 \u00e6 \u0153 \u00b5");  // NFC, not NFKC
}

TEST(FixText, MojibakeIsDecodedBackOnlyWhereItLooksLikeIt) {
  EXPECT_EQ(fix_text(U"caf\u00c3\u00a9 na\u00c3\u00afve"), U"caf\u00e9 na\u00efve");             // UTF-8 read as Latin-1
  EXPECT_EQ(fix_text(U"\u00e2\u20ac\u0153hi\u00e2\u20ac\ufffd"), U"\"hi\ufffd");                // Windows-1252, a byte lost
  EXPECT_EQ(fix_text(U"voil\u00c3 le travail"), U"voil\u00e0 le travail");                 // 0xA0 turned into a space
  EXPECT_EQ(fix_text(U"\u0432\u0402\u045a"), U"\"");                    // Windows-1251 of a curly quote, uncurled
  EXPECT_EQ(fix_text(U"real caf\u00e9 and \u00c3\u00a9"), U"real caf\u00e9 and \u00e9");  // inconsistent: fixed alone
  EXPECT_EQ(fix_text(U"\u00ed\u00a0\u00bd\u00ed\u00b2\u00a9"), U"\U0001f4a9");               // CESU-8
  EXPECT_EQ(fix_text(U"\u00c3 la carte"), U"\u00e0 la carte");                              // "Ã " is "à " here
  EXPECT_EQ(fix_text(U"50 \u00b5m, \u00d7400, na\u00efve, \u00c5 \u00bd"), U"50 \u00b5m, \u00d7400, na\u00efve, \u00c5 \u00bd");  // real
}

TEST(ClipTokenizer, VocabularyLayout) {
  SKIP_WITHOUT_VOCAB();
  const auto& vocab = tokenizer().vocabulary();
  EXPECT_EQ(vocab.size(), 49408u);
  EXPECT_EQ(vocab.at("!"), 0);
  EXPECT_EQ(vocab.at("a</w>"), 320);
  EXPECT_EQ(vocab.at("<start_of_text>"), ClipTokenizer::kStartOfText);
  EXPECT_EQ(vocab.at("<end_of_text>"), ClipTokenizer::kEndOfText);
  EXPECT_EQ(tokenizer().merges().size(), 48894u);
  EXPECT_EQ(tokenizer().merges().front(), std::make_pair(std::string("i"), std::string("n")));
}

TEST(ClipTokenizer, EmptyAndWhitespaceOnlyTexts) {
  SKIP_WITHOUT_VOCAB();
  std::vector<int64_t> expected(77, 0);
  expected[0] = 49406, expected[1] = 49407;
  EXPECT_EQ(tokenizer().encode(""), expected);
  EXPECT_EQ(tokenizer().encode(" \t\n  "), expected);
  EXPECT_EQ(tokenizer().encode("&nbsp;"), expected);  // U+00A0 after unescaping: whitespace
}

TEST(ClipTokenizer, CleaningUnescapesTwiceCollapsesWhitespaceAndLowers) {
  SKIP_WITHOUT_VOCAB();
  EXPECT_EQ(ClipTokenizer::clean("  A&amp;amp;B \t\n C  "), "a&b c");
  EXPECT_EQ(ClipTokenizer::clean("&lt;b&gt; &#65;&#x42;&#X43 &eacute;&Eacute; &ampx &nosuch; &#;"),
            "<b> abc \xc3\xa9\xc3\xa9 &x &nosuch; &#;");
  EXPECT_EQ(ClipTokenizer::clean("&#128; &#0; &#1;x"), "\xe2\x82\xac \xef\xbf\xbd x");  // cp1252 fix-up, NUL, dropped
  EXPECT_EQ(ClipTokenizer::clean("\xce\x9f\xce\x94\xce\x9f\xce\xa3 \xce\xa3\xce\x91"),  // ΟΔΟΣ ΣΑ: final sigma
            "\xce\xbf\xce\xb4\xce\xbf\xcf\x82 \xcf\x83\xce\xb1");
  EXPECT_EQ(ClipTokenizer::clean("\xc4\xb0"), "i\xcc\x87");  // İ -> i + combining dot, as str.lower()
  EXPECT_EQ(body("HELLO World"), body("hello world"));
}

TEST(ClipTokenizer, PreTokenisationSplitsContractionsDigitsAndPunctuation) {
  SKIP_WITHOUT_VOCAB();
  const auto& v = tokenizer().vocabulary();
  // "it's" -> it + 's ; digits one at a time ; punctuation runs stay together.
  EXPECT_EQ(body("it's"), (std::vector<int64_t>{v.at("it</w>"), v.at("'s</w>")}));
  EXPECT_EQ(body("42"), (std::vector<int64_t>{v.at("4</w>"), v.at("2</w>")}));
  EXPECT_EQ(body("?!"), (std::vector<int64_t>{v.at("?!</w>")}));
  // A literal special token in the text is that token.
  EXPECT_EQ(body("a<end_of_text>"), (std::vector<int64_t>{v.at("a</w>"), ClipTokenizer::kEndOfText}));
}

TEST(ClipTokenizer, UnicodeLettersAndNumbersOutsideAscii) {
  SKIP_WITHOUT_VOCAB();
  // Cyrillic and CJK are letters (one pre-token each run); Arabic-Indic digits are numbers (one each).
  auto cyrillic = body("\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82");  // Привет
  EXPECT_GT(cyrillic.size(), 1u);
  auto digits = body("\xd9\xa1\xd9\xa2");  // ١٢
  auto one = body("\xd9\xa1");
  auto two = body("\xd9\xa2");
  std::vector<int64_t> both = one;
  both.insert(both.end(), two.begin(), two.end());
  EXPECT_EQ(digits, both);
  // Every byte of an emoji survives (byte-level BPE never maps to unknown).
  EXPECT_FALSE(body("\xf0\x9f\x94\xac").empty());
}

TEST(ClipTokenizer, TruncationKeepsEndTokenLast) {
  SKIP_WITHOUT_VOCAB();
  std::string text;
  for (int i = 0; i < 100; ++i) text += "tumor ";
  auto ids = tokenizer().encode(text);
  ASSERT_EQ(ids.size(), 77u);
  EXPECT_EQ(ids.front(), 49406);
  EXPECT_EQ(ids.back(), 49407);
  for (int i = 1; i < 76; ++i) EXPECT_EQ(ids[i], tokenizer().vocabulary().at("tumor</w>"));

  ClipTokenizer short_context(kVocab, 5);
  EXPECT_EQ(short_context.encode("one two three four five"),
            (std::vector<int64_t>{49406, body("one")[0], body("two")[0], body("three")[0], 49407}));
  EXPECT_EQ(short_context.encode("one two"), (std::vector<int64_t>{49406, body("one")[0], body("two")[0], 49407, 0}));
}

TEST(ClipTokenizer, BatchIsInt64RowsOfEncode) {
  SKIP_WITHOUT_VOCAB();
  auto batch = tokenizer().batch({"benign colonic tissue", ""});
  ASSERT_EQ(batch.sizes(), (std::vector<int64_t>{2, 77}));
  EXPECT_EQ(batch.scalar_type(), torch::kInt64);
  auto row0 = tokenizer().encode("benign colonic tissue");
  for (int i = 0; i < 77; ++i) EXPECT_EQ(batch[0][i].item<int64_t>(), row0[i]);
  EXPECT_EQ(batch[1][1].item<int64_t>(), 49407);
}

// Hugging Face tokenizer directories (vocab.json + merges.txt): tests/text/clip_tokenizer_files_test.cpp.

TEST(ClipTokenizer, BadInputsGiveClearErrors) {
  SKIP_WITHOUT_VOCAB();
  try {
    ClipTokenizer missing("/nonexistent/bpe.txt.gz");
    FAIL() << "expected an error";
  } catch (const pathvlm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/bpe.txt.gz"), std::string::npos) << e.what();
  }
  auto not_bpe = std::filesystem::temp_directory_path() / "pathvlm_not_bpe.txt.gz";
  { std::ofstream(not_bpe) << "plain text, not gzip\nab\n"; }
  EXPECT_THROW(ClipTokenizer(not_bpe.string()), pathvlm::Error);  // too few merges
  std::filesystem::remove(not_bpe);
  EXPECT_THROW(ClipTokenizer(kVocab, 1), pathvlm::Error);
  EXPECT_THROW(tokenizer().encode("bad \xff utf-8"), pathvlm::Error);
  EXPECT_THROW(tokenizer().encode("truncated \xc3"), pathvlm::Error);
}

// Random texts built from what the cleaning steps react to (entities, mojibake, ligatures, controls, combining marks,
// any code point) and random bytes: every text gives context-length ids (sot first, eot present, ids in the
// vocabulary, zero padding after eot), or a pathvlm::Error when it is not UTF-8. Nothing else, for any seed.
TEST(ClipTokenizer, RandomTextsGiveWellFormedIdsOrAUtf8Error) {
  SKIP_WITHOUT_VOCAB();
  const std::vector<std::string> pieces = {
      "a", "Tumour", "9", " ", "  ", "\t", "\n", "\r", ".", "'s", "'", "\"", "&", ";", "#", "&amp;", "&#", "&#x",
      "&lt", "&#x1F600;", "&#0;", "&#99999999999;", "&nbsp", "&amp;amp;",
      "\xc3\x83", "\xc2\xa9", "\xc3\xa2\xe2\x82\xac\xe2\x84\xa2", "\xc3\x83\xc2\xa9",  // mojibake
      "\xc2\x80", "\xc2\x9d", "\xef\xac\x81", "\xcc\x81", "\xe2\x80\x8b", "\xef\xbb\xbf", "\xef\xbf\xbd",
      "\xe4\xb8\xad", "\xf0\x9f\x98\x80", "\xef\xbc\xa1", "\xea\xb0\x80", "\x01", "\x1b", "\x7f",
      "\xc2\xa0", "\xe2\x80\x98", "\xd0\x96", "\xe0\xa4\x95", "\xe0\xa5\x8d", "\xc3\x9f", "\xc4\xb0",
      "\xf4\x8f\xbf\xbf"};
  const int64_t vocabulary = static_cast<int64_t>(tokenizer().vocabulary().size());
  std::mt19937_64 rng(pathvlm::testing::test_seed(20261205));
  int not_utf8 = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string text;
    if (i % 5 == 4) {
      for (size_t n = rng() % 30; n > 0; --n) text += static_cast<char>(rng() % 256);
    } else {
      for (size_t n = rng() % 40; n > 0; --n) {
        if (rng() % 10 == 0) pathvlm::append_utf8(text, static_cast<char32_t>(rng() % 0x30000));
        else text += pieces[rng() % pieces.size()];
      }
    }
    std::vector<int64_t> ids;
    try {
      ids = tokenizer().encode(text);
    } catch (const pathvlm::Error& e) {
      ASSERT_NE(pathvlm::utf8_error_at(text), std::string::npos) << "an error on valid UTF-8: " << e.what();
      ++not_utf8;
      continue;
    }
    ASSERT_EQ(ids.size(), 77u) << text;
    EXPECT_EQ(ids.front(), 49406) << text;
    const auto eot = std::find(ids.begin(), ids.end(), 49407);
    ASSERT_NE(eot, ids.end()) << text;
    for (auto it = ids.begin(); it != eot; ++it) ASSERT_TRUE(*it >= 0 && *it < vocabulary) << text;
    for (auto it = eot + 1; it != ids.end(); ++it) ASSERT_EQ(*it, 0) << text;
  }
  EXPECT_GT(not_utf8, 0);  // the random bytes reached the check
}
