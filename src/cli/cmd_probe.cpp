// `pathvlm probe`: linear probing of frozen embeddings as TITAN's and UNI's evaluations run it (eval/linear_probe.h):
// logistic regression on the train split for each C of a sweep, the C of lowest validation log loss kept, its
// classification metrics on the test split.
//
//   pathvlm encode --model TITAN/ --slides all_slides.csv --out titan.safetensors
//   pathvlm probe --embeddings titan.safetensors --train train.csv --val val.csv --test test.csv
//                 --label-column OncoTreeCode --out probe/
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/join.h"
#include "data/csv.h"
#include "eval/bootstrap.h"
#include "eval/linear_probe.h"
#include "eval/zeroshot.h"
#include "io/safetensors.h"

namespace pathvlm::cli {
namespace {

namespace fs = std::filesystem;

// Every row of the --embeddings files by its id.
struct Embeddings {
  torch::Tensor rows;  // float64 [N, D]
  std::unordered_map<std::string, int64_t> index;
};

Embeddings read_embeddings(const std::vector<std::string>& paths, const std::string& tensor) {
  std::vector<torch::Tensor> parts;
  std::unordered_map<std::string, std::string> file_of;
  Embeddings e;
  int64_t next = 0;
  for (const auto& path : paths) {
    const auto file = safetensors::File::open(path);
    PATHVLM_CHECK(file.contains(tensor), "--embeddings '", path, "' has no tensor '", tensor, "' (--tensor names it)");
    const auto rows = file.get(tensor);
    PATHVLM_CHECK(rows.dim() == 2 && rows.size(0) > 0 && rows.is_floating_point(), "--embeddings '", path,
                  "': tensor '", tensor, "' is ", rows.sizes(), ", not embeddings [N, D]");
    PATHVLM_CHECK(parts.empty() || rows.size(1) == parts[0].size(1), "--embeddings '", path, "' holds ",
                  rows.size(1), "-d embeddings, '", paths[0], "' ", parts[0].size(1), "-d ones");
    const auto at = file.metadata().find("slide_ids");
    PATHVLM_CHECK(at != file.metadata().end(), "--embeddings '", path, "' has no `slide_ids` metadata (the ids ",
                  "`pathvlm encode --slides` writes)");
    nlohmann::json ids;
    try {
      ids = nlohmann::json::parse(at->second);
    } catch (const nlohmann::json::exception&) {
      throw Error(str("--embeddings '", path, "': metadata `slide_ids` is not JSON"));
    }
    PATHVLM_CHECK(ids.is_array() && static_cast<int64_t>(ids.size()) == rows.size(0), "--embeddings '", path,
                  "': metadata `slide_ids` is not a list of ", rows.size(0), " ids, one per row");
    for (const auto& id : ids) {
      PATHVLM_CHECK(id.is_string(), "--embeddings '", path, "': metadata `slide_ids` holds a non-string id");
      const auto [it, fresh] = file_of.emplace(id.get<std::string>(), path);
      PATHVLM_CHECK(fresh, "slide '", it->first, "' has embeddings in '", it->second, "' and in '", path, "'");
      e.index[it->first] = next++;
    }
    const auto finite = torch::isfinite(rows).all(1);
    if (!finite.all().item<bool>()) {
      const auto row = (~finite).nonzero()[0][0].item<int64_t>();
      throw Error(str("--embeddings '", path, "': the embedding of '", ids[row].get<std::string>(), "' (row ", row,
                      ") is not finite (", (~finite).sum().item<int64_t>(), " such rows)"));
    }
    parts.push_back(rows.to(torch::kFloat64));
  }
  e.rows = torch::cat(parts);
  return e;
}

// A split's embeddings and labels: the CSV's rows, in order.
struct Split {
  std::string path;
  std::vector<std::string> ids, labels;
  torch::Tensor x;
};

Split read_split(const std::string& path, const std::string& id_column, const std::string& label_column,
                 const Embeddings& embeddings) {
  const auto rows = data::parse_csv(data::read_text_file(path, "probe split"), ',', path, "probe split");
  PATHVLM_CHECK(rows.size() > 1, "'", path, "': no rows below the header");
  const auto& header = rows[0].fields;
  const int id_at = data::find_csv_column(header, {id_column.c_str()});
  const int label_at = data::find_csv_column(header, {label_column.c_str()});
  PATHVLM_CHECK(id_at >= 0 && label_at >= 0, "'", path, "' lacks the column '", id_at < 0 ? id_column : label_column,
                "' (its columns: ", join(header), "; --id-column and --label-column name them)");
  Split s{path, {}, {}, {}};
  std::vector<int64_t> picked;
  std::vector<std::string> missing;
  for (size_t r = 1; r < rows.size(); ++r) {
    const auto& f = rows[r].fields;
    PATHVLM_CHECK(static_cast<int>(f.size()) > std::max(id_at, label_at), "'", path, "' line ", rows[r].line,
                  ": ", f.size(), " fields, fewer than the header's");
    const auto id = data::trim_space(f[id_at]), label = data::trim_space(f[label_at]);
    PATHVLM_CHECK(!label.empty(), "'", path, "' line ", rows[r].line, ": slide '", id, "' has no label");
    const auto it = embeddings.index.find(id);
    if (it == embeddings.index.end()) {
      missing.push_back(id);
      continue;
    }
    s.ids.push_back(id);
    s.labels.push_back(label);
    picked.push_back(it->second);
  }
  if (!missing.empty()) {
    std::string first;
    for (size_t i = 0; i < std::min<size_t>(missing.size(), 3); ++i) first += (i ? ", '" : "'") + missing[i] + "'";
    throw Error(str("'", path, "': ", missing.size(), " of its ", rows.size() - 1, " slides have no embedding in ",
                    "--embeddings (", first, missing.size() > 3 ? ", ..." : "", ")"));
  }
  s.x = embeddings.rows.index_select(0, torch::tensor(picked, torch::kInt64));
  return s;
}

torch::Tensor class_indices(const Split& s, const std::vector<std::string>& classes) {
  std::vector<int64_t> y;
  for (size_t i = 0; i < s.labels.size(); ++i) {
    const auto it = std::lower_bound(classes.begin(), classes.end(), s.labels[i]);
    PATHVLM_CHECK(it != classes.end() && *it == s.labels[i], "'", s.path, "': slide '", s.ids[i], "' is labelled '",
                  s.labels[i], "', a class the train split does not have");
    y.push_back(it - classes.begin());
  }
  return torch::tensor(y, torch::kInt64);
}

nlohmann::json metrics_json(const eval::ClassificationMetrics& m) {
  nlohmann::json j;
  for (const auto& [name, value] : eval::metric_values(m, "")) j[name] = value;
  return j;
}

}  // namespace

int cmd_probe(const Args& args) {
  ArgParser parser("pathvlm probe",
                   "Linear probe of frozen embeddings (TITAN's and UNI's protocol): sklearn's L-BFGS logistic "
                   "regression on the train split for each C (by default TITAN's 45: 1/C log-spaced from 1e-5 to 1e6), "
                   "the C of lowest validation log loss kept, then scored on the test split (top1, balanced accuracy, "
                   "weighted F1, kappa, ROC AUC) with bootstrap 95% intervals. Writes probe.json and predictions.csv "
                   "to --out.");
  parser.list("embeddings", "safetensors from `pathvlm encode --slides` (embeddings and their `slide_ids`)",
              /*required=*/true);
  parser.option("train", "CSV of the train split: an id column and a label column", /*required=*/true);
  parser.option("val", "CSV of the validation split, which chooses C (needed unless --C is given)");
  parser.option("test", "CSV of the test split", /*required=*/true);
  parser.option("id-column", "the CSVs' id column", false, "slide_id");
  parser.option("label-column", "the CSVs' label column (TITAN's TCGA-OT splits: OncoTreeCode)", false, "label");
  parser.option("tensor", "the embeddings' tensor", false, "slide_embeds");
  parser.option("C", "one inverse regularisation strength instead of the sweep");
  parser.option("max-iter", "L-BFGS iterations per fit at most", false, "1000");
  parser.option("bootstrap", "test samples drawn with replacement this many times for 95% confidence intervals of "
                             "the metrics (0: none)", false, "1000");
  parser.option("seed", "the bootstrap's draws", false, "0");
  parser.option("out", "output directory", /*required=*/true);
  if (!parser.parse(args)) return 0;
  PATHVLM_CHECK(parser.has("C") || parser.has("val"), "give --val (which chooses C among the sweep) or --C");
  eval::LogisticOptions options;
  options.max_iter = parser.get_int("max-iter");
  PATHVLM_CHECK(options.max_iter > 0, "--max-iter must be positive");
  const int64_t resamples = parser.get_int("bootstrap");
  PATHVLM_CHECK(resamples >= 0, "--bootstrap must be 0 or more, got ", resamples);
  const auto embeddings = read_embeddings(parser.get_list("embeddings"), parser.get("tensor"));
  const auto id_column = parser.get("id-column"), label_column = parser.get("label-column");
  const auto train = read_split(parser.get("train"), id_column, label_column, embeddings);
  const auto test = read_split(parser.get("test"), id_column, label_column, embeddings);
  const std::set<std::string> unique(train.labels.begin(), train.labels.end());
  const std::vector<std::string> classes(unique.begin(), unique.end());  // sorted, as sklearn's classes_
  PATHVLM_CHECK(classes.size() >= 2, "'", train.path, "': the train split has ", classes.size(),
                " class; a probe needs at least 2");
  const auto train_y = class_indices(train, classes), test_y = class_indices(test, classes);
  const std::set<std::string> train_ids(train.ids.begin(), train.ids.end());
  for (const auto& id : test.ids)
    PATHVLM_CHECK(!train_ids.count(id), "slide '", id, "' is in both --train '", train.path, "' and --test '",
                  test.path, "': the test split must be held out");
  const auto k = static_cast<int64_t>(classes.size());

  nlohmann::json report = {{"embeddings", parser.get_list("embeddings")},
                           {"classes", classes},
                           {"train", {{"csv", train.path}, {"slides", train.ids.size()}}},
                           {"test", {{"csv", test.path}, {"slides", test.ids.size()}}}};
  eval::LogisticModel model;
  if (parser.has("C")) {
    options.C = parser.get_double("C");
    model = eval::fit_logistic_regression(train.x, train_y, k, options);
    report["C"] = options.C;
    std::cout << "probe: C " << options.C << (model.converged ? "" : " (not converged)") << "\n";
  } else {
    const auto val = read_split(parser.get("val"), id_column, label_column, embeddings);
    const auto val_y = class_indices(val, classes);
    const auto sweep = eval::sweep_logistic_regression(train.x, train_y, val.x, val_y, k, eval::titan_costs(), options);
    model = sweep.model;
    nlohmann::json points = nlohmann::json::array();
    int64_t converged = 0;
    for (const auto& p : sweep.points) {
      points.push_back({{"C", p.C}, {"val_log_loss", p.val_log_loss}, {"converged", p.converged}});
      converged += p.converged;
    }
    const auto& best = sweep.points[sweep.best];
    report["val"] = {{"csv", val.path}, {"slides", val.ids.size()}};
    report["sweep"] = points;
    report["C"] = best.C;
    std::cout << "probe: C " << best.C << " (1/C " << 1.0 / best.C << ") of " << sweep.points.size()
              << ", val log loss " << best.val_log_loss << "; " << converged << "/" << sweep.points.size()
              << " fits converged\n";
  }
  const auto logits = model.logits(test.x);
  const auto metrics = eval::metrics_from_logits(logits, test_y);
  report["test"]["metrics"] = metrics_json(metrics);
  std::cout << "probe: test " << eval::format_metrics(metrics) << "\n";
  if (resamples > 0) {
    const auto intervals = eval::bootstrap_intervals(logits, test_y, resamples, parser.get_int("seed"));
    nlohmann::json ci;
    std::cout << "probe: test 95% intervals over " << resamples << " bootstrap draws:";
    for (const auto& [name, interval] : intervals) {
      ci[name] = {interval.low, interval.high};
      std::cout << " " << name << " [" << interval.low << ", " << interval.high << "]";
    }
    std::cout << "\n";
    report["test"]["metrics_95ci"] = ci;
    report["test"]["bootstrap_draws"] = resamples;
  }

  const fs::path out(parser.get("out"));
  fs::create_directories(out);
  std::ofstream(out / "probe.json") << report.dump(2) << "\n";
  std::ofstream predictions(out / "predictions.csv");
  predictions << "slide_id,label,predicted";
  for (const auto& c : classes) predictions << "," << data::csv_field("prob_" + c);
  predictions << "\n";
  const auto probabilities = torch::softmax(logits, 1);
  const auto predicted = logits.argmax(1);
  for (size_t i = 0; i < test.ids.size(); ++i) {
    predictions << data::csv_field(test.ids[i]) << "," << data::csv_field(test.labels[i]) << ","
                << data::csv_field(classes[predicted[i].item<int64_t>()]);
    for (int64_t c = 0; c < k; ++c) predictions << "," << nlohmann::json(probabilities[i][c].item<double>()).dump();
    predictions << "\n";
  }
  std::cout << "probe: wrote " << (out / "probe.json").string() << " and " << (out / "predictions.csv").string()
            << "\n";
  return 0;
}

}  // namespace pathvlm::cli
