// results.json and the run's plots; see run_results.h.
#include "train/run_results.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/plot.h"
#include "core/text_file.h"

namespace fs = std::filesystem;

namespace pathvlm::train {

nlohmann::json pieces_to_json(const std::vector<RunPiece>& pieces) {
  auto out = nlohmann::json::array();
  for (const auto& p : pieces) out.push_back({{"from_step", p.from_step}, {"to_step", p.to_step}, {"seconds", p.seconds}});
  return out;
}

std::vector<RunPiece> pieces_from_json(const nlohmann::json& j) {
  std::vector<RunPiece> out;
  if (j.is_null()) return out;
  PATHVLM_CHECK(j.is_array(), "training pieces: expected a list, got ", j.dump());
  for (const auto& p : j)
    out.push_back({p.at("from_step").get<int64_t>(), p.at("to_step").get<int64_t>(), p.at("seconds").get<double>()});
  return out;
}

double total_seconds(const std::vector<RunPiece>& pieces) {
  double total = 0;
  for (const auto& p : pieces) total += p.seconds;
  return total;
}

MetricHistory read_metric_history(const std::string& metrics_jsonl) {
  MetricHistory history;
  std::ifstream in(metrics_jsonl);
  PATHVLM_CHECK(in, "cannot read '", metrics_jsonl, "'");
  std::string line;
  while (std::getline(in, line)) {
    // A line cut short by a crash is the only damage an append-only file takes: skip it.
    auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (record.is_discarded() || !record.is_object() || !record.contains("step") || !record["step"].is_number())
      continue;
    const int64_t step = record["step"].get<int64_t>();
    for (const auto& [tag, value] : record.items())
      if (tag != "step" && tag != "time" && value.is_number()) history[tag][step] = value.get<double>();
  }
  return history;
}

bool lower_is_better(const std::string& tag) {
  const std::string name = tag.substr(tag.rfind('/') + 1);
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return name.find("loss") != std::string::npos || name.find("perplexity") != std::string::npos ||
         ends_with("_rank") || ends_with("no_class");
}

namespace {

bool is_train_tag(const std::string& tag) { return tag.rfind("train/", 0) == 0; }

std::string absolute(const std::string& path) { return fs::absolute(path).lexically_normal().string(); }

// The scalars of `tags` logged at `step`, with the step first.
nlohmann::ordered_json scalars_at(const MetricHistory& history, int64_t step, bool train) {
  nlohmann::ordered_json out;
  out["step"] = step;
  for (const auto& [tag, values] : history) {
    if (is_train_tag(tag) != train) continue;
    auto it = values.find(step);
    if (it != values.end()) out[tag] = it->second;
  }
  return out;
}

// The last step at which any train (or eval) scalar was logged; -1 when none was.
int64_t last_step(const MetricHistory& history, bool train) {
  int64_t last = -1;
  for (const auto& [tag, values] : history)
    if (is_train_tag(tag) == train && !values.empty()) last = std::max(last, values.rbegin()->first);
  return last;
}

// An evaluation metric drawn in eval.png: higher is better and every value lies in [0, 1] (accuracies, recalls).
bool is_unit_metric(const std::string& tag, const std::map<int64_t, double>& values) {
  if (is_train_tag(tag) || lower_is_better(tag) || values.empty()) return false;
  for (const auto& [step, v] : values)
    if (v < 0 || v > 1) return false;
  return true;
}

PlotSeries series(const std::string& tag, const std::map<int64_t, double>& values) {
  PlotSeries s{tag, {}, {}};
  for (const auto& [step, value] : values) s.x.push_back(static_cast<double>(step)), s.y.push_back(value);
  return s;
}

}  // namespace

nlohmann::ordered_json run_results(const RunFacts& facts, const MetricHistory& history) {
  nlohmann::ordered_json r;
  r["run"] = facts.name;
  r["task"] = facts.task;
  r["status"] = "finished";
  r["steps"] = facts.steps;
  r["skipped_steps"] = facts.skipped_steps;
  r["epoch"] = facts.epoch;
  r["world_size"] = facts.world_size;
  const double seconds = total_seconds(facts.pieces);
  r["train_seconds"] = seconds;
  r["samples"] = facts.samples;
  r["samples_per_s"] = seconds > 0 ? static_cast<double>(facts.samples) / seconds : 0.0;
  r["pieces"] = pieces_to_json(facts.pieces);

  const int64_t train_step = last_step(history, /*train=*/true), eval_step = last_step(history, /*train=*/false);
  r["final_train"] = train_step >= 0 ? scalars_at(history, train_step, true) : nlohmann::ordered_json();
  r["final_eval"] = eval_step >= 0 ? scalars_at(history, eval_step, false) : nlohmann::ordered_json();
  nlohmann::ordered_json best = nlohmann::ordered_json::object();
  for (const auto& [tag, values] : history) {
    if (is_train_tag(tag) || values.empty()) continue;
    const bool lower = lower_is_better(tag);
    auto chosen = values.begin();
    for (auto it = values.begin(); it != values.end(); ++it)
      if (lower ? it->second < chosen->second : it->second > chosen->second) chosen = it;  // ties: the earliest
    best[tag] = {{"value", chosen->second}, {"step", chosen->first}};
  }
  r["best_eval"] = best;

  const std::string dir = facts.run_dir;
  nlohmann::ordered_json paths;
  paths["run_dir"] = absolute(dir);
  paths["config"] = absolute(dir + "/config.yaml");
  paths["log"] = absolute(dir + "/log.txt");
  paths["metrics"] = absolute(dir + "/metrics.jsonl");
  paths["tensorboard"] = facts.tensorboard.empty() ? "" : absolute(facts.tensorboard);
  paths["checkpoint"] = facts.checkpoint.empty() ? "" : absolute(facts.checkpoint);
  paths["export"] = facts.export_dir.empty() ? "" : absolute(facts.export_dir);
  paths["loss_plot"] = history.count("train/loss") ? absolute(dir + "/loss.png") : "";
  bool any_unit = false;
  for (const auto& [tag, values] : history) any_unit = any_unit || is_unit_metric(tag, values);
  paths["eval_plot"] = any_unit ? absolute(dir + "/eval.png") : "";
  r["paths"] = paths;
  return r;
}

nlohmann::ordered_json write_run_results(const RunFacts& facts) {
  const auto history = read_metric_history(facts.run_dir + "/metrics.jsonl");
  const auto results = run_results(facts, history);
  const auto& paths = results["paths"];

  if (!paths["loss_plot"].get<std::string>().empty()) {
    PlotSpec loss{facts.name + ": loss", "step", "loss", {}};
    for (const auto& [tag, values] : history)
      if (tag == "train/loss" || (!is_train_tag(tag) && tag.find("loss") != std::string::npos))
        loss.series.push_back(series(tag, values));
    write_line_plot_png(loss, paths["loss_plot"].get<std::string>());
  }
  if (!paths["eval_plot"].get<std::string>().empty()) {
    PlotSpec eval{facts.name + ": evaluation", "step", "metric", {}};
    for (const auto& [tag, values] : history)
      if (is_unit_metric(tag, values)) eval.series.push_back(series(tag, values));
    write_line_plot_png(eval, paths["eval_plot"].get<std::string>());
  }

  // Last and atomic: a results.json marks a finished run.
  const std::string path = facts.run_dir + "/results.json", tmp = path + ".tmp";
  write_text_file(tmp, results.dump(2) + "\n");
  std::error_code ec;
  fs::rename(tmp, path, ec);
  PATHVLM_CHECK(!ec, "cannot write '", path, "': ", ec.message());
  return results;
}

}  // namespace pathvlm::train
