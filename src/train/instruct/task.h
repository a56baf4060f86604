// The `instruct` task: LLaVA / PathAsst-style instruction tuning. A frozen image tower (a CLIP's, or a ViT tile
// encoder as PathChat's UNI), a trained projector and a LLaMA (models/llava) learn from LLaVA records
// (data/instruct_dataset.h) with the loss on the replies only.
//
// Phases are configs (configs/instruct/): phase 1 freezes language_model.* and trains the projector on captions
// (template plain); phase 2 starts from phase 1 (train.init_from) and trains projector + LLM, fully or with LoRA.
// The vision tower is rebuilt from instruct.vision_tower on every start and never saved, so a checkpoint holds
// what the run trains (and the language model's frozen weights stay in their source, see checkpoint.h).
// Images come as pixels through the tower or as its cached features (`pathvlm embed --tiles`); both give the
// same numbers. With instruct.slide_encoder the images are whole slides: a `slide` run's encoder, frozen and rebuilt
// on every start like the tower, turns each slide's bag of tile features into its tokens (PathAlign-R's report
// generation is phase 1 with the plain template; slide chat is phase 2).
// Loss: cross-entropy in fp32, the mean over every supervised token of the step's *global* batch (all micro-
// batches, all ranks), so any world size and accumulation computes the same step.
// Evaluation (every rank its share, results identical on all ranks): the loss over instruct.data.eval; VQA by
// greedy generation with the template's prompt and stop, scored closed under both published rules and open
// (exact match, F1); few-shot prompting with k support images before the query beside a kNN baseline on the
// tower's pooled features. Export: a transformers LlavaForConditionalGeneration directory plus the projector alone.
// instruct.language_model may be a LLaVA checkpoint (models/llava/checkpoint.h): one of LLaVA's original ones
// (LLaVA-1.5, LLaVA-Med v1.5, Quilt-LLaVA) or a transformers LlavaForConditionalGeneration (llava-hf, pathvlm's
// export), whose directory is then also the instruct.vision_tower it holds. Its projector is loaded with its language
// model when ours has its shape.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/instruct_dataset.h"
#include "dist/comm.h"
#include "generate/generate.h"
#include "eval/support_set.h"
#include "eval/vqa.h"
#include "models/llava/model.h"
#include "models/llava/checkpoint.h"
#include "models/slide/encoder.h"
#include "text/conversation.h"
#include "text/tokenizer.h"
#include "train/instruct/config.h"
#include "train/task.h"

namespace pathvlm::train {

// The frozen tower instruct.vision_tower names, selecting as instruct.model says: a ViT tile encoder (timm's or
// transformers' hub directory: UNI, Phikon, ...; a LLaVA export with one), else a CLIP's image tower
// (make_instruct_vision_clip).
models::LlavaVisionTower make_instruct_vision_tower(const InstructConfig& cfg);
// The CLIP whose image tower instruct.vision_tower names (a preset gets fixed random weights drawn from its own
// seed, leaving the caller's random stream untouched).
models::ClipModel make_instruct_vision_clip(const InstructConfig& cfg);
// The tokenizer instruct.tokenizer names, else the Hugging Face language model's.
std::shared_ptr<const text::Tokenizer> make_instruct_tokenizer(const InstructConfig& cfg);
// The LLaMA instruct.language_model names: a preset's weights are drawn; a Hugging Face directory's are left
// undrawn (untouched memory) for the task's init source to load.
models::LlamaForCausalLM make_instruct_language_model(const InstructConfig& cfg,
                                                      const text::Tokenizer& tokenizer,
                                                      bool checkpoint_layers);
// Feature rows each image becomes: the tower's hidden-state rows, less the class token's with vision_feature_select
// patch; with instruct.slide_encoder, the slide encoder's tokens.
int64_t instruct_image_tokens(const InstructConfig& cfg);
// How images are resized to `tower`'s input: its own filter (an Error naming instruct.vision_tower for one pathvlm lacks).
data::Interpolation tower_interpolation(const InstructConfig& cfg, const models::VisionTowerShape& tower);
// The images of `sources` (instruct.data.images' forms) with the config's slide options; `tower` gives pixel sources
// their size, filter and padding colour (nullptr: slide sources).
data::InstructImages open_instruct_images(const InstructConfig& cfg, const std::vector<std::string>& sources,
                                          const models::VisionTowerShape* tower);

class InstructTask : public Task {
 public:
  void build(const TaskContext& ctx) override;
  void build_for_eval(const TaskContext& ctx, const std::string& weights) override;
  torch::nn::Module& model() override { return *model_; }
  std::vector<std::pair<std::string, torch::Tensor>> state_tensors() override;
  std::vector<KeyedInitSource> init_sources() const override;
  Batch next_batch() override;
  LossOutput loss(const Batch& batch) override;
  StepOutput forward_backward(const std::vector<Batch>& micro, StepContext& ctx) override;
  std::map<std::string, double> evaluate(dist::Comm& comm) override;
  // In the language model's dtype.
  void export_model(const std::string& dir) override;
  void export_model(const std::string& dir, torch::ScalarType dtype);
  nlohmann::json data_state() const override;
  void restore_data_state(const nlohmann::json& state) override;
  double epoch() const override;

