#include "text/sentencepiece_json.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/text_file.h"
#include "text/added_tokens.h"
#include "text/tokenizer_json_steps.h"

namespace pathvlm::text {

namespace {

using nlohmann::json;

// SentencePiece's ModelProto (sentencepiece_model.proto), only the fields the conversion needs.
struct Piece {
  std::string piece;
  float score = 0;
  int type = 1;  // NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6
};
struct SentencePieceModel {
  std::vector<Piece> pieces;
  int model_type = 1;  // UNIGRAM 1, BPE 2
  bool byte_fallback = false;
  std::string normalizer = "nmt_nfkc";
  bool add_dummy_prefix = true, remove_extra_whitespaces = true;
};

// A protobuf wire-format reader over one message's bytes.
class Reader {
 public:
  Reader(std::string_view bytes, const std::string& where) : bytes_(bytes), where_(where) {}
  bool done() const { return at_ >= bytes_.size(); }
  size_t position() const { return at_; }
  // The next field: its number and wire type; its value through varint(), fixed32() or bytes(), or skip().
  std::pair<uint64_t, int> key() {
    const uint64_t k = varint();
    return {k >> 3, static_cast<int>(k & 7)};
  }
  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      PATHVLM_CHECK(at_ < bytes_.size(), where_, ": the SentencePiece model ends inside a number");
      const auto byte = static_cast<uint8_t>(bytes_[at_++]);
      value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (byte < 0x80) return value;
    }
    throw Error(str(where_, ": the SentencePiece model has a malformed number"));
  }
  float fixed32() {
    PATHVLM_CHECK(bytes_.size() - at_ >= 4, where_, ": the SentencePiece model ends inside a score");
    float value;
    std::memcpy(&value, bytes_.data() + at_, 4);  // little endian, as protobuf writes it
    at_ += 4;
    return value;
  }
  std::string_view bytes() {
    const uint64_t n = varint();
    PATHVLM_CHECK(n <= bytes_.size() - at_, where_, ": the SentencePiece model ends inside a field");
    const auto out = bytes_.substr(at_, n);
    at_ += n;
    return out;
  }
  void skip(int wire) {
    if (wire == 0) varint();
    else if (wire == 1) at_ = std::min(bytes_.size(), at_ + 8);
    else if (wire == 2) bytes();
    else if (wire == 5) fixed32();
    else throw Error(str(where_, ": the SentencePiece model has a field of wire type ", wire));
  }

 private:
  std::string_view bytes_;
  size_t at_ = 0;
  const std::string& where_;
};

SentencePieceModel read_model(const std::string& file) {
  const std::string data = read_text_file(file);
  const std::string where = "SentencePiece model '" + file + "'";
  SentencePieceModel model;
  Reader proto(data, where);
  while (!proto.done()) {
    const auto [field, wire] = proto.key();
    if (field == 1 && wire == 2) {
      Reader r(proto.bytes(), where);
      Piece piece;
      while (!r.done()) {
        const auto [f, w] = r.key();
        if (f == 1 && w == 2) piece.piece = std::string(r.bytes());
        else if (f == 2 && w == 5) piece.score = r.fixed32();
        else if (f == 3 && w == 0) piece.type = static_cast<int>(r.varint());
        else r.skip(w);
      }
      model.pieces.push_back(std::move(piece));
    } else if ((field == 2 || field == 3) && wire == 2) {
      Reader r(proto.bytes(), where);
      while (!r.done()) {
        const auto [f, w] = r.key();
        if (field == 2 && f == 3 && w == 0) model.model_type = static_cast<int>(r.varint());
        else if (field == 2 && f == 35 && w == 0) model.byte_fallback = r.varint() != 0;
        else if (field == 3 && f == 1 && w == 2) model.normalizer = std::string(r.bytes());
        else if (field == 3 && f == 3 && w == 0) model.add_dummy_prefix = r.varint() != 0;
        else if (field == 3 && f == 4 && w == 0) model.remove_extra_whitespaces = r.varint() != 0;
        else r.skip(w);
      }
    } else {
      proto.skip(wire);
    }
  }
  PATHVLM_CHECK(!model.pieces.empty(), where, ": no pieces");
  return model;
}

// LlamaConverter's merges (SentencePieceExtractor): every split of a piece into two pieces of the vocabulary, those of
// one piece ordered by the ids of their halves, all of them by the merged piece's score, highest first (stable).
std::vector<std::string> merges_of(const SentencePieceModel& model) {
  std::unordered_map<std::string, int64_t> vocab;
  for (size_t i = 0; i < model.pieces.size(); ++i) vocab.emplace(model.pieces[i].piece, static_cast<int64_t>(i));
  struct Merge {
    int64_t left, right;
    float score;
    std::string text;
  };
  std::vector<Merge> merges;
  for (const auto& p : model.pieces) {
    std::vector<Merge> local;
    for (size_t cut = 1; cut < p.piece.size(); ++cut) {
      const auto left = vocab.find(p.piece.substr(0, cut)), right = vocab.find(p.piece.substr(cut));
      if (left != vocab.end() && right != vocab.end())
        local.push_back({left->second, right->second, p.score, left->first + " " + right->first});
    }
    std::sort(local.begin(), local.end(),
              [](const Merge& a, const Merge& b) { return std::tie(a.left, a.right) < std::tie(b.left, b.right); });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) { return a.score > b.score; });
  std::vector<std::string> out;
  out.reserve(merges.size());
  for (auto& m : merges) out.push_back(std::move(m.text));
  return out;
}

