// InstructDataset; see instruct_dataset.h.
#include "data/instruct_dataset.h"

#include <algorithm>

#include "core/error.h"
#include "core/log.h"
#include "data/instruct_records.h"
#include "text/special_ids.h"

namespace pathvlm::data {

namespace {

constexpr size_t kReportedProblems = InstructFileReport::kReportedProblems;

void note_problem(InstructFileCounts& counts, const std::string& where, const std::string& why) {
  if (counts.first_problems.size() < kReportedProblems) counts.first_problems.push_back(str(where, ": ", why));
}

// Throws when `count` of the file's records exceeds `fraction` of them.
void check_fraction(const InstructFileCounts& counts, int64_t count, double fraction, const std::string& what,
                    const std::string& key, const char* option) {
  if (count == 0 || static_cast<double>(count) <= fraction * static_cast<double>(counts.records)) return;
  std::string examples;
  for (const auto& p : counts.first_problems) examples += "\n  " + p;
  throw Error(str(key, ": '", counts.file, "' has ", count, " of ", counts.records, " records ", what,
                  " (more than ", option, " = ", fraction, "):", examples));
}

}  // namespace

InstructDataset InstructDataset::build(const std::vector<std::string>& paths, const text::ConversationTemplate& tmpl,
                                       const text::Tokenizer& tokenizer,
                                       std::shared_ptr<const InstructImages> images,
                                       const InstructDatasetOptions& options) {
  PATHVLM_CHECK(options.max_length > 0 && options.image_tokens > 0, options.key,
                ": max_length and image_tokens must be positive");
  InstructDataset ds;
  ds.options_ = options;
  ds.images_ = std::move(images);
  auto records = read_instruct_records(paths, options.max_malformed_fraction);
  for (const auto& f : records.files) ds.files_.push_back({f.file, f.records, f.malformed, 0, 0, f.first_problems});
  for (auto& record : records.records) {
    auto& counts = ds.files_.at(record.file);
    if (auto why = tmpl.problem(record.conversation, tokenizer); !why.empty()) {
      ++counts.unfit;
      note_problem(counts, record.source, str("template ", tmpl.name(), ": ", why));
      continue;
    }
    InstructSample sample;
    bool found = true;
    for (const auto& name : ds.images_ ? record.images : std::vector<std::string>{}) {
      auto ref = ds.images_->find(name);
      if (!ref) {
        ++counts.missing_images;
        note_problem(counts, record.source, str("image '", name, "' is in none of: ", ds.images_->sources_text()));
        found = false;
        break;
      }
      sample.images.push_back(*ref);
    }
    if (!found) continue;
    try {
      sample.sequence = tmpl.tokenize(record.conversation, tokenizer);
    } catch (const Error& e) {
      // Text the tokenizer would cut differently at a template boundary (LLaVA's "tokenization mismatch"): its
      // labels would be off, so the sample is unfit, counted and named like the others.
      ++counts.unfit;
      note_problem(counts, record.source, str("template ", tmpl.name(), ": ", e.what()));
      continue;
    }
    const auto fit = text::fit_to_length(sample.sequence, options.max_length, options.image_tokens);
    ds.fit_.add(fit);
    if (!fit.trainable()) continue;
    // An image cut with the text after it keeps its rows: the sequence still holds one sentinel per image.
    sample.id = record.id;
    sample.source = record.source;
    sample.image_names = std::move(record.images);
    ds.samples_.push_back(std::move(sample));
  }
  for (const auto& counts : ds.files_) {
    check_fraction(counts, counts.unfit, options.max_malformed_fraction, str("unfit for the template ", tmpl.name()),
                   options.key, "max_malformed_fraction");
    check_fraction(counts, counts.missing_images, options.max_missing_images_fraction,
                   "whose image is found nowhere", options.key, "max_missing_images_fraction");
  }
  PATHVLM_CHECK(!ds.samples_.empty(), options.key, ": no trainable sample in ", paths.size(), " path(s)\n",
                ds.report());
  return ds;
}

std::vector<int64_t> InstructDataset::modality_lengths() const {
  std::vector<int64_t> lengths;
  lengths.reserve(samples_.size());
  for (const auto& s : samples_) {
    const int64_t n = s.sequence.positions(options_.image_tokens);
    lengths.push_back(s.image_names.empty() ? -n : n);
  }
  return lengths;
}

std::string InstructDataset::report() const {
  std::string out;
  for (const auto& f : files_) {
    out += str(options_.key, ": ", f.file, ": ", f.records, " records, ", f.malformed, " malformed, ", f.unfit,
               " unfit for the template, ", f.missing_images, " with a missing image\n");
    for (const auto& p : f.first_problems) out += "    " + p + "\n";
  }
  out += str(options_.key, ": ", fit_.summary(), "; ", samples_.size(), " samples kept\n");
  return out;
}

Batch InstructDataset::batch(const BatchRequest& request) const {
  PATHVLM_CHECK(images_, options_.key, ": built without image sources (inspection only), it makes no batches");
  const int64_t rows = static_cast<int64_t>(request.records.size());
  int64_t length = 1, image_count = 0;
  for (auto r : request.records) {
    const auto& s = samples_.at(r);
    length = std::max<int64_t>(length, static_cast<int64_t>(s.sequence.input_ids.size()));
    image_count += static_cast<int64_t>(s.images.size());
  }
  Batch batch;
  auto input_ids = torch::zeros({rows, length}, request.host(torch::kInt64));
  auto labels = torch::full({rows, length}, text::kIgnoreIndex, request.host(torch::kInt64));
  auto mask = torch::zeros({rows, length}, request.host(torch::kBool));
  // Image slots in row order, so the n-th sentinel of the batch is the n-th image.
  std::vector<int64_t> first_image(rows, 0);
  for (int64_t row = 1; row < rows; ++row)
    first_image[row] = first_image[row - 1] + static_cast<int64_t>(samples_[request.records[row - 1]].images.size());
  const auto kind = images_->kind();
  torch::Tensor pixels, features;
  std::vector<InstructImages::Ref> slide_refs(static_cast<size_t>(image_count));
  if (kind == InstructImages::Kind::features) {
    features = torch::empty({image_count, images_->feature_tokens(), images_->feature_width()},
                            request.host(torch::kFloat32));
  } else if (kind == InstructImages::Kind::slides) {
    // The bags are read after the rows, in slot order (a slide's bag is the same every time).
  } else {
    const int64_t size = images_->image_size();
    pixels = torch::empty({image_count, 3, size, size}, request.host(torch::kByte));
  }
  std::vector<std::string> ids(rows);
  request.for_each([&](int64_t row, int64_t record) {
    const auto& s = samples_.at(record);
    const auto n = static_cast<int64_t>(s.sequence.input_ids.size());
    auto id_row = input_ids[row].narrow(0, 0, n);
    id_row.copy_(torch::tensor(s.sequence.input_ids, torch::kInt64));
    labels[row].narrow(0, 0, n).copy_(torch::tensor(s.sequence.labels, torch::kInt64));
    mask[row].narrow(0, 0, n).fill_(true);
    for (size_t k = 0; k < s.images.size(); ++k) {
      const int64_t slot = first_image[row] + static_cast<int64_t>(k);
      try {
        if (kind == InstructImages::Kind::features) {
          features[slot].copy_(images_->features(s.images[k]));
        } else if (kind == InstructImages::Kind::slides) {
          slide_refs[static_cast<size_t>(slot)] = s.images[k];
        } else {
          pixels[slot].copy_(images_->pixels(s.images[k]));
        }
      } catch (const std::exception& e) {
        throw Error(str("record '", s.id, "' (", s.source, ") image '", s.image_names[k], "': ", e.what()));
      }
    }
    ids[row] = s.id;
  });
  int64_t positions = 0;
  for (auto r : request.records) positions += samples_[r].sequence.positions(options_.image_tokens);
  batch.tensors["input_ids"] = input_ids;
  batch.tensors["labels"] = labels;
  batch.tensors["attention_mask"] = mask;
  if (kind == InstructImages::Kind::slides) {
    auto bags = images_->slide_bags(slide_refs, request.pinned);
    batch.tensors["slide_features"] = std::move(bags.features);
    batch.tensors["slide_coords"] = std::move(bags.coords);
    batch.tensors["slide_mask"] = std::move(bags.mask);
  } else if (kind == InstructImages::Kind::features) {
    batch.tensors["features"] = features;
  } else {
    batch.tensors["pixels"] = pixels;
  }
  batch.strings["ids"] = std::move(ids);
  batch.samples = rows;
  batch.tokens = positions;
  batch.epoch = request.epoch;
  return batch;
}

}  // namespace pathvlm::data
