// Zero-shot classification and its metrics; see zeroshot.h.
#include "eval/zeroshot.h"

#include <yaml-cpp/depthguard.h>  // YAML::DeepRecursion (not in yaml.h of yaml-cpp 0.7)
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include "core/error.h"
#include "core/join.h"

namespace pathvlm::eval {

// ---- zero-shot spec ---------------------------------------------------------------------------------

std::vector<std::string> ZeroShotSpec::prompts(size_t c) const {
  std::vector<std::string> out;
  for (const auto& synonym : classes.at(c).synonyms) {
    for (const auto& t : templates) {
      auto pos = t.find("{}");
      out.push_back(t.substr(0, pos) + synonym + t.substr(pos + 2));
    }
  }
  return out;
}

std::vector<std::string> ZeroShotSpec::class_names() const {
  std::vector<std::string> names;
  for (const auto& c : classes) names.push_back(c.name);
  return names;
}

namespace {

std::string yaml_where(const std::string& path, const YAML::Node& node) {
  return str(path, ":", node.Mark().line + 1);
}

std::string scalar_string(const std::string& path, const YAML::Node& node, const std::string& what) {
  PATHVLM_CHECK(node.IsScalar(), "zero-shot spec ", yaml_where(path, node), ": ", what, " must be a string");
  auto s = node.as<std::string>();
  PATHVLM_CHECK(!s.empty(), "zero-shot spec ", yaml_where(path, node), ": ", what, " is empty");
  return s;
}

// Appends `cls` (its name as a synonym when it has none); a name listed twice is an error at `where`.
void add_class(ZeroShotSpec& spec, ZeroShotClass cls, const std::string& where) {
  if (cls.synonyms.empty()) cls.synonyms.push_back(cls.name);
  for (const auto& other : spec.classes)
    PATHVLM_CHECK(other.name != cls.name, "zero-shot spec ", where, ": class '", cls.name, "' is listed twice");
  spec.classes.push_back(std::move(cls));
}

// A prompt set of CONCH's files: {"classnames": {CLASS: [synonyms]}, "templates": ["an image of CLASSNAME.", ...]},
// classes in the file's order.
ZeroShotSpec conch_spec(const std::string& path, const YAML::Node& set) {
  PATHVLM_CHECK(set.IsMap(), "zero-shot spec ", yaml_where(path, set), ": a CONCH prompt set is a map with "
                "'classnames' and 'templates'");
  for (const auto& kv : set) {
    const auto key = kv.first.as<std::string>();
    PATHVLM_CHECK(key == "classnames" || key == "templates", "zero-shot spec ", yaml_where(path, kv.first),
                  ": unknown key '", key, "' in a CONCH prompt set (known: classnames, templates)");
  }
  ZeroShotSpec spec;
  spec.source = path;
  const YAML::Node templates = set["templates"];
  PATHVLM_CHECK(templates && templates.IsSequence() && templates.size() > 0, "zero-shot spec '", path,
                "': 'templates' must be a non-empty list of strings containing CLASSNAME");
  for (const auto& t : templates) {
    std::string s = scalar_string(path, t, "a template");
    const size_t at = s.find("CLASSNAME");
    PATHVLM_CHECK(at != std::string::npos && s.find("CLASSNAME", at + 1) == std::string::npos, "zero-shot spec ",
                  yaml_where(path, t), ": template '", s, "' must hold CLASSNAME once");
    spec.templates.push_back(s.replace(at, 9, "{}"));
  }
  const YAML::Node classnames = set["classnames"];
  PATHVLM_CHECK(classnames.IsMap() && classnames.size() >= 2, "zero-shot spec '", path,
                "': 'classnames' must map at least two classes to their names");
  for (const auto& kv : classnames) {
    ZeroShotClass cls;
    cls.name = scalar_string(path, kv.first, "a class");
    if (kv.second.IsScalar()) {
      cls.synonyms.push_back(scalar_string(path, kv.second, "a class name"));
    } else {
      PATHVLM_CHECK(kv.second.IsSequence() && kv.second.size() > 0, "zero-shot spec ", yaml_where(path, kv.second),
                    ": the names of class '", cls.name, "' must be a non-empty list");
      for (const auto& n : kv.second) cls.synonyms.push_back(scalar_string(path, n, "a class name"));
    }
    add_class(spec, std::move(cls), yaml_where(path, kv.first));
  }
  return spec;
}

}  // namespace

ZeroShotSpec load_zeroshot_spec(const std::string& path) {
  PATHVLM_CHECK(!std::filesystem::is_directory(path), "zero-shot spec '", path,
                "' is a directory, not a YAML file (templates and classes)");
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw Error(str("zero-shot spec '", path, "': cannot open the file"));
  } catch (const YAML::DeepRecursion& e) {
    throw Error(str("zero-shot spec '", path, "': YAML nested ", e.depth(), " or more levels deep (line ",
                    e.mark.line + 1, ")"));
  } catch (const YAML::Exception& e) {
    throw Error(str("zero-shot spec '", path, "': invalid YAML: ", e.what()));
  }
  PATHVLM_CHECK(root.IsMap(), "zero-shot spec '", path, "': expected a map with 'templates' and 'classes'");
  const YAML::Node& top = root;  // const: looking a key up must not add it
  if (top["classnames"]) return conch_spec(path, top);
  if (top["0"] && !top["templates"]) return conch_spec(path, top["0"]);  // CONCH's files: the first prompt set
  for (const auto& kv : root) {
    auto key = kv.first.as<std::string>();
    PATHVLM_CHECK(key == "templates" || key == "classes", "zero-shot spec ", yaml_where(path, kv.first),
                  ": unknown key '", key, "' (known: templates, classes)");
  }
  ZeroShotSpec spec;
  spec.source = path;

