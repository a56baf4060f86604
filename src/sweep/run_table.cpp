// Tables, sorting and plots of run summaries.
#include "sweep/run_table.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/join.h"
#include "core/log.h"
#include "core/plot.h"
#include "core/text_file.h"

namespace fs = std::filesystem;

namespace pathvlm::sweep {

namespace {

std::vector<std::string> eval_metrics(const std::vector<RunSummary>& runs) {
  std::set<std::string> keys;
  for (const auto& r : runs)
    for (const auto& [key, value] : r.final_metrics) keys.insert(key);
  return {keys.begin(), keys.end()};
}

std::string number(double v, bool full) {
  char buf[32];
  std::snprintf(buf, sizeof buf, full ? "%.17g" : "%.4g", v);
  return buf;
}

std::string optional_number(const std::optional<double>& v, bool full) { return v ? number(*v, full) : ""; }

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string md_field(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

}  // namespace

std::string markdown_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size(), 3);
  for (size_t c = 0; c < header.size(); ++c) width[c] = std::max(width[c], md_field(header[c]).size());
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size() && c < width.size(); ++c) width[c] = std::max(width[c], md_field(row[c]).size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s = "|";
    for (size_t c = 0; c < width.size(); ++c) {
      const std::string cell = c < cells.size() ? md_field(cells[c]) : "";
      s += " " + cell + std::string(width[c] - cell.size(), ' ') + " |";
    }
    return s + "\n";
  };
  std::string out = line(header) + "|";
  for (size_t w : width) out += std::string(w + 2, '-') + "|";
  out += "\n";
  for (const auto& row : rows) out += line(row);
  return out;
}

std::string compared_metric(const std::vector<RunSummary>& runs, const std::string& requested) {
  if (requested.empty()) {
    const auto evals = eval_metrics(runs);
    return evals.empty() ? "train/loss" : evals.front();
  }
  std::set<std::string> logged;
  for (const auto& r : runs)
    for (const auto& [key, points] : r.history) logged.insert(key);
  PATHVLM_CHECK(logged.empty() || logged.count(requested), "metric '", requested, "' was not logged by any run (logged: ",
                join({logged.begin(), logged.end()}), ")");
  return requested;
}

std::optional<double> best_value(const RunSummary& run, const std::string& metric) {
  if (auto it = run.best_metrics.find(metric); it != run.best_metrics.end()) return it->second;
  auto it = run.history.find(metric);
  if (it == run.history.end() || it->second.empty()) return std::nullopt;
  double best = it->second.front().second;
  for (const auto& [step, v] : it->second) best = lower_is_better(metric) ? std::min(best, v) : std::max(best, v);
  return best;
}

void sort_runs(std::vector<RunSummary>& runs, const std::string& key) {
  auto by = [&](auto value) {
    std::stable_sort(runs.begin(), runs.end(), [&](const RunSummary& a, const RunSummary& b) { return value(a) < value(b); });
  };
  auto missing_last = [](const std::optional<double>& v, bool lower) {
    return std::make_pair(!v.has_value(), v ? (lower ? *v : -*v) : 0.0);
  };
  if (key == "name") by([](const RunSummary& r) { return r.name; });
  else if (key == "state") by([](const RunSummary& r) { return r.state; });
  else if (key == "step") by([](const RunSummary& r) { return r.step; });
  else if (key == "loss") by([&](const RunSummary& r) { return missing_last(r.last_loss, true); });
  else if (key == "wall") by([](const RunSummary& r) { return r.wall_s; });
  else if (key == "samples_per_s") by([&](const RunSummary& r) { return missing_last(r.samples_per_s, false); });
  else {
    bool logged = false;
    for (const auto& r : runs) logged = logged || best_value(r, key).has_value();
    PATHVLM_CHECK(logged || runs.empty(), "--sort '", key,
                  "': not a column (name, state, step, loss, wall, samples_per_s) nor a metric any run logged");
    by([&](const RunSummary& r) { return missing_last(best_value(r, key), lower_is_better(key)); });
  }
}

const RunSummary* best_run(const std::vector<RunSummary>& runs, const std::string& metric) {
  const RunSummary* best = nullptr;
  std::optional<double> best_v;
  for (const auto& r : runs) {
    const auto v = best_value(r, metric);
    if (v && (!best_v || (lower_is_better(metric) ? *v < *best_v : *v > *best_v))) best = &r, best_v = v;
  }
  return best;
}

