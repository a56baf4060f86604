// Reading sweep files with yaml-cpp: every problem names the file, the line and the key.
#include "sweep/sweep_spec.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "core/join.h"

namespace fs = std::filesystem;

namespace pathvlm::sweep {

namespace {

struct Reader {
  std::string path;

  std::string at(const YAML::Node& n) const { return str(path, ":", n.Mark().line + 1); }

  // A value as YAML text: scalars as written, lists and maps in flow style.
  static std::string text(const YAML::Node& n) {
    if (n.IsScalar()) return n.Scalar();
    YAML::Emitter out;
    out.SetSeqFormat(YAML::Flow);
    out.SetMapFormat(YAML::Flow);
    out << n;
    return out.c_str();
  }

  void check_keys(const YAML::Node& map, const std::string& where, const std::vector<std::string>& known) const {
    for (const auto& kv : map) {
      const std::string key = kv.first.as<std::string>();
      if (std::find(known.begin(), known.end(), key) != known.end()) continue;
      const std::string near = cfg::nearest_key(key, known);
      throw Error(str(at(kv.first), ": unknown key '", where.empty() ? "" : where + ".", key, "'",
                      near.empty() ? str(" (known: ", join(known), ")") : str(" (did you mean '", near, "'?)")));
    }
  }

  YAML::Node map(const YAML::Node& n, const std::string& key) const {
    PATHVLM_CHECK(n.IsMap(), at(n), ": '", key, "' must be a map of config keys to values");
    return n;
  }

  template <class T>
  T scalar(const YAML::Node& n, const std::string& key, const char* type) const {
    PATHVLM_CHECK(n.IsScalar(), at(n), ": '", key, "' must be ", type);
    try {
      return n.as<T>();
    } catch (const YAML::Exception&) {
      throw Error(str(at(n), ": '", key, "' must be ", type, ", got '", n.Scalar(), "'"));
    }
  }

  double number(const YAML::Node& n, const std::string& key) const { return scalar<double>(n, key, "a number"); }

  // {key: [v1, v2, ...], ...}: every key with a non-empty list of values.
  std::vector<Axis> axes(const YAML::Node& n, const std::string& block) const {
    std::vector<Axis> out;
    for (const auto& kv : map(n, block)) {
      Axis axis{kv.first.as<std::string>(), {}};
      const std::string key = block + "." + axis.key;
      PATHVLM_CHECK(kv.second.IsSequence() && kv.second.size() > 0, at(kv.second), ": '", key,
                    "' must be a non-empty list of values, e.g. [1.0e-4, 3.0e-4]");
      for (const auto& v : kv.second) axis.values.push_back(text(v));
      out.push_back(std::move(axis));
    }
    return out;
  }

  RandomAxis random_axis(const std::string& key, const YAML::Node& n) const {
    const std::string where = "random.axes." + key;
    PATHVLM_CHECK(n.IsMap() && n.size() == 1, at(n), ": '", where,
                  "' must be one of {uniform: [lo, hi]}, {log_uniform: [lo, hi]}, {choice: [a, b, ...]}");
    RandomAxis axis;
    axis.key = key;
    const std::string kind = n.begin()->first.as<std::string>();
    // A copy (a handle): yaml-cpp's iterator hands out a temporary pair, which a reference would outlive.
    const YAML::Node v = n.begin()->second;
    check_keys(n, where, {"uniform", "log_uniform", "choice"});
    PATHVLM_CHECK(v.IsSequence() && v.size() > 0, at(v), ": '", where, ".", kind, "' must be a non-empty list");
    if (kind == "choice") {
      axis.kind = RandomAxis::Kind::Choice;
      for (const auto& c : v) axis.choices.push_back(text(c));
      return axis;
    }
    axis.kind = kind == "uniform" ? RandomAxis::Kind::Uniform : RandomAxis::Kind::LogUniform;
    PATHVLM_CHECK(v.size() == 2, at(v), ": '", where, ".", kind, "' must be [lo, hi]");
    axis.lo = number(v[0], where + "." + kind + "[0]");
    axis.hi = number(v[1], where + "." + kind + "[1]");
    PATHVLM_CHECK(axis.lo <= axis.hi, at(v), ": '", where, ".", kind, "': lo ", axis.lo, " is above hi ", axis.hi);
    PATHVLM_CHECK(axis.kind == RandomAxis::Kind::Uniform || axis.lo > 0, at(v), ": '", where,
                  ".log_uniform' needs bounds above 0, got ", axis.lo);
    auto is_integer = [](const std::string& s) { return s.find_first_not_of("+-0123456789") == std::string::npos; };
    axis.integer = axis.kind == RandomAxis::Kind::Uniform && is_integer(v[0].Scalar()) && is_integer(v[1].Scalar());
    return axis;
  }