  // For `pathvlm generate --image` and tests: the model, its tokenizer and template, and answers to prompts.
  models::LlavaModel& llava() { return model_; }
  const text::Tokenizer& tokenizer() const { return *tokenizer_; }
  const text::ConversationTemplate& conversation_template() const { return *template_; }
  // Replies to conversations that end with a human turn, each prompted with the template; `images[i]` are the
  // tower features [n_i, T, vision_hidden] of conversation i's placeholders, in order. The template's stop strings
  // and the tokenizer's EOS are added to `options`.
  std::vector<generate::Generation> reply(const std::vector<text::Conversation>& conversations,
                                          const std::vector<torch::Tensor>& images, generate::GenerateOptions options,
                                          generate::GenerationStats* stats = nullptr);
  // Tower features [N, T, vision_hidden] of the named images (found in instruct.data.images, or the sources of the
  // last open_images): slides give their slide encoder tokens [N, Q, W].
  torch::Tensor image_features(const std::vector<std::string>& names);
  // Looks images up in `sources` from now on (instruct.data.images' forms and checks); `pathvlm generate --slide`.
  void open_images(const std::vector<std::string>& sources);
  // Tower features [N, T, vision_hidden] of image files (the CLIP evaluation transform, then the tower).
  torch::Tensor image_file_features(const std::vector<std::string>& files);

 private:
  // Tokenizer, template, model, images and the evaluation data.
  void build_common(const TaskContext& ctx);
  // Whether the LLaVA checkpoint named as the language model brings its projector (the shape of ours); then the
  // settings that decide what the projector sees must be those it was trained with. Logs the decision.
  bool adopts_llava_projector(const models::LlavaCheckpoint& llava) const;
  // The samples of `paths` for config key `key`; logs their report.
  std::shared_ptr<const data::InstructDataset> dataset(const std::vector<std::string>& paths,
                                                       const std::string& key) const;
  models::LlavaBatch llava_batch(const Batch& batch);
  // Cached features as the model's tower would give them: the CLS row dropped for vision_feature_select patch.
  torch::Tensor select_cached(const torch::Tensor& features) const;
  torch::Tensor no_image_features() const;  // [0, T, vision_hidden]
  // The frozen slide encoder's tokens [N, Q, W] of padded bags (data/instruct_dataset.h's slide_* tensors).
  torch::Tensor slide_tokens(const torch::Tensor& features, const torch::Tensor& coords,
                             const torch::Tensor& mask);
  std::string image_kind_text() const;
  std::map<std::string, double> evaluate_loss(dist::Comm& comm);
  std::map<std::string, double> evaluate_vqa(dist::Comm& comm);
  std::map<std::string, double> evaluate_few_shot(dist::Comm& comm);
  // Greedy answers with instruct.eval.max_new_tokens, trimmed.
  std::vector<std::string> answer(const std::vector<text::Conversation>& conversations,
                                  const std::vector<torch::Tensor>& images);
  // One evaluation prompt: the conversation so far and the tower features of its images, in placeholder order.
  struct EvalPrompt {
    text::Conversation conversation;
    torch::Tensor images;
  };
  // answer() for prompts 0..n-1 (`prompt(i)` builds the i-th): each rank answers its share (data::eval_share) in
  // batches of instruct.eval.batch_size; every rank returns all n answers, in order.
  std::vector<std::string> answer_all(int64_t n, const std::function<EvalPrompt(int64_t)>& prompt, dist::Comm& comm);

