// Generated text against reference text, as report-generation papers (PathAlign, BLIP-2 captioning) score it:
// corpus BLEU-4 and ROUGE-L.
//
//   double bleu = eval::corpus_bleu({"sections show stroma"}, {"sections show fibrous stroma"});
//   double rouge = eval::rouge_l("sections show stroma", "sections show fibrous stroma");   // F1 of the LCS
//
// Words: lowercased, every character that is not a letter, digit or apostrophe separates words (punctuation is
// dropped, as coco-caption's PTB tokenizer does before its scorers).
// BLEU-4 (Papineni et al. 2002, one reference per prediction, as nltk's corpus_bleu and coco-caption compute it):
// clipped n-gram precisions p_1..p_4 summed over the corpus, their geometric mean, times the brevity penalty
// exp(1 - r/c) when the predictions' total length c is below the references' r; 0 when some p_n is 0 (no smoothing).
// ROUGE-L (Lin 2004, the F1 form of rouge-score's rougeL): LCS / prediction length and LCS / reference length,
// their harmonic mean; 0 when either side is empty.
#pragma once
#include <string>
#include <vector>

namespace pathvlm::eval {

std::vector<std::string> overlap_words(const std::string& text);
// predictions[i] is scored against references[i]; throws when the counts differ.
double corpus_bleu(const std::vector<std::string>& predictions, const std::vector<std::string>& references,
                   int max_order = 4);
double rouge_l(const std::string& prediction, const std::string& reference);

}  // namespace pathvlm::eval