  LaunchSpec launch(const YAML::Node& n) const {
    const std::vector<std::string> known = {"ranks",    "parallel", "cpus_per_task", "gpus_per_task",
                                            "throttle", "time",     "partition",     "sbatch_args"};
    PATHVLM_CHECK(n.IsMap(), at(n), ": 'launch' must be a map (", join(known), ")");
    check_keys(n, "launch", known);
    LaunchSpec l;
    auto count = [&](const char* key, int& out, int min) {
      if (!n[key]) return;
      out = scalar<int>(n[key], str("launch.", key), "an integer");
      PATHVLM_CHECK(out >= min, at(n[key]), ": 'launch.", key, "' must be >= ", min, ", got ", out);
    };
    count("ranks", l.ranks, 1);
    count("parallel", l.parallel, 1);
    count("cpus_per_task", l.cpus_per_task, 1);
    count("gpus_per_task", l.gpus_per_task, 0);
    count("throttle", l.throttle, 0);
    if (n["time"]) l.time = scalar<std::string>(n["time"], "launch.time", "a SLURM time like 04:00:00");
    if (n["partition"]) l.partition = scalar<std::string>(n["partition"], "launch.partition", "a partition name");
    if (n["sbatch_args"]) {
      PATHVLM_CHECK(n["sbatch_args"].IsSequence(), at(n["sbatch_args"]),
                    ": 'launch.sbatch_args' must be a list of sbatch options, e.g. [--account=abc]");
      for (const auto& a : n["sbatch_args"]) l.sbatch_args.push_back(scalar<std::string>(a, "launch.sbatch_args", "text"));
    }
    return l;
  }
};

}  // namespace

SweepSpec read_sweep_file(const std::string& path) {
  Reader r{path};
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw Error(str("sweep file '", path, "' cannot be read"));
  } catch (const YAML::ParserException& e) {
    throw Error(str(path, ":", e.mark.line + 1, ": malformed YAML: ", e.msg));
  }
  PATHVLM_CHECK(root.IsMap(), "sweep file '", path, "' must be a map with base, set, grid, zip, random, launch");
  r.check_keys(root, "", {"name", "base", "set", "grid", "zip", "random", "launch"});

  SweepSpec s;
  s.path = path;
  s.name = root["name"] ? r.scalar<std::string>(root["name"], "name", "a name") : fs::path(path).stem().string();
  PATHVLM_CHECK(!s.name.empty() && s.name.find('/') == std::string::npos && s.name != "." && s.name != "..",
                path, ": 'name' must be a plain directory name, got '", s.name, "'");
  PATHVLM_CHECK(root["base"], path, ": 'base' (the job config the points start from) is missing");
  const std::string base = r.scalar<std::string>(root["base"], "base", "the path of a job config");
  s.base = fs::absolute(fs::path(path).parent_path() / base).lexically_normal().string();
  PATHVLM_CHECK(fs::is_regular_file(s.base), r.at(root["base"]), ": base config '", base, "' (", s.base,
                ") is not a file");

  if (root["set"])
    for (const auto& kv : r.map(root["set"], "set")) s.set.emplace_back(kv.first.as<std::string>(), Reader::text(kv.second));
  if (root["grid"]) s.grid = r.axes(root["grid"], "grid");
  if (root["zip"]) {
    s.zip = r.axes(root["zip"], "zip");
    for (const auto& axis : s.zip)
      PATHVLM_CHECK(axis.values.size() == s.zip[0].values.size(), r.at(root["zip"]), ": zip lists advance together, but '",
                    s.zip[0].key, "' has ", s.zip[0].values.size(), " values and '", axis.key, "' has ",
                    axis.values.size());
  }
  if (const YAML::Node random = root["random"]) {
    PATHVLM_CHECK(random.IsMap(), r.at(random), ": 'random' must be {count: N, seed: S, axes: {...}}");
    r.check_keys(random, "random", {"count", "seed", "axes"});
    PATHVLM_CHECK(random["count"] && random["axes"], r.at(random), ": 'random' needs 'count' and 'axes'");
    s.random_count = r.scalar<int64_t>(random["count"], "random.count", "an integer");
    PATHVLM_CHECK(s.random_count >= 1, r.at(random["count"]), ": 'random.count' must be >= 1");
    if (random["seed"]) s.random_seed = r.scalar<uint64_t>(random["seed"], "random.seed", "a non-negative integer");
    for (const auto& kv : r.map(random["axes"], "random.axes"))
      s.random.push_back(r.random_axis(kv.first.as<std::string>(), kv.second));
  }
  if (root["launch"]) s.launch = r.launch(root["launch"]);

  // A key both fixed and varied has no single meaning (one varied in several blocks takes the last block's value,
  // see expand.h); the runs' own keys belong to the sweep.
  std::set<std::string> fixed;
  auto claim = [&](const std::string& key, const char* block) {
    PATHVLM_CHECK(key != "run.name" && key != "run.runs_dir" && key != "base", path, ": key '", key, "' in ", block,
                  ": the sweep names its runs (<sweep dir>/<point name>); it cannot be set");
    PATHVLM_CHECK(!fixed.count(key), path, ": key '", key, "' is fixed in `set` and varies in ", block,
                  ": keep one of them");
  };
  for (const auto& [key, value] : s.set) {
    claim(key, "set");
    PATHVLM_CHECK(fixed.insert(key).second, path, ": key '", key, "' appears twice in `set`");
  }
  for (const auto& a : s.grid) claim(a.key, "grid");
  for (const auto& a : s.zip) claim(a.key, "zip");
  for (const auto& a : s.random) claim(a.key, "random");
  return s;
}

}  // namespace pathvlm::sweep