  InstructConfig cfg_;
  std::string hf_language_model_;  // instruct.language_model when it is a Hugging Face directory
  std::optional<models::LlavaCheckpoint> llava_checkpoint_;  // instruct.language_model when it is one
  bool llava_projector_adopted_ = false;                     // its projector loads into ours
  torch::Device device_{torch::kCPU};
  data::PixelNormalizer tower_pixels_;  // uint8 pixels [N,3,S,S] -> the tower's input on device_
  int rank_ = 0, world_size_ = 1;
  uint64_t seed_ = 0;
  int64_t micro_batch_ = 1, grad_accum_ = 1;
  std::shared_ptr<const text::Tokenizer> tokenizer_;
  std::shared_ptr<const text::ConversationTemplate> template_;
  models::LlavaModel model_{nullptr};
  models::slide::SlideEncoder slide_encoder_{nullptr};  // instruct.slide_encoder's, frozen; null for images
  std::shared_ptr<const data::InstructImages> images_;
  std::shared_ptr<const data::InstructDataset> train_data_, eval_data_;
  std::vector<eval::VqaQuestion> questions_;
  std::shared_ptr<const eval::SupportSet> support_;
  data::LoaderOptions loader_options_;  // this rank's; each loader sets its batch size and mode
  std::unique_ptr<data::Loader> loader_;
};

// An instruct run's model for inference (`pathvlm generate --image`, `pathvlm export --format hf-llava`), in one
// process: `path` is a run directory (its latest checkpoint) or a checkpoint step directory, the job its
// config.yaml (a step directory's: two levels up), without the run's data.
struct InstructRun {
  std::unique_ptr<dist::Comm> comm;
  std::unique_ptr<InstructTask> task;
};
InstructRun open_instruct_run(const std::string& path, torch::Device device);

// A LLaVA checkpoint as models::read_llava_checkpoint read it (models/llava/checkpoint.h: one of LLaVA's original
// ones, LLaVA-1.5 or LLaVA-Med v1.5, or a transformers LlavaForConditionalGeneration) for inference the same way:
// the model its config.json describes, its language model and projector loaded, with `vision_tower` (default: the
// original checkpoint's mm_vision_tower when that is a local directory; the transformers directory itself) and
// `conversation_template` (default by language model: mistral_instruct for Mistral, chatml for Qwen, else
// vicuna_v1, LLaVA's llava_v1).
struct LlavaCheckpointOptions {
  std::string vision_tower, conversation_template;
};
InstructRun open_llava_checkpoint(const models::LlavaCheckpoint& llava, const LlavaCheckpointOptions& options,
                                  torch::Device device);
// open_llava_checkpoint when `path` is a LLaVA checkpoint, else open_instruct_run (a run brings its own tower and
// template: options given for it are refused).
InstructRun open_instruct_model(const std::string& path, const LlavaCheckpointOptions& options, torch::Device device);

}  // namespace pathvlm::train
