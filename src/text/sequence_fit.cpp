#include "text/sequence_fit.h"

#include "core/error.h"

namespace pathvlm::text {

const char* fit_outcome_name(FitOutcome outcome) {
  switch (outcome) {
    case FitOutcome::whole: return "whole";
    case FitOutcome::truncated: return "truncated";
    case FitOutcome::supervision_cut: return "supervision_cut";
    case FitOutcome::images_do_not_fit: return "images_do_not_fit";
  }
  return "?";
}

FitResult fit_to_length(SupervisedSequence& sequence, int64_t max_length, int64_t image_tokens) {
  PATHVLM_CHECK(max_length > 0, "fit_to_length: max_length must be positive (got ", max_length, ")");
  PATHVLM_CHECK(image_tokens > 0, "fit_to_length: image_tokens must be positive (got ", image_tokens, ")");
  PATHVLM_CHECK(sequence.labels.size() == sequence.input_ids.size(), "fit_to_length: ", sequence.input_ids.size(),
                " input ids but ", sequence.labels.size(), " labels");
  FitResult result;
  result.positions_before = sequence.positions(image_tokens);
  if (result.positions_before <= max_length) return result;

  const int64_t images = sequence.images();
  const bool first_is_image = sequence.input_ids.front() == kImageToken;
  const int64_t fixed = images * image_tokens + (first_is_image ? 0 : 1);
  if (fixed > max_length) {
    result.outcome = FitOutcome::images_do_not_fit;
    return result;
  }
  // The first `text_budget` text tokens after the first token stay, with every image.
  int64_t text_budget = max_length - fixed;
  SupervisedSequence kept;
  for (size_t i = 0; i < sequence.input_ids.size(); ++i) {
    const auto id = sequence.input_ids[i], label = sequence.labels[i];
    const bool always_kept = i == 0 || id == kImageToken;
    if (always_kept || text_budget > 0) {
      if (!always_kept) --text_budget;
      kept.input_ids.push_back(id);
      kept.labels.push_back(label);
      continue;
    }
    ++result.cut_tokens;
    if (label != kIgnoreIndex) ++result.cut_supervised;
  }
  sequence = std::move(kept);
  result.outcome = sequence.supervised_tokens() > 0 ? FitOutcome::truncated : FitOutcome::supervision_cut;
  return result;
}

void FitCounts::add(const FitResult& result) {
  switch (result.outcome) {
    case FitOutcome::whole: ++whole; break;
    case FitOutcome::truncated: ++truncated; break;
    case FitOutcome::supervision_cut: ++supervision_cut; break;
    case FitOutcome::images_do_not_fit: ++images_do_not_fit; break;
  }
  cut_supervised += result.cut_supervised;
}

std::string FitCounts::summary() const {
  return str(total(), " samples: ", whole, " whole, ", truncated, " truncated, ", supervision_cut,
             " with every supervised token cut, ", images_do_not_fit, " whose images do not fit (", cut_supervised,
             " supervised tokens cut)");
}

}  // namespace pathvlm::text
