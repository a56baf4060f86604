#include "text/tokenizer_json_steps.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/replace_all.h"
#include "core/utf8.h"
#include "text/char_properties.h"
#include "text/fix_text.h"

using nlohmann::json;

namespace pathvlm::text {
namespace {

std::string type_of(const json& step) {
  return step.is_object() && step.contains("type") && step["type"].is_string() ? step["type"].get<std::string>()
                                                                                : step.dump();
}

// A Replace step's {"String": "..."} pattern (a Regex one is refused).
std::string string_pattern(const json& step, const std::string& where) {
  const json& pattern = step.contains("pattern") ? step["pattern"] : json();
  PATHVLM_CHECK(pattern.is_object() && pattern.contains("String") && pattern["String"].is_string() &&
                    !pattern["String"].get<std::string>().empty(),
                where, "Replace pattern ", pattern.dump(), " is not supported (only a non-empty {\"String\": ...})");
  return pattern["String"].get<std::string>();
}

// A string field that must be one character (Strip's content, Metaspace's replacement).
std::string one_character(const json& step, const char* key, const std::string& fallback, const std::string& where) {
  const auto value = json_fields::string_or(step, key, fallback, where + type_of(step));
  PATHVLM_CHECK(utf8_error_at(value) == std::string::npos && utf8_to_utf32(value).size() == 1, where, type_of(step),
                " ", key, " '", value, "' is not one character");
  return value;
}

// The token <0xXX>'s byte, or -1 for any other token.
int fallback_byte(const std::string& token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
  int byte = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = token[i];
    const int digit = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                             : -1;
    if (digit < 0) return -1;
    byte = byte * 16 + digit;
  }
  return byte;
}

}  // namespace

TextNormalizer::TextNormalizer(const json& normalizer, const std::string& where) { read(normalizer, where); }

void TextNormalizer::read(const json& normalizer, const std::string& where) {
  if (normalizer.is_null()) return;
  const auto type = type_of(normalizer);
  if (type == "Sequence") {
    PATHVLM_CHECK(normalizer.contains("normalizers") && normalizer["normalizers"].is_array(), where,
                  "normalizer Sequence has no list of normalizers");
    for (const auto& step : normalizer["normalizers"]) read(step, where);
  } else if (type == "NFC") {
    steps_.push_back({Kind::kNfc, "", ""});
  } else if (type == "NFD") {
    steps_.push_back({Kind::kNfd, "", ""});
  } else if (type == "StripAccents") {
    steps_.push_back({Kind::kStripAccents, "", ""});
  } else if (type == "Lowercase") {
    steps_.push_back({Kind::kLowercase, "", ""});
  } else if (type == "Prepend") {
    steps_.push_back({Kind::kPrepend, "", json_fields::string_or(normalizer, "prepend", "", where + "Prepend")});
  } else if (type == "Replace") {
    steps_.push_back({Kind::kReplace, string_pattern(normalizer, where),
                      json_fields::string_or(normalizer, "content", "", where + "Replace")});
  } else {
    throw Error(str(where, "normalizer ", type, " is not supported (only NFC, NFD, StripAccents, Lowercase, Prepend ",
                    "and Replace, alone or in a Sequence)"));
  }
}

std::string TextNormalizer::apply(const std::string& text, SegmentStart start) const {
  std::string out = text;
  for (const auto& step : steps_) {
    switch (step.kind) {
      case Kind::kNfc:
        out = utf32_to_utf8(nfc(utf8_to_utf32(out)));
        break;
      case Kind::kNfd:
        out = utf32_to_utf8(nfd(utf8_to_utf32(out)));
        break;
      case Kind::kStripAccents: {
        auto chars = utf8_to_utf32(out);
        chars.erase(std::remove_if(chars.begin(), chars.end(), is_mark), chars.end());
        out = utf32_to_utf8(chars);
        break;
      }
      case Kind::kLowercase: {
        std::u32string lower;
        for (char32_t c : utf8_to_utf32(out)) append_lowercase(lower, c);
        out = utf32_to_utf8(lower);
        break;
      }
      case Kind::kPrepend:
        if (!out.empty() && start != SegmentStart::kContinuation) out = step.to + out;
        break;
      case Kind::kReplace:
        out = replace_all(out, step.from, step.to);
        break;
    }
  }
  return out;
}

Metaspace::Metaspace(const json& pre_tokenizer, const std::string& where) {
  replacement_ = one_character(pre_tokenizer, "replacement", kSentencePieceSpace, where);
  const std::string in = where + "Metaspace";
  // Files written before prepend_scheme existed say add_prefix_space (true: always).
  const auto scheme = json_fields::string_or(
      pre_tokenizer, "prepend_scheme",
      json_fields::bool_or(pre_tokenizer, "add_prefix_space", true, in) ? "always" : "never", in);
  PATHVLM_CHECK(scheme == "always" || scheme == "first" || scheme == "never", where, "Metaspace prepend_scheme '",
                scheme, "' is not always, first or never");
  prepend_ = scheme == "always" ? Prepend::kAlways : scheme == "first" ? Prepend::kFirst : Prepend::kNever;
  split_ = json_fields::bool_or(pre_tokenizer, "split", true, in);
}

