// The `clip` task: contrastive image-text training of a CLIP on tile shards, plugged into the Trainer.
//
// Per optimizer step each rank takes grad_accum micro-batches of tiles, and the step's loss is the
// contrastive loss over the *whole* global batch (micro_batch_size x grad_accum x world size):
// micro-batches are combined by the feature cache (losses/contrastive.h), ranks by the gathered features.
// logit_scale is clamped to [0, ln 100] after every optimizer step (applied before anything reads it:
// the next forward, evaluation, a checkpoint, the export) and, being 0-D, gets no weight decay.
// Evaluation runs on every rank (eval/zeroshot.h, eval/retrieval.h): zero-shot classification of clip.data.zeroshot
// tiles with the classes of clip.eval.classes, and image<->text retrieval on clip.data.val; `pathvlm eval` also
// evaluates CONCH v1 that way (train/clip/image_text_encoder.h).
// Bad training tiles are replaced by the loader; each step the ranks pool the ones they met (host memory, on the
// host communicator: no wait for the device) into the BadRecordLog (<run>/bad_records.csv, a stop past
// clip.data.max_bad_fraction), which checkpoints carry.
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "text/clip_tokenizer.h"
#include "data/bad_records.h"
#include "data/tile_loader.h"
#include "models/clip/model.h"
#include "train/clip/config.h"
#include "train/clip/image_text_encoder.h"
#include "train/contrastive_head.h"
#include "train/task.h"

namespace pathvlm::train {

// The model a clip config describes: `pretrained` weights, else a random init of clip.model. Applies
// lock_image / lock_text. Checks that clip.data.image_size matches the model.
models::ClipModel build_clip_model(const ClipTaskConfig& cfg);

// The tokenizer a clip config names: clip.vocab, else the HF tokenizer files in `pretrained`.
// Errors say which key to set.
text::ClipTokenizer make_clip_tokenizer(const ClipTaskConfig& cfg, int context_length);

// Evaluates on every rank: each embeds its share of the tiles, the embeddings are all-gathered and every
// rank computes the same metrics ("zeroshot/top1", "zeroshot/balanced_accuracy", "zeroshot/weighted_f1",
// "retrieval/image_to_text_R@1", ...). Rank 0 logs a summary (and the confusion matrix when asked).
// `comm` may be null (one process). Runs under no_grad; the caller sets eval mode.
std::map<std::string, double> evaluate_clip(const ImageTextEncoder& encoder, const ClipTaskConfig& cfg,
                                            dist::Comm* comm, torch::Device device);

class ClipTask : public Task {
 public:
  void build(const TaskContext& ctx) override;
  void build_for_eval(const TaskContext& ctx, const std::string& weights) override;
  torch::nn::Module& model() override { return *encoder_.modules; }  // training: the CLIP
  std::vector<std::pair<std::string, torch::Tensor>> state_tensors() override;
  double train_flops_per_sample() const override { return models::train_flops_per_sample(model_->config()); }
  Batch next_batch() override;
  LossOutput loss(const Batch& batch) override;
  StepOutput forward_backward(const std::vector<Batch>& micro, StepContext& ctx) override;
  std::map<std::string, double> evaluate(dist::Comm& comm) override;
  void export_model(const std::string& dir) override;
  nlohmann::json data_state() const override;
  void restore_data_state(const nlohmann::json& state) override;
  double epoch() const override;

 private:
  // L2-normalised (image, text) features of one micro-batch.
  std::pair<torch::Tensor, torch::Tensor> encode(const Batch& batch);
  // The bad records every rank's micro-batches replaced this step, into bad_records_ (one gather).
  void count_bad_records(const std::vector<Batch>& micro, dist::Comm& comm);

  ClipTaskConfig cfg_;
  torch::Device device_{torch::kCPU};
  dist::Comm* comm_ = nullptr;
  models::ClipModel model_{nullptr};  // null when evaluating CONCH
  ContrastiveHead head_;  // logit_scale (and SigLIP's logit_bias, registered on the model)
  std::shared_ptr<const text::ClipTokenizer> tokenizer_;  // shared with the loader's workers
  ImageTextEncoder encoder_;                              // what evaluate() embeds with
  std::unique_ptr<data::TileLoader> loader_;
  std::unique_ptr<data::BadRecordLog> bad_records_;
};

}  // namespace pathvlm::train
