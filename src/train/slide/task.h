// The `slide` task: whole-slide <-> report alignment. A slide encoder (src/models/slide) reads bags of tile features
// (data/slide_bags: `slides` shards or TRIDENT/CLAM files, up to slide.data.max_tiles tiles sampled per slide and
// step, several slides per batch with padding masks) and a CLIP text tower reads the reports; the contrastive loss
// runs over the whole global batch of slides (gather-with-grad across ranks, feature cache across micro-batches),
// exactly as the clip task does for tiles.
// Evaluation on every rank: slide->report and report->slide retrieval (R@1/5/10) and zero-shot slide classification
// from class prompts, on slide.data.val. The export (slide_model.yaml + model.safetensors + tokenizer files) is what
// `pathvlm encode --slides` and later stages load. `pathvlm eval --task slide --model CONCH/` classifies the slides
// zero-shot with CONCH v1 from their tile features instead (train/slide/conch_zeroshot.h).
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "data/slide_bags.h"
#include "models/slide/report_model.h"
#include "text/clip_tokenizer.h"
#include "train/contrastive_head.h"
#include "train/slide/conch_zeroshot.h"
#include "train/slide/config.h"
#include "train/task.h"

namespace pathvlm::train {

// The slide data options a slide config sets.
data::SlideBagOptions slide_bag_options(const SlideDataConfig& data);

// A slide run or its export (slide_model.yaml) with its tokenizer, for encode and eval outside training.
struct SlideModelFiles {
  models::slide::SlideReportModel model{nullptr};
  std::shared_ptr<const text::ClipTokenizer> tokenizer;
};
SlideModelFiles open_slide_model(const std::string& path);
// The report tower slide.text builds from scratch (its preset, activation and context length).
models::ClipModelConfig text_tower_config(const SlideTextConfig& text);

class SlideTask : public Task {
 public:
  void build(const TaskContext& ctx) override;
  void build_for_eval(const TaskContext& ctx, const std::string& weights) override;
  torch::nn::Module& model() override { return conch_ ? conch_->modules() : *model_; }
  std::vector<std::pair<std::string, torch::Tensor>> state_tensors() override;
  Batch next_batch() override;
  LossOutput loss(const Batch& batch) override;
  StepOutput forward_backward(const std::vector<Batch>& micro, StepContext& ctx) override;
  std::map<std::string, double> evaluate(dist::Comm& comm) override;
  void export_model(const std::string& dir) override;
  nlohmann::json data_state() const override;
  void restore_data_state(const nlohmann::json& state) override;
  double epoch() const override;

 private:
  // Config, device, communicator, rank and loader options of `ctx`.
  void take_context(const TaskContext& ctx);
  void build_model(int64_t feature_dim);
  // slide.data.val; zero-shot alone (CONCH) needs no reports.
  std::shared_ptr<const data::SlideBagDataset> open_val_data(bool reports_required = true) const;
  // L2-normalised (slide, report) embeddings of one micro-batch.
  std::pair<torch::Tensor, torch::Tensor> encode(const Batch& batch);
  // Evaluation with CONCH: zero-shot metrics for each slide.eval.topj ("zeroshot_topj5/top1", ...).
  std::map<std::string, double> evaluate_conch(dist::Comm& comm);

  SlideTaskConfig cfg_;
  torch::Device device_{torch::kCPU};
  dist::Comm* comm_ = nullptr;
  int rank_ = 0, world_size_ = 1;
  models::slide::SlideReportModel model_{nullptr};
  std::unique_ptr<ConchSlideZeroShot> conch_;  // eval --model CONCH/: no slide model
  ContrastiveHead head_;  // logit_scale (and SigLIP's logit_bias, registered on the model)
  std::shared_ptr<const text::ClipTokenizer> tokenizer_;
  std::shared_ptr<const data::SlideBagDataset> train_data_;
  std::shared_ptr<const data::SlideBagDataset> val_data_;  // null without slide.data.val
  std::unordered_map<std::string, std::string> labels_;    // slide.data.labels: slide id -> label
  data::LoaderOptions loader_options_;                     // this rank's place, seed and device
  std::unique_ptr<data::Loader> loader_;
};

}  // namespace pathvlm::train
