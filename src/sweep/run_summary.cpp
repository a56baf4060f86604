// Reading a run directory's files into a RunSummary.
#include "sweep/run_summary.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "train/checkpoint.h"

namespace fs = std::filesystem;

namespace pathvlm::sweep {

bool lower_is_better(const std::string& metric) {
  for (const char* word : {"loss", "perplexity", "error"})
    if (metric.find(word) != std::string::npos) return true;
  return false;
}

bool is_run_dir(const std::string& dir) {
  return fs::is_regular_file(dir + "/config.yaml") || fs::is_regular_file(dir + "/metrics.jsonl");
}

RunSummary summarize_run(const std::string& dir) {
  RunSummary r;
  r.path = dir;
  r.name = fs::path(dir).lexically_normal().filename().string();
  if (r.name.empty()) r.name = fs::path(dir).lexically_normal().parent_path().filename().string();
  if (!fs::is_directory(dir)) return r;
  r.state = "incomplete";

  if (fs::is_regular_file(dir + "/config.yaml")) {
    try {
      const YAML::Node config = YAML::LoadFile(dir + "/config.yaml");
      if (config["train"] && config["train"]["steps"]) r.total_steps = config["train"]["steps"].as<int64_t>();
    } catch (const YAML::Exception& e) {
      throw Error(str("run '", dir, "': config.yaml cannot be read: ", e.what()));
    }
  }

  std::ifstream in(dir + "/metrics.jsonl");
  std::string line;
  std::optional<double> first_time, last_time;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    // A killed run may leave a torn line, which the resumed run's next record then continues: skipped, counted.
    const nlohmann::json record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (record.is_discarded()) {
      ++r.bad_lines;
      continue;
    }
    if (!record.is_object() || !record.contains("step") || !record["step"].is_number()) continue;
    const int64_t step = record["step"].get<int64_t>();
    r.step = std::max(r.step, step);
    if (record.contains("time") && record["time"].is_number()) {
      const double t = record["time"].get<double>();
      if (!first_time) first_time = t;
      last_time = t;
    }
    for (const auto& [key, value] : record.items()) {
      if (key == "step" || key == "time" || !value.is_number()) continue;
      // A run resumed from an earlier checkpoint logs those steps again: the later values replace the earlier.
      auto& points = r.history[key];
      while (!points.empty() && points.back().first >= static_cast<double>(step)) points.pop_back();
      points.emplace_back(static_cast<double>(step), value.get<double>());
    }
  }
  for (const auto& [key, points] : r.history) {
    if (points.empty()) continue;
    if (key == "train/loss") r.last_loss = points.back().second;
    if (key == "train/samples_per_s") {
      double sum = 0;
      for (const auto& p : points) sum += p.second;
      r.samples_per_s = sum / static_cast<double>(points.size());
    }
    if (key.rfind("eval/", 0) == 0) {
      r.final_metrics[key] = points.back().second;
      double best = points.front().second;
      for (const auto& p : points) best = lower_is_better(key) ? std::min(best, p.second) : std::max(best, p.second);
      r.best_metrics[key] = best;
    }
  }
  if (first_time) r.wall_s = *last_time - *first_time;

  // Done: the final step was checkpointed or exported (or the run wrote its results).
  int64_t saved = 0;
  for (const auto& [step, path] : train::ckpt::list_steps(dir + "/checkpoints")) saved = std::max(saved, step);
  const bool reached = r.total_steps > 0 && (saved >= r.total_steps || (r.step >= r.total_steps && fs::is_directory(dir + "/export")));
  if (reached || fs::is_regular_file(dir + "/results.json")) r.state = "done";
  return r;
}

}  // namespace pathvlm::sweep