json token(int64_t id, const std::string& content, bool special) {
  auto t = hf_added_token(content, special);
  t["id"] = id;
  return t;
}

json replace(const std::string& from, const std::string& to) {
  return {{"type", "Replace"}, {"pattern", {{"String", from}}}, {"content", to}};
}

void append_varint(std::string& out, uint64_t value) {
  for (; value >= 0x80; value >>= 7) out += static_cast<char>(0x80 | (value & 0x7f));
  out += static_cast<char>(value);
}

}  // namespace

std::string sentencepiece_model_without_dummy_prefix(const std::string& model_file) {
  const std::string data = read_text_file(model_file);
  const std::string where = "SentencePiece model '" + model_file + "'";
  // ModelProto field 3 is its NormalizerSpec, whose field 3 is add_dummy_prefix (absent: true).
  constexpr char kNormalizerKey = (3 << 3) | 2, kAddDummyPrefixFalse[] = {(3 << 3) | 0, 0};
  std::string out;
  bool patched = false;
  Reader proto(data, where);
  while (!proto.done()) {
    const size_t begin = proto.position();
    const auto [field, wire] = proto.key();
    if (field != 3 || wire != 2) {
      proto.skip(wire);
      out.append(data, begin, proto.position() - begin);
      continue;
    }
    const auto spec = proto.bytes();
    std::string kept;
    Reader r(spec, where);
    while (!r.done()) {
      const size_t at = r.position();
      const auto [f, w] = r.key();
      r.skip(w);
      if (f != 3) kept.append(spec.substr(at, r.position() - at));
    }
    kept.append(kAddDummyPrefixFalse, 2);
    out += kNormalizerKey;
    append_varint(out, kept.size());
    out += kept;
    patched = true;
  }
  PATHVLM_CHECK(patched, where, ": no normalizer_spec");
  return out;
}

std::string sentencepiece_tokenizer_json(const std::string& model_file, int64_t bos_id, bool legacy,
                                         const std::vector<ConfigAddedToken>& config_added) {
  const auto model = read_model(model_file);
  // What LlamaConverter reproduces exactly: byte-fallback BPE whose text reaches the pieces unchanged.
  if (model.model_type != 2 || !model.byte_fallback || model.normalizer != "identity" ||
      model.remove_extra_whitespaces)
    return "";
  // A merge is written "left right": a piece holding a space (SentencePiece writes spaces as ▁) cannot be in one.
  for (const auto& p : model.pieces)
    if (p.piece.find(' ') != std::string::npos) return "";
  const std::string& space = kSentencePieceSpace;
  json vocab = json::object(), added = json::array();
  std::string unk;
  for (size_t i = 0; i < model.pieces.size(); ++i) {
    const auto& p = model.pieces[i];
    const auto id = static_cast<int64_t>(i);
    vocab[p.piece] = id;
    if (p.type == 2) unk = p.piece;
    if (p.type == 2 || p.type == 3) added.push_back(token(id, p.piece, true));
    if (p.type == 4) added.push_back(token(id, p.piece, false));
  }
  for (const auto& t : config_added) {
    const auto type = t.id < static_cast<int64_t>(model.pieces.size()) ? model.pieces[t.id].type : 1;
    if (type != 2 && type != 3 && type != 4) added.push_back(token(t.id, t.content, t.special));
  }
  // Legacy: each run of text between special tokens gets the "▁" prefix (a normalizer); otherwise only the text's
  // start does (Metaspace, prepend_scheme first).
  json normalizer = nullptr, pre_tokenizer = nullptr;
  if (legacy) {
    json normalizers = json::array();
    if (model.add_dummy_prefix) normalizers.push_back({{"type", "Prepend"}, {"prepend", space}});
    normalizers.push_back(replace(" ", space));
    normalizer = {{"type", "Sequence"}, {"normalizers", normalizers}};
  } else {
    pre_tokenizer = {{"type", "Metaspace"},
                     {"replacement", space},
                     {"prepend_scheme", model.add_dummy_prefix ? "first" : "never"},
                     {"split", false}};
  }
  json decoders = {replace(space, " "), {{"type", "ByteFallback"}}, {{"type", "Fuse"}}};
  if (model.add_dummy_prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  json post = nullptr;
  if (bos_id >= 0) {
    const auto bos = model.pieces.at(static_cast<size_t>(bos_id)).piece;
    const json first = {{"SpecialToken", {{"id", bos}, {"type_id", 0}}}};
    post = {{"type", "TemplateProcessing"},
            {"single", {first, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"pair",
             {first,
              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
              {{"SpecialToken", {{"id", bos}, {"type_id", 1}}}},
              {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
            {"special_tokens", {{bos, {{"id", bos}, {"ids", {bos_id}}, {"tokens", {bos}}}}}}};
  }
  const json tokenizer = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", normalizer},
      {"pre_tokenizer", pre_tokenizer},
      {"post_processor", post},
      {"decoder", {{"type", "Sequence"}, {"decoders", decoders}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", unk.empty() ? json(nullptr) : json(unk)},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"vocab", vocab},
        {"merges", merges_of(model)}}}};
  try {
    return tokenizer.dump() + "\n";
  } catch (const json::exception&) {
    return "";  // a piece that is not UTF-8 has no place in a tokenizer.json
  }
}

}  // namespace pathvlm::text
