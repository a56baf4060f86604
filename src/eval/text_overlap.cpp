// BLEU-4 and ROUGE-L; see text_overlap.h.
#include "eval/text_overlap.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

#include "core/error.h"

namespace pathvlm::eval {

namespace {

using Ngrams = std::map<std::vector<std::string>, int64_t>;

Ngrams ngrams(const std::vector<std::string>& words, int n) {
  Ngrams out;
  for (size_t i = 0; i + static_cast<size_t>(n) <= words.size(); ++i)
    ++out[std::vector<std::string>(words.begin() + static_cast<std::ptrdiff_t>(i),
                                   words.begin() + static_cast<std::ptrdiff_t>(i) + n)];
  return out;
}

}  // namespace

std::vector<std::string> overlap_words(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '\'' || c >= 0x80) {
      word += static_cast<char>(std::tolower(c));
    } else if (!word.empty()) {
      words.push_back(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

double corpus_bleu(const std::vector<std::string>& predictions, const std::vector<std::string>& references,
                   int max_order) {
  PATHVLM_CHECK(predictions.size() == references.size(), "BLEU: ", predictions.size(), " predictions for ",
                references.size(), " references");
  PATHVLM_CHECK(max_order >= 1, "BLEU: max_order must be at least 1");
  std::vector<int64_t> matched(static_cast<size_t>(max_order), 0), total(static_cast<size_t>(max_order), 0);
  int64_t prediction_length = 0, reference_length = 0;
  for (size_t i = 0; i < predictions.size(); ++i) {
    const auto pred = overlap_words(predictions[i]), ref = overlap_words(references[i]);
    prediction_length += static_cast<int64_t>(pred.size());
    reference_length += static_cast<int64_t>(ref.size());
    for (int n = 1; n <= max_order; ++n) {
      const auto ref_counts = ngrams(ref, n);
      for (const auto& [gram, count] : ngrams(pred, n)) {
        const auto it = ref_counts.find(gram);
        if (it != ref_counts.end()) matched[static_cast<size_t>(n - 1)] += std::min(count, it->second);
        total[static_cast<size_t>(n - 1)] += count;
      }
    }
  }
  double log_precision = 0;
  for (int n = 0; n < max_order; ++n) {
    if (matched[static_cast<size_t>(n)] == 0) return 0.0;
    log_precision += std::log(static_cast<double>(matched[static_cast<size_t>(n)]) /
                              static_cast<double>(total[static_cast<size_t>(n)]));
  }
  const double brevity = prediction_length < reference_length
                             ? std::exp(1.0 - static_cast<double>(reference_length) / prediction_length)
                             : 1.0;
  return brevity * std::exp(log_precision / max_order);
}

double rouge_l(const std::string& prediction, const std::string& reference) {
  const auto pred = overlap_words(prediction), ref = overlap_words(reference);
  if (pred.empty() || ref.empty()) return 0.0;
  // Longest common subsequence, one row of the table at a time.
  std::vector<int64_t> row(ref.size() + 1, 0), next(ref.size() + 1, 0);
  for (const auto& p : pred) {
    for (size_t j = 0; j < ref.size(); ++j) next[j + 1] = p == ref[j] ? row[j] + 1 : std::max(row[j + 1], next[j]);
    std::swap(row, next);
  }
  const double lcs = static_cast<double>(row.back());
  if (lcs == 0) return 0.0;
  const double precision = lcs / static_cast<double>(pred.size()), recall = lcs / static_cast<double>(ref.size());
  return 2 * precision * recall / (precision + recall);
}

}  // namespace pathvlm::eval