std::vector<std::string> Metaspace::split(const std::string& text, SegmentStart start) const {
  std::string spaced = replace_all(text, " ", replacement_);
  const bool prepend = prepend_ == Prepend::kAlways ? start != SegmentStart::kContinuation
                       : prepend_ == Prepend::kFirst ? start == SegmentStart::kText
                                                     : false;
  if (prepend && spaced.compare(0, replacement_.size(), replacement_) != 0) spaced = replacement_ + spaced;
  if (!split_) return {spaced};
  // Cut before each replacement, which leads the piece after it.
  std::vector<std::string> pieces;
  size_t begin = 0;
  for (size_t at = spaced.find(replacement_, 1); at != std::string::npos; at = spaced.find(replacement_, at + 1)) {
    pieces.push_back(spaced.substr(begin, at - begin));
    begin = at;
  }
  if (begin < spaced.size()) pieces.push_back(spaced.substr(begin));
  return pieces;
}

TokenDecoder::TokenDecoder(const json& decoder, const std::string& where) { read(decoder, where); }

void TokenDecoder::read(const json& decoder, const std::string& where) {
  const auto type = type_of(decoder);
  const std::string in = where + "decoder " + type;
  if (type == "Sequence") {
    PATHVLM_CHECK(decoder.contains("decoders") && decoder["decoders"].is_array(), where,
                  "decoder Sequence has no list of decoders");
    for (const auto& step : decoder["decoders"]) read(step, where);
  } else if (type == "Replace") {
    steps_.push_back(
        {Kind::kReplace, string_pattern(decoder, where), json_fields::string_or(decoder, "content", "", in)});
  } else if (type == "ByteFallback") {
    steps_.push_back({Kind::kByteFallback, "", ""});
  } else if (type == "Fuse") {
    steps_.push_back({Kind::kFuse, "", ""});
  } else if (type == "Strip") {
    Step step{Kind::kStrip, one_character(decoder, "content", " ", where), ""};
    const auto start = json_fields::integer_or(decoder, "start", 0, in),
               stop = json_fields::integer_or(decoder, "stop", 0, in);
    PATHVLM_CHECK(start >= 0 && stop >= 0, in, ": start ", start, " and stop ", stop, " must not be negative");
    step.start = static_cast<size_t>(start), step.stop = static_cast<size_t>(stop);
    steps_.push_back(step);
  } else if (type == "Metaspace") {
    Step step{Kind::kMetaspace, one_character(decoder, "replacement", kSentencePieceSpace, where), ""};
    const auto scheme =
        json_fields::string_or(decoder, "prepend_scheme",
                               json_fields::bool_or(decoder, "add_prefix_space", true, in) ? "always" : "never", in);
    step.prepends = scheme != "never";
    steps_.push_back(step);
  } else {
    throw Error(str(where, "decoder ", type, " is not supported (only Replace, ByteFallback, Fuse, Strip and ",
                    "Metaspace, alone or in a Sequence; byte-level files decode with ByteLevel)"));
  }
}

std::string TokenDecoder::decode(std::vector<std::string> tokens) const {
  for (const auto& step : steps_) {
    switch (step.kind) {
      case Kind::kReplace:
        for (auto& token : tokens) token = replace_all(token, step.from, step.to);
        break;
      case Kind::kByteFallback: {
        // Runs of <0xXX> tokens become their bytes when those are UTF-8, else one U+FFFD per byte.
        std::vector<std::string> out;
        std::string bytes;
        size_t run = 0;
        auto flush = [&] {
          if (run == 0) return;
          if (utf8_error_at(bytes) == std::string::npos) {
            out.push_back(bytes);
          } else {
            for (size_t i = 0; i < run; ++i) out.push_back("\uFFFD");
          }
          bytes.clear(), run = 0;
        };
        for (auto& token : tokens) {
          const int byte = fallback_byte(token);
          if (byte >= 0) {
            bytes += static_cast<char>(byte), ++run;
            continue;
          }
          flush();
          out.push_back(std::move(token));
        }
        flush();
        tokens = std::move(out);
        break;
      }
      case Kind::kFuse: {
        std::string joined;
        for (const auto& token : tokens) joined += token;
        tokens = {joined};
        break;
      }
      case Kind::kStrip:
        for (auto& token : tokens) {
          auto chars = utf8_to_utf32(token);
          const char32_t c = utf8_to_utf32(step.from)[0];
          size_t begin = 0, end = chars.size();
          while (begin < step.start && begin < end && chars[begin] == c) ++begin;
          for (size_t cut = 0; cut < step.stop && end > begin && chars[end - 1] == c; ++cut) --end;
          token = utf32_to_utf8(chars.substr(begin, end - begin));
        }
        break;
      case Kind::kMetaspace:
        // Each replacement becomes a space, except in the first token, where the pre-tokenizer put them.
        for (size_t i = 0; i < tokens.size(); ++i)
          tokens[i] = replace_all(tokens[i], step.from, i == 0 && step.prepends ? "" : " ");
        break;
    }
  }
  std::string text;
  for (const auto& token : tokens) text += token;
  return text;
}

}  // namespace pathvlm::text
