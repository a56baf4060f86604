// Few-shot prompting (in-context learning) for tile classification with an instruction-tuned model: k labelled
// support tiles are shown as k question/answer exchanges before the query tile's question, and the model's reply
// is scored by the class it names. k = 0 is the zero-shot prompt.
//
//   eval::SupportSet support = eval::read_support_set("demo/instruct/support.json");
//   eval::FewShotPrompt p = eval::few_shot_prompt(support, /*k=*/2, query_id, "What tissue is shown in this image?",
//                                                 seed, query_index);
//   auto prompt = tmpl.generation_prompt(p.conversation, tokenizer);   // k + 1 image sentinels
//   // ... images p.image_ids (k support tiles, then the query) fill the sentinels in order; generate `answer`
//   int64_t c = eval::predicted_class(answer, support.class_names());  // -1: the reply names no class
//   eval::AnswerScores s = eval::score_class_answers(answers, expected, support.class_names());
//   std::cout << eval::format_few_shot_report({{2, s, knn_accuracy}});
//
// Choosing the k examples (choose_examples) is a pure function of (seed, query index): a seeded order of the
// classes and of each class's tiles, then round-robin over the classes taking each one's next tile (classes that
// run out are skipped), so k >= C gives every class k/C examples (the first k % C in the seeded order one more)
// while its tiles last, and k < C shows k distinct seeded classes. The query tile is never one of its own examples. The chosen
// examples are then shuffled: in round-robin order the query's turn would fall on a predictable class.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "eval/support_set.h"
#include "text/conversation.h"

namespace pathvlm::eval {

struct FewShotExample {
  std::string tile;         // the support tile's id
  int64_t class_index = 0;  // position in SupportSet::classes
};

// The k examples of query `query_index` (see above). Throws when k < 0 or k exceeds the support tiles other than
// the query.
std::vector<FewShotExample> choose_examples(const SupportSet& support, int64_t k, const std::string& query_id,
                                            uint64_t seed, int64_t query_index);

struct FewShotPrompt {
  // k exchanges (human "<image>\n" + question, gpt the example's class name), then the query's human turn.
  text::Conversation conversation;
  // The tiles the "<image>" placeholders stand for, in placeholder order: the k examples, then the query.
  std::vector<std::string> image_ids;
  std::vector<FewShotExample> examples;
};

FewShotPrompt few_shot_prompt(const SupportSet& support, int64_t k, const std::string& query_id,
                              const std::string& question, uint64_t seed, int64_t query_index);

// The class a generated answer names, as an index into `class_names`, or -1 when it names none. Answer and names
// pass eval/vqa.h's normalize_answer; a name is named where its words start a word of the answer ("tumor"
// matches "tumors", not "nontumor"). When several are named the earliest wins, the longest on a tie ("tumor
// stroma" over "tumor"). Throws when a name is empty once normalized.
int64_t predicted_class(const std::string& answer, const std::vector<std::string>& class_names);

struct AnswerScores {
  int64_t answers = 0, correct = 0;
  int64_t no_class = 0;  // answers naming no class (counted wrong)
  double accuracy = 0;   // correct / answers; 0 without answers
};

// answers[i] is right when predicted_class(answers[i], class_names) == expected[i] (a class index).
AnswerScores score_class_answers(const std::vector<std::string>& answers, const std::vector<int64_t>& expected,
                                 const std::vector<std::string>& class_names);

struct FewShotResult {
  int64_t k = 0;                       // examples per prompt; also the kNN baseline's neighbours
  AnswerScores answers;                // the model's replies to the k-shot prompts
  std::optional<double> knn_accuracy;  // kNN (eval/knn.h) on the same queries' image embeddings, when computed
};

// One line per result: "few-shot k=2: accuracy 0.625 (40 queries, 3 naming no class)  |  kNN k=2 on image
// embeddings: accuracy 0.750"; k = 0 reads "zero-shot (k=0)".
std::string format_few_shot_report(const std::vector<FewShotResult>& results);
// {prefix + "fewshot_k2_accuracy", prefix + "fewshot_k2_no_class", prefix + "knn_k2_accuracy", ...} (fractions),
// e.g. with prefix "eval/".
std::vector<std::pair<std::string, double>> few_shot_metric_values(const std::vector<FewShotResult>& results,
                                                                   const std::string& prefix);

}  // namespace pathvlm::eval
