#include "eval/few_shot.h"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <sstream>

#include "core/error.h"
#include "core/random.h"
#include "eval/vqa.h"

namespace pathvlm::eval {
namespace {

using Draws = SeededDraws;

Draws draws(uint64_t seed, int64_t query_index) {
  return {splitmix64(splitmix64(seed ^ 0x66657773686F74ull) ^ static_cast<uint64_t>(query_index))};
}

std::string fixed3(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", x);
  return buf;
}

}  // namespace

std::vector<FewShotExample> choose_examples(const SupportSet& support, int64_t k, const std::string& query_id,
                                            uint64_t seed, int64_t query_index) {
  PATHVLM_CHECK(k >= 0, "few-shot: k must be >= 0, got ", k);
  Draws d = draws(seed, query_index);
  std::vector<size_t> class_order(support.classes.size());
  std::iota(class_order.begin(), class_order.end(), size_t{0});
  d.shuffle(class_order);
  std::vector<std::vector<std::string>> pools;
  int64_t available = 0;
  for (const auto& c : support.classes) {
    auto& pool = pools.emplace_back();
    std::copy_if(c.tiles.begin(), c.tiles.end(), std::back_inserter(pool),
                 [&](const std::string& tile) { return tile != query_id; });
    d.shuffle(pool);
    available += static_cast<int64_t>(pool.size());
  }
  PATHVLM_CHECK(k <= available, "few-shot: k=", k, " examples for query '", query_id, "' but support set '",
                support.source, "' has only ", available, " other tiles");

  std::vector<FewShotExample> chosen;
  for (size_t round = 0; static_cast<int64_t>(chosen.size()) < k; ++round)
    for (size_t c : class_order)
      if (round < pools[c].size() && static_cast<int64_t>(chosen.size()) < k)
        chosen.push_back({pools[c][round], static_cast<int64_t>(c)});
  d.shuffle(chosen);
  return chosen;
}

FewShotPrompt few_shot_prompt(const SupportSet& support, int64_t k, const std::string& query_id,
                              const std::string& question, uint64_t seed, int64_t query_index) {
  PATHVLM_CHECK(!question.empty(), "few-shot: empty question for query '", query_id, "'");
  FewShotPrompt p;
  p.examples = choose_examples(support, k, query_id, seed, query_index);
  p.conversation.id = str("few-shot k=", k, " query '", query_id, "'");
  const std::string human = "<image>\n" + question;
  for (const auto& example : p.examples) {
    p.conversation.turns.push_back({text::Speaker::human, human});
    p.conversation.turns.push_back(
        {text::Speaker::gpt, support.classes[static_cast<size_t>(example.class_index)].name});
    p.image_ids.push_back(example.tile);
  }
  p.conversation.turns.push_back({text::Speaker::human, human});
  p.image_ids.push_back(query_id);
  return p;
}

int64_t predicted_class(const std::string& answer, const std::vector<std::string>& class_names) {
  const std::string a = normalize_answer(answer);
  int64_t best = -1;
  size_t best_at = std::string::npos, best_length = 0;
  for (size_t i = 0; i < class_names.size(); ++i) {
    const std::string name = normalize_answer(class_names[i]);
    PATHVLM_CHECK(!name.empty(), "few-shot: class name '", class_names[i], "' is empty once normalized");
    size_t at = a.find(name);
    while (at != std::string::npos && at > 0 && a[at - 1] != ' ') at = a.find(name, at + 1);
    if (at == std::string::npos) continue;
    if (best < 0 || at < best_at || (at == best_at && name.size() > best_length))
      best = static_cast<int64_t>(i), best_at = at, best_length = name.size();
  }
  return best;
}

AnswerScores score_class_answers(const std::vector<std::string>& answers, const std::vector<int64_t>& expected,
                                 const std::vector<std::string>& class_names) {
  PATHVLM_CHECK(answers.size() == expected.size(), "few-shot: ", answers.size(), " answers for ", expected.size(),
                " expected classes");
  AnswerScores s;
  s.answers = static_cast<int64_t>(answers.size());
  for (size_t i = 0; i < answers.size(); ++i) {
    PATHVLM_CHECK(expected[i] >= 0 && expected[i] < static_cast<int64_t>(class_names.size()),
                  "few-shot: expected class ", expected[i], " of answer ", i, " is not one of the ",
                  class_names.size(), " classes");
    const int64_t c = predicted_class(answers[i], class_names);
    s.no_class += c < 0 ? 1 : 0;
    s.correct += c == expected[i] ? 1 : 0;
  }
  if (s.answers > 0) s.accuracy = static_cast<double>(s.correct) / static_cast<double>(s.answers);
  return s;
}

std::string format_few_shot_report(const std::vector<FewShotResult>& results) {
  std::ostringstream out;
  for (const auto& r : results) {
    PATHVLM_CHECK(r.k > 0 || !r.knn_accuracy, "few-shot: a kNN baseline needs k >= 1 neighbours");
    out << (r.k == 0 ? std::string("zero-shot (k=0)") : str("few-shot k=", r.k)) << ": accuracy "
        << fixed3(r.answers.accuracy) << " (" << r.answers.answers << " queries, " << r.answers.no_class
        << " naming no class)";
    if (r.knn_accuracy) out << "  |  kNN k=" << r.k << " on image embeddings: accuracy " << fixed3(*r.knn_accuracy);
    out << "\n";
  }
  return out.str();
}

std::vector<std::pair<std::string, double>> few_shot_metric_values(const std::vector<FewShotResult>& results,
                                                                   const std::string& prefix) {
  std::vector<std::pair<std::string, double>> values;
  for (const auto& r : results) {
    PATHVLM_CHECK(r.k > 0 || !r.knn_accuracy, "few-shot: a kNN baseline needs k >= 1 neighbours");
    const std::string k = str("_k", r.k, "_");
    values.emplace_back(prefix + "fewshot" + k + "accuracy", r.answers.accuracy);
    const double no_class = r.answers.answers > 0 ? static_cast<double>(r.answers.no_class) /
                                                        static_cast<double>(r.answers.answers)
                                                  : 0.0;
    values.emplace_back(prefix + "fewshot" + k + "no_class", no_class);
    if (r.knn_accuracy) values.emplace_back(prefix + "knn" + k + "accuracy", *r.knn_accuracy);
  }
  return values;
}

}  // namespace pathvlm::eval
