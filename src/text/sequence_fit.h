// Fitting a supervised sequence into the model's context: the length counts each image as the `image_tokens`
// feature rows the model will splice in for it, so the cut is made with the images already placed (LLaVA cuts
// after splicing, and can cut an image in half or the whole answer away without noticing).
//
//   auto fit = text::fit_to_length(sequence, /*max_length=*/2048, /*image_tokens=*/576);
//   counts.add(fit);
//   if (!fit.trainable()) skip(sample);   // images_do_not_fit, or every supervised token was cut
//
// Rules: the first token (the BOS every template starts with) and every image are never cut; text tokens are
// cut from the end until the positions fit (an image after the cut stays, without the text that followed it).
// When the first token and the images alone do not fit, the sample is left as it was and reported
// images_do_not_fit. A sample whose supervised tokens were all cut is reported supervision_cut rather than
// trained on with zero loss.
#pragma once
#include <cstdint>
#include <string>

#include "text/supervised_sequence.h"

namespace pathvlm::text {

enum class FitOutcome {
  whole,              // fits as it is
  truncated,          // text cut from the end; supervised tokens remain
  supervision_cut,    // text cut from the end; no supervised token remains
  images_do_not_fit,  // the first token and the images exceed max_length; the sequence is unchanged
};

const char* fit_outcome_name(FitOutcome outcome);

struct FitResult {
  FitOutcome outcome = FitOutcome::whole;
  int64_t positions_before = 0;  // positions (images expanded) before the cut
  int64_t cut_tokens = 0;        // text tokens removed
  int64_t cut_supervised = 0;    // supervised tokens among them

  bool trainable() const { return outcome == FitOutcome::whole || outcome == FitOutcome::truncated; }
};

// Cuts `sequence` in place (see above). `max_length` and `image_tokens` must be positive.
FitResult fit_to_length(SupervisedSequence& sequence, int64_t max_length, int64_t image_tokens);

// Outcomes over a data set (an epoch's report).
struct FitCounts {
  int64_t whole = 0, truncated = 0, supervision_cut = 0, images_do_not_fit = 0;
  int64_t cut_supervised = 0;  // supervised tokens cut, over all samples

  void add(const FitResult& result);
  int64_t total() const { return whole + truncated + supervision_cut + images_do_not_fit; }
  int64_t dropped() const { return supervision_cut + images_do_not_fit; }
  // "1000 samples: 980 whole, 15 truncated, 4 with every supervised token cut, 1 whose images do not fit"
  std::string summary() const;
};

}  // namespace pathvlm::text
