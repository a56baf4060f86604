// Instruction-tuning samples: LLaVA records (data/instruct_records.h) tokenized once with a conversation template
// (text/conversation.h), fitted to the context with the images placed (text/sequence_fit.h), their images found
// (data/instruct_images.h), and batched for the Loader.
//
//   auto images = std::make_shared<const data::InstructImages>(data::InstructImages::open(paths, 224));
//   auto ds = data::InstructDataset::build({"phase2.json"}, tmpl, tokenizer, images, options);
//   log(ds.report());                 // per file: records, malformed, missing images; fit outcomes
//   data::Batch b = ds.batch(request);
//   b.at("input_ids");       // int64 [B,L]: right-padded with 0, models::kImageSentinel where an image goes
//   b.at("labels");          // int64 [B,L]: unshifted, kIgnoreIndex where unsupervised or padding
//   b.at("attention_mask");  // bool  [B,L]
//   b.at("pixels");          // uint8 [N,3,S,S] (pixel sources; the trainer normalises them on its device) or
//                            // b.at("features") float [N,T,D] (cached), N = the batch's images in row order;
//                            // N may be 0. Slide sources instead give each slide's bag: slide_features float
//                            // [N,K,D], slide_coords int64 [N,K,2] and slide_mask bool [N,K] (false = padding),
//                            // K = the largest bag
//   b.text("ids");           // record ids
//
// A record is skipped, and counted against its file, when it is malformed (instruct_records.h), unfit for the
// template (ConversationTemplate::problem) or names an image no source has. Either count above its threshold
// (fraction of the file's records) stops the build with an error naming the file, the count and examples.
// Samples whose fit drops them (every supervised token cut, or the images alone exceed max_length) are skipped
// and counted in the report. Everything is a pure function of the files and options. Without image sources (null)
// images are not looked up: the samples serve inspection only and batch() refuses.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "data/instruct_images.h"
#include "data/loader.h"
#include "text/conversation.h"
#include "text/sequence_fit.h"
#include "text/supervised_sequence.h"

namespace pathvlm::data {

struct InstructDatasetOptions {
  std::string key = "instruct.data.train";  // the config key named in reports and errors
  double max_malformed_fraction = 0.0;
  double max_missing_images_fraction = 0.0;
  int64_t max_length = 2048;
  int64_t image_tokens = 576;  // feature rows each image becomes
};

struct InstructSample {
  std::string id, source;  // source: "file[index]" (.json) or "file:line" (.jsonl)
  text::SupervisedSequence sequence;
  std::vector<std::string> image_names;
  std::vector<InstructImages::Ref> images;  // where image_names were found (empty without image sources)
};

// One record file's counts.
struct InstructFileCounts {
  std::string file;
  int64_t records = 0, malformed = 0, unfit = 0, missing_images = 0;
  std::vector<std::string> first_problems;
};

class InstructDataset {
 public:
  static InstructDataset build(const std::vector<std::string>& paths, const text::ConversationTemplate& tmpl,
                               const text::Tokenizer& tokenizer,
                               std::shared_ptr<const InstructImages> images, const InstructDatasetOptions& options);

  int64_t size() const { return static_cast<int64_t>(samples_.size()); }
  const InstructSample& sample(int64_t i) const { return samples_.at(i); }
  const std::vector<InstructFileCounts>& files() const { return files_; }
  const text::FitCounts& fit() const { return fit_; }
  // Positions per sample with images expanded, positive with an image and negative without (the sign is the
  // modality, as data/length_grouped.h wants).
  std::vector<int64_t> modality_lengths() const;
  // Lines: per file its counts and first problems, then the fit outcomes.
  std::string report() const;

  // The batch of `request.records` (see above); thread-safe.
  Batch batch(const BatchRequest& request) const;

 private:
  InstructDatasetOptions options_;
  std::shared_ptr<const InstructImages> images_;
  std::vector<InstructSample> samples_;
  std::vector<InstructFileCounts> files_;
  text::FitCounts fit_;
};

}  // namespace pathvlm::data
