#include "data/webdataset.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include "core/ascii.h"
#include "core/error.h"
#include "data/data_files.h"

namespace pathvlm::data {
namespace {

constexpr uint64_t kMaxPaths = 10'000'000;

bool all_digits(const std::string& s) {
  return !s.empty() && s.size() <= 18 &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// "{first..last}" or "{first..last..step}" of non-negative integers, zero-padded to the wider bound when either is
// written with a leading zero, or "{a..e}" of letters; nullopt when `body` is not a range.
std::optional<std::vector<std::string>> numeric_range(const std::string& body, const std::string& list) {
  const size_t dots = body.find("..");
  if (dots == std::string::npos) return std::nullopt;
  const std::string first = body.substr(0, dots);
  std::string last = body.substr(dots + 2), step_text = "1";
  if (const size_t more = last.find(".."); more != std::string::npos) {
    step_text = last.substr(more + 2);
    last = last.substr(0, more);
  }
  if (!all_digits(step_text)) return std::nullopt;
  const int64_t step = std::max<int64_t>(1, std::stoll(step_text));
  if (first.size() == 1 && last.size() == 1 && std::isalpha(static_cast<unsigned char>(first[0])) &&
      std::isalpha(static_cast<unsigned char>(last[0]))) {  // {a..e}
    const int from = first[0], to = last[0], direction = from <= to ? 1 : -1;
    std::vector<std::string> letters;
    for (int c = from; (to - c) * direction >= 0; c += direction * static_cast<int>(std::min<int64_t>(step, 64)))
      letters.push_back(std::string(1, static_cast<char>(c)));
    return letters;
  }
  if (!all_digits(first) || !all_digits(last)) return std::nullopt;
  const int64_t a = std::stoll(first), b = std::stoll(last);
  const uint64_t count = static_cast<uint64_t>((a <= b ? b - a : a - b) / step) + 1;
  PATHVLM_CHECK(count <= kMaxPaths, "shard list '", list, "': {", body, "} names ", count, " paths (at most ",
                kMaxPaths, ")");
  const bool padded = (first.size() > 1 && first[0] == '0') || (last.size() > 1 && last[0] == '0');
  const size_t width = padded ? std::max(first.size(), last.size()) : 0;
  std::vector<std::string> out;
  for (uint64_t i = 0; i < count; ++i) {
    std::string n = std::to_string(a <= b ? a + static_cast<int64_t>(i) * step : a - static_cast<int64_t>(i) * step);
    out.push_back(std::string(width > n.size() ? width - n.size() : 0, '0') + n);
  }
  return out;
}

std::vector<std::string> expand_braces(const std::string& s, const std::string& list) {
  const size_t open = s.find('{');
  if (open == std::string::npos) {
    PATHVLM_CHECK(s.find('}') == std::string::npos, "shard list '", list, "': unbalanced '}'");
    return {s};
  }
  size_t close = std::string::npos;
  std::vector<size_t> commas;
  for (size_t i = open, depth = 0; i < s.size() && close == std::string::npos; ++i) {
    if (s[i] == '{')
      ++depth;
    else if (s[i] == '}' && --depth == 0)
      close = i;
    else if (s[i] == ',' && depth == 1)
      commas.push_back(i);
  }
  PATHVLM_CHECK(close != std::string::npos, "shard list '", list, "': unbalanced '{'");
  const std::string prefix = s.substr(0, open), body = s.substr(open + 1, close - open - 1);
  std::vector<std::string> heads;
  if (!commas.empty()) {
    size_t from = open + 1;
    commas.push_back(close);
    for (size_t comma : commas) {
      for (auto& x : expand_braces(s.substr(from, comma - from), list)) heads.push_back(prefix + x);
      from = comma + 1;
    }
  } else if (auto range = numeric_range(body, list)) {
    for (auto& x : *range) heads.push_back(prefix + x);
  } else {  // "{x}" stays as written, as in bash
    for (auto& x : expand_braces(body, list)) heads.push_back(prefix + "{" + x + "}");
  }
  const auto tails = expand_braces(s.substr(close + 1), list);
  PATHVLM_CHECK(heads.size() * tails.size() <= kMaxPaths, "shard list '", list, "' names more than ", kMaxPaths,
                " paths");
  std::vector<std::string> out;
  out.reserve(heads.size() * tails.size());
  for (const auto& h : heads)
    for (const auto& t : tails) out.push_back(h + t);
  return out;
}

}  // namespace

std::vector<std::string> expand_shard_list(const std::string& list) {
  std::vector<std::string> out;
  for (const auto& source : split_sources(list, "shard list"))
    for (auto& path : expand_braces(source, list)) out.push_back(std::move(path));
  return out;
}

WdsShard read_wds_shard(const std::string& path) {
  tar::Listing listing = tar::list(path);
  WdsShard shard;
  shard.path = path;
  shard.problem = listing.problem;
  for (tar::Member& member : listing.members) {
    const std::string& name = member.name;
    const size_t base = name.rfind('/') == std::string::npos ? 0 : name.rfind('/') + 1;
    const size_t dot = name.find('.', base);
    if (dot == std::string::npos || dot == base || dot + 1 == name.size()) continue;  // no key or no field
    if (base == 0 && name.size() >= 4 && name.compare(0, 2, "__") == 0 && name.compare(name.size() - 2, 2, "__") == 0)
      continue;  // webdataset's metadata members
    const std::string key = name.substr(0, dot);
    const std::string field = ascii_lower(name.substr(dot + 1));
    // A field the sample already has starts the next sample (open_clip's group_by_keys_nothrow).
    if (shard.samples.empty() || shard.samples.back().key != key || shard.samples.back().fields.count(field)) {
      WdsSample sample;
      sample.key = key;
      sample.number = static_cast<int64_t>(shard.samples.size()) + 1;
      shard.samples.push_back(std::move(sample));
    }
    shard.samples.back().fields.emplace(field, std::move(member));
  }
  return shard;
}

}  // namespace pathvlm::data