  auto templates = root["templates"];
  PATHVLM_CHECK(templates && templates.IsSequence() && templates.size() > 0, "zero-shot spec '", path,
                "': 'templates' must be a non-empty list of strings containing '{}'");
  for (const auto& t : templates) {
    auto s = scalar_string(path, t, "a template");
    PATHVLM_CHECK(s.find("{}") != std::string::npos, "zero-shot spec ", yaml_where(path, t), ": template '", s,
                  "' has no '{}' for the class name");
    spec.templates.push_back(s);
  }

  auto classes = root["classes"];
  PATHVLM_CHECK(classes && classes.IsSequence() && classes.size() >= 2, "zero-shot spec '", path,
                "': 'classes' must list at least two classes");
  for (const auto& c : classes) {
    ZeroShotClass cls;
    if (c.IsScalar()) {
      cls.name = scalar_string(path, c, "a class name");
    } else {
      PATHVLM_CHECK(c.IsMap() && c["name"], "zero-shot spec ", yaml_where(path, c),
                    ": a class is a name or a map with 'name' and optional 'synonyms'");
      for (const auto& kv : c) {
        auto key = kv.first.as<std::string>();
        PATHVLM_CHECK(key == "name" || key == "synonyms", "zero-shot spec ", yaml_where(path, kv.first),
                      ": unknown class key '", key, "' (known: name, synonyms)");
      }
      cls.name = scalar_string(path, c["name"], "a class name");
      if (auto syn = c["synonyms"]) {
        PATHVLM_CHECK(syn.IsSequence() && syn.size() > 0, "zero-shot spec ", yaml_where(path, syn),
                      ": 'synonyms' of class '", cls.name, "' must be a non-empty list");
        for (const auto& s : syn) cls.synonyms.push_back(scalar_string(path, s, "a synonym"));
      }
    }
    add_class(spec, std::move(cls), yaml_where(path, c));
  }
  return spec;
}

torch::Tensor zeroshot_classifier(const ZeroShotSpec& spec, const TextEmbedder& embed_texts) {
  std::vector<torch::Tensor> weights;
  for (size_t c = 0; c < spec.classes.size(); ++c) {
    auto prompts = spec.prompts(c);
    auto emb = embed_texts(prompts).to(torch::kFloat);
    PATHVLM_CHECK(emb.dim() == 2 && emb.size(0) == static_cast<int64_t>(prompts.size()),
                  "zero-shot classifier: the text embedder returned ", emb.sizes(), " for ", prompts.size(),
                  " prompts");
    auto mean = torch::nn::functional::normalize(emb, torch::nn::functional::NormalizeFuncOptions().dim(1)).mean(0);
    weights.push_back(mean / mean.norm());
  }
  return torch::stack(weights);
}

torch::Tensor zeroshot_logits(const torch::Tensor& image_embeddings, const torch::Tensor& classifier, double scale) {
  auto img = torch::nn::functional::normalize(image_embeddings.to(torch::kFloat),
                                              torch::nn::functional::NormalizeFuncOptions().dim(1));
  return scale * img.matmul(classifier.to(img.device()).t());
}

torch::Tensor topj_pooled(const torch::Tensor& instance_scores, int64_t j) {
  PATHVLM_CHECK(instance_scores.dim() == 2 && instance_scores.size(0) > 0 && j >= 1,
                "top-j pooling: needs scores [instances >= 1, classes] and j >= 1, got ", instance_scores.sizes(),
                " and j = ", j);
  return std::get<0>(instance_scores.topk(std::min(j, instance_scores.size(0)), 0)).mean(0);
}

// ---- classification -----------------------------------------------------------------------------------