std::string format_runs(const std::vector<RunSummary>& runs, const std::string& metric, const std::string& format) {
  const auto evals = eval_metrics(runs);
  const RunSummary* best = best_run(runs, metric);
  if (format == "json") {
    nlohmann::ordered_json out;
    out["metric"] = metric;
    out["best"] = best ? nlohmann::ordered_json(best->name) : nlohmann::ordered_json(nullptr);
    out["runs"] = nlohmann::ordered_json::array();
    for (const auto& r : runs) {
      nlohmann::ordered_json j;
      j["name"] = r.name;
      j["path"] = r.path;
      j["state"] = r.state;
      j["step"] = r.step;
      j["total_steps"] = r.total_steps;
      j["loss"] = r.last_loss ? nlohmann::ordered_json(*r.last_loss) : nlohmann::ordered_json(nullptr);
      j["best"] = r.best_metrics;
      j["final"] = r.final_metrics;
      j["wall_s"] = r.wall_s;
      j["samples_per_s"] = r.samples_per_s ? nlohmann::ordered_json(*r.samples_per_s) : nlohmann::ordered_json(nullptr);
      out["runs"].push_back(j);
    }
    return out.dump(2) + "\n";
  }
  PATHVLM_CHECK(format == "md" || format == "csv", "--format '", format, "': expected md, csv or json");
  const bool csv = format == "csv";

  std::vector<std::string> header = {"run", "state", csv ? "step" : "step/total"};
  if (csv) header.push_back("total_steps");
  header.push_back("loss");
  for (const auto& m : evals) header.push_back("best " + m), header.push_back("final " + m);
  header.push_back(csv ? "wall_s" : "wall");
  header.push_back("samples/s");

  std::vector<std::vector<std::string>> rows;
  for (const auto& r : runs) {
    std::vector<std::string> row = {r.name, r.state};
    if (csv) row.push_back(std::to_string(r.step)), row.push_back(std::to_string(r.total_steps));
    else row.push_back(std::to_string(r.step) + "/" + (r.total_steps > 0 ? std::to_string(r.total_steps) : "?"));
    row.push_back(optional_number(r.last_loss, csv));
    for (const auto& m : evals) {
      auto b = r.best_metrics.find(m), f = r.final_metrics.find(m);
      row.push_back(b == r.best_metrics.end() ? "" : number(b->second, csv));
      row.push_back(f == r.final_metrics.end() ? "" : number(f->second, csv));
    }
    row.push_back(csv ? number(r.wall_s, true) : r.step > 0 ? format_duration(r.wall_s) : "");
    row.push_back(csv ? optional_number(r.samples_per_s, true) : r.samples_per_s ? format_count(*r.samples_per_s) : "");
    if (!csv && best && &r == best) row[0] += " *";
    rows.push_back(std::move(row));
  }

  std::string out;
  if (csv) {
    rows.insert(rows.begin(), header);
    for (const auto& row : rows) {
      std::vector<std::string> fields;
      for (const auto& f : row) fields.push_back(csv_field(f));
      out += join(fields, ",") + "\n";
    }
    return out;
  }
  out = markdown_table(header, rows);
  if (best) out += "\n* best " + metric + ": " + best->name + " (" + number(*best_value(*best, metric), false) + ")\n";
  return out;
}

void plot_metric(const std::vector<RunSummary>& runs, const std::string& metric, const std::string& path) {
  PlotSpec spec;
  spec.title = metric;
  spec.x_label = "step";
  spec.y_label = metric;
  for (const auto& r : runs) {
    PlotSeries s;
    s.label = r.name;
    if (auto it = r.history.find(metric); it != r.history.end())
      for (const auto& [step, v] : it->second) s.x.push_back(step), s.y.push_back(v);
    spec.series.push_back(std::move(s));
  }
  write_line_plot_png(spec, path);
}

std::string compare_runs(std::vector<RunSummary> runs, const CompareOptions& options) {
  const std::string metric = compared_metric(runs, options.metric);
  sort_runs(runs, options.sort.empty() ? metric : options.sort);
  if (!options.plot.empty()) plot_metric(runs, metric, options.plot);
  const RunSummary* best = best_run(runs, metric);
  const std::string config_path = best ? best->path + "/config.yaml" : "";
  const std::string config = best && fs::is_regular_file(config_path) ? read_text_file(config_path) : "";
  if (options.format == "json") {
    auto j = nlohmann::ordered_json::parse(format_runs(runs, metric, "json"));
    j["best_config"] = config;
    if (!options.plot.empty()) j["plot"] = options.plot;
    return j.dump(2) + "\n";
  }
  std::string out = format_runs(runs, metric, options.format);
  if (options.format != "md") return out;
  if (!options.plot.empty()) out += "\nplot of " + metric + ": " + options.plot + "\n";
  if (!config.empty()) out += "\nresolved config of " + best->name + " (" + config_path + "):\n\n" + config;
  return out;
}

}  // namespace pathvlm::sweep
