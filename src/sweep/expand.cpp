// Expanding a sweep into named points and checking every point's config.
#include "sweep/expand.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <set>

#include "core/error.h"
#include "core/random.h"
#include "train/job_config.h"

namespace pathvlm::sweep {

namespace {

using Values = std::vector<std::pair<std::string, std::string>>;

// FNV-1a: a key's contribution to its random stream, the same on every machine.
uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string draw(const RandomAxis& axis, uint64_t seed, int64_t index) {
  SeededDraws rng{splitmix64(seed ^ splitmix64(static_cast<uint64_t>(index) + 1) ^ fnv1a(axis.key))};
  if (axis.kind == RandomAxis::Kind::Choice) return axis.choices[rng.below(axis.choices.size())];
  if (axis.integer) {
    const auto lo = static_cast<int64_t>(axis.lo), hi = static_cast<int64_t>(axis.hi);
    return std::to_string(lo + static_cast<int64_t>(rng.below(static_cast<uint64_t>(hi - lo) + 1)));
  }
  const double u = static_cast<double>(rng.below(1ull << 53)) / static_cast<double>(1ull << 53);
  const double v = axis.kind == RandomAxis::Kind::Uniform
                       ? axis.lo + u * (axis.hi - axis.lo)
                       : std::exp(std::log(axis.lo) + u * (std::log(axis.hi) - std::log(axis.lo)));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// The shortest dotted suffix of each key ("lr", "model.image_size") that no other key shares.
std::vector<std::string> short_keys(const std::vector<std::string>& keys) {
  auto suffix = [](const std::string& key, int parts) {
    size_t pos = key.size();
    while (parts-- > 0 && pos != std::string::npos) pos = pos == 0 ? std::string::npos : key.rfind('.', pos - 1);
    return pos == std::string::npos ? key : key.substr(pos + 1);
  };
  std::vector<std::string> out;
  for (size_t i = 0; i < keys.size(); ++i) {
    for (int parts = 1;; ++parts) {
      const std::string s = suffix(keys[i], parts);
      bool shared = false;
      for (size_t j = 0; j < keys.size(); ++j) shared = shared || (j != i && suffix(keys[j], parts) == s);
      if (!shared || s == keys[i]) {
        out.push_back(s);
        break;
      }
    }
  }
  return out;
}

std::string clean(const std::string& text) {
  std::string out;
  for (char c : text) out += std::isalnum(static_cast<unsigned char>(c)) || std::string("._+-=").find(c) != std::string::npos ? c : '_';
  return out;
}

// The product of blocks of assignments, the last block fastest.
std::vector<Values> product(const std::vector<std::vector<Values>>& blocks) {
  std::vector<Values> out{{}};
  for (const auto& block : blocks) {
    if (block.empty()) continue;
    std::vector<Values> next;
    for (const auto& prefix : out)
      for (const auto& values : block) {
        Values v = prefix;
        for (const auto& [key, value] : values) {  // a key already set by an earlier block takes this one's value
          auto it = std::find_if(v.begin(), v.end(), [&](const auto& kv) { return kv.first == key; });
          if (it != v.end())
            it->second = value;
          else
            v.emplace_back(key, value);
        }
        next.push_back(std::move(v));
      }
    out = std::move(next);
  }
  return out;
}

}  // namespace

Expansion expand(const SweepSpec& spec) {
  Expansion e;
  std::vector<std::vector<Values>> blocks;
  for (const auto& axis : spec.grid) {  // one block per grid key: every combination
    std::vector<Values> block;
    for (const auto& v : axis.values) block.push_back({{axis.key, v}});
    blocks.push_back(std::move(block));
    e.varying_keys.push_back(axis.key);
  }
  if (!spec.zip.empty()) {  // one block for all zip keys: the i-th values together
    std::vector<Values> block(spec.zip[0].values.size());
    for (const auto& axis : spec.zip) {
      for (size_t i = 0; i < axis.values.size(); ++i) block[i].emplace_back(axis.key, axis.values[i]);
      e.varying_keys.push_back(axis.key);
    }
    blocks.push_back(std::move(block));
  }
  if (!spec.random.empty()) {  // one block of `count` draws
    std::vector<Values> block(spec.random_count);
    for (const auto& axis : spec.random) {
      for (int64_t i = 0; i < spec.random_count; ++i) block[i].emplace_back(axis.key, draw(axis, spec.random_seed, i));
      e.varying_keys.push_back(axis.key);
    }
    blocks.push_back(std::move(block));
  }

  std::vector<std::string> keys;  // each once, where it first varies (the order of a point's values)
  for (const auto& key : e.varying_keys) {
    if (std::find(keys.begin(), keys.end(), key) == keys.end())
      keys.push_back(key);
    else if (std::find(e.overridden_keys.begin(), e.overridden_keys.end(), key) == e.overridden_keys.end())
      e.overridden_keys.push_back(key);
  }
  e.varying_keys = keys;
  const std::vector<std::string> shorts = short_keys(e.varying_keys);
  std::set<Values> seen;
  for (auto& values : product(blocks)) {
    if (!seen.insert(values).second) {
      ++e.duplicates_dropped;
      continue;
    }
    SweepPoint p;
    p.index = static_cast<int>(e.points.size());
    for (size_t k = 0; k < values.size(); ++k) p.name += (k ? "_" : "") + shorts[k] + "=" + clean(values[k].second);
    if (p.name.empty()) p.name = "base";
    p.values = std::move(values);
    e.points.push_back(std::move(p));
  }
  return e;
}

std::vector<std::string> run_overrides(const SweepSpec& spec, const SweepPoint& point, const std::string& sweep_dir) {
  std::vector<std::string> out;
  bool sets_resume = false;
  for (const auto& [key, value] : spec.set) {
    out.push_back(key + "=" + value);
    sets_resume = sets_resume || key == "checkpoint.resume";
  }
  for (const auto& [key, value] : point.values) {
    out.push_back(key + "=" + value);
    sets_resume = sets_resume || key == "checkpoint.resume";
  }
  if (!sets_resume) out.push_back("checkpoint.resume=auto");
  out.push_back("run.runs_dir=" + sweep_dir);
  out.push_back("run.name=" + point.name);
  return out;
}

void check_points(const SweepSpec& spec, const std::vector<SweepPoint>& points, const std::string& sweep_dir) {
  std::vector<std::string> problems;
  for (const auto& p : points) {
    try {
      PATHVLM_CHECK(p.name.size() <= 200, "run name '", p.name.substr(0, 60), "...' is ", p.name.size(),
                    " characters long (at most 200): vary fewer keys or give them shorter values");
      load_job_config(spec.base, run_overrides(spec, p, sweep_dir));
    } catch (const Error& e) {
      problems.push_back(str("point ", p.index, " (", p.name, "): ", e.what()));
    }
  }
  if (problems.empty()) return;
  std::string message = str("sweep '", spec.path, "': ", problems.size(), " of ", points.size(),
                            " points have a bad config; nothing was launched:");
  for (const auto& p : problems) message += "\n  " + p;
  throw Error(message);
}

}  // namespace pathvlm::sweep