void check_class_labels(const torch::Tensor& labels, int64_t num_classes, const std::string& data,
                        const std::string& classes) {
  const auto values = labels.to(torch::kCPU, torch::kLong).contiguous();
  std::map<int64_t, int64_t> bad;  // label -> records
  const int64_t* l = values.data_ptr<int64_t>();
  for (int64_t i = 0; i < values.numel(); ++i)
    if (l[i] < 0 || l[i] >= num_classes) ++bad[l[i]];
  if (bad.empty()) return;
  int64_t records = 0;
  std::vector<std::string> listed;
  for (const auto& [label, n] : bad) {
    records += n;
    if (listed.size() < 5) listed.push_back(str(label == -1 ? "-1 (none)" : std::to_string(label), " x", n));
  }
  if (listed.size() < bad.size()) listed.push_back("...");
  throw Error(str(data, ": ", records, " of ", values.numel(), " records have labels that are not class indices of '",
                  classes, "' (", num_classes, " classes: labels 0..", num_classes - 1,
                  " index its list): ", join(listed),
                  bad.count(-1) ? "; -1 is a record without a label: build the shards with a `label` column" : ""));
}

namespace {

// 1 - sum(w * observed) / sum(w * expected by chance), over the classes that occur (sklearn builds its confusion
// matrix over those, so a class absent from both does not widen the quadratic distances).
double cohen_kappa(const std::vector<std::vector<int64_t>>& confusion, bool quadratic) {
  std::vector<size_t> occurring;
  std::vector<double> row, column;
  for (size_t c = 0; c < confusion.size(); ++c) {
    double r = 0, k = 0;
    for (size_t o = 0; o < confusion.size(); ++o) {
      r += static_cast<double>(confusion[c][o]);
      k += static_cast<double>(confusion[o][c]);
    }
    if (r + k == 0) continue;
    occurring.push_back(c);
    row.push_back(r);
    column.push_back(k);
  }
  double n = 0;
  for (const double r : row) n += r;
  double observed = 0, expected = 0;
  for (size_t i = 0; i < occurring.size(); ++i) {
    for (size_t j = 0; j < occurring.size(); ++j) {
      const double d = static_cast<double>(i) - static_cast<double>(j);
      const double w = quadratic ? d * d : (i == j ? 0.0 : 1.0);
      observed += w * static_cast<double>(confusion[occurring[i]][occurring[j]]);
      expected += w * row[i] * column[j] / n;
    }
  }
  return expected > 0 ? 1.0 - observed / expected : 0.0;
}

// Mann-Whitney: the share of (positive, negative) pairs the positive scores higher, ties one half.
double binary_auc(const std::vector<std::pair<double, bool>>& scored) {
  auto sorted = scored;
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  double positive_rank_sum = 0, positives = 0;
  for (size_t i = 0; i < sorted.size();) {
    size_t end = i;
    while (end < sorted.size() && sorted[end].first == sorted[i].first) ++end;
    const double rank = (static_cast<double>(i + 1) + static_cast<double>(end)) / 2;  // tied: the mean rank
    for (size_t k = i; k < end; ++k) {
      if (!sorted[k].second) continue;
      positive_rank_sum += rank;
      ++positives;
    }
    i = end;
  }
  const double negatives = static_cast<double>(sorted.size()) - positives;
  return (positive_rank_sum - positives * (positives + 1) / 2) / (positives * negatives);
}

}  // namespace

std::optional<double> roc_auc_ovo(const torch::Tensor& probabilities, const torch::Tensor& labels) {
  PATHVLM_CHECK(probabilities.dim() == 2 && labels.dim() == 1 && probabilities.size(0) == labels.size(0),
                "ROC AUC: probabilities ", probabilities.sizes(), " and labels ", labels.sizes(), " do not match");
  const auto p = probabilities.to(torch::kCPU, torch::kDouble).contiguous();
  const auto y = labels.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t n = y.size(0), classes = p.size(1);
  std::vector<int64_t> count(classes, 0);
  for (int64_t i = 0; i < n; ++i) ++count.at(y.data_ptr<int64_t>()[i]);
  if (classes < 2 || std::find(count.begin(), count.end(), 0) != count.end()) return std::nullopt;
  const auto pa = p.accessor<double, 2>();
  const auto* label = y.data_ptr<int64_t>();
  double sum = 0;
  for (int64_t a = 0; a < classes; ++a) {
    for (int64_t b = a + 1; b < classes; ++b) {
      std::vector<std::pair<double, bool>> as_a, as_b;
      for (int64_t i = 0; i < n; ++i) {
        if (label[i] != a && label[i] != b) continue;
        as_a.emplace_back(pa[i][a], label[i] == a);
        as_b.emplace_back(pa[i][b], label[i] == b);
      }
      sum += (binary_auc(as_a) + binary_auc(as_b)) / 2;
    }
  }
  return sum / static_cast<double>(classes * (classes - 1) / 2);
}

ClassificationMetrics metrics_from_logits(const torch::Tensor& logits, const torch::Tensor& labels) {
  auto m = classification_metrics(logits.argmax(1), labels, logits.size(1));
  m.roc_auc = roc_auc_ovo(torch::softmax(logits.to(torch::kDouble), 1), labels);
  return m;
}

ClassificationMetrics classification_metrics(const torch::Tensor& predictions, const torch::Tensor& labels,
                                             int64_t num_classes) {
  PATHVLM_CHECK(predictions.dim() == 1 && predictions.sizes() == labels.sizes(),
                "classification metrics: predictions ", predictions.sizes(), " and labels ", labels.sizes(),
                " must be equal-length vectors");
  auto pred = predictions.to(torch::kCPU, torch::kLong).contiguous();
  auto lab = labels.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t n = pred.size(0);
  ClassificationMetrics m;
  m.samples = n;
  m.confusion.assign(num_classes, std::vector<int64_t>(num_classes, 0));
  const int64_t* p = pred.data_ptr<int64_t>();
  const int64_t* l = lab.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    PATHVLM_CHECK(l[i] >= 0 && l[i] < num_classes && p[i] >= 0 && p[i] < num_classes,
                  "classification metrics: sample ", i, " has label ", l[i], " / prediction ", p[i],
                  " outside [0, ", num_classes, ")");
    ++m.confusion[l[i]][p[i]];
  }
  if (n == 0) return m;

  int64_t correct = 0, present = 0;
  double recall_sum = 0, f1_weighted = 0;
  for (int64_t c = 0; c < num_classes; ++c) {
    int64_t tp = m.confusion[c][c], support = 0, predicted = 0;
    for (int64_t k = 0; k < num_classes; ++k) {
      support += m.confusion[c][k];
      predicted += m.confusion[k][c];
    }
    correct += tp;
    if (support > 0) {
      ++present;
      recall_sum += static_cast<double>(tp) / support;
    }
    const int64_t denom = support + predicted;  // 2TP + FP + FN
    const double f1 = denom > 0 ? 2.0 * tp / denom : 0.0;
    f1_weighted += f1 * support;
  }
  m.top1 = static_cast<double>(correct) / n;
  m.balanced_accuracy = present ? recall_sum / present : 0.0;
  m.weighted_f1 = f1_weighted / n;
  m.kappa = cohen_kappa(m.confusion, false);
  m.weighted_kappa = cohen_kappa(m.confusion, true);
  return m;
}

// ---- reporting ----------------------------------------------------------------------------------------

std::string format_metrics(const ClassificationMetrics& m) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "top1 %.4f  balanced_acc %.4f  weighted_f1 %.4f  kappa %.4f  weighted_kappa %.4f",
                m.top1, m.balanced_accuracy, m.weighted_f1, m.kappa, m.weighted_kappa);
  std::string line = buf;
  if (m.roc_auc) {
    std::snprintf(buf, sizeof buf, "  roc_auc %.4f", *m.roc_auc);
    line += buf;
  }
  return line + "  (" + std::to_string(m.samples) + " samples)";
}

std::string format_confusion(const ClassificationMetrics& m, const std::vector<std::string>& class_names) {
  size_t width = 6;
  for (const auto& n : class_names) width = std::max(width, n.size());
  std::ostringstream out;
  char cell[32];
  out << std::string(width + 2, ' ');
  for (size_t c = 0; c < m.confusion.size(); ++c) {
    std::snprintf(cell, sizeof cell, "%6zu", c);
    out << cell;
  }
  out << "   <- predicted\n";
  for (size_t t = 0; t < m.confusion.size(); ++t) {
    std::string name = t < class_names.size() ? class_names[t] : std::to_string(t);
    out << "  " << name << std::string(width - std::min(width, name.size()), ' ');
    for (auto v : m.confusion[t]) {
      std::snprintf(cell, sizeof cell, "%6lld", static_cast<long long>(v));
      out << cell;
    }
    out << "   (" << t << ")\n";
  }
  return out.str();
}

std::vector<std::pair<std::string, double>> metric_values(const ClassificationMetrics& m, const std::string& prefix) {
  std::vector<std::pair<std::string, double>> values = {{prefix + "top1", m.top1},
                                                         {prefix + "balanced_accuracy", m.balanced_accuracy},
                                                         {prefix + "weighted_f1", m.weighted_f1},
                                                         {prefix + "kappa", m.kappa},
                                                         {prefix + "weighted_kappa", m.weighted_kappa}};
  if (m.roc_auc) values.emplace_back(prefix + "roc_auc", *m.roc_auc);
  return values;
}

}  // namespace pathvlm::eval
