// Config section `instruct`: LLaVA / PathAsst-style instruction tuning of a LLaMA that sees images through a
// frozen image tower (a CLIP's, or a ViT tile encoder as PathChat's UNI) and a trained projector. Light header: no
// torch.
//
//   instruct:
//     vision_tower: runs/clip_demo          # CLIP run, checkpoint, export, HF or open_clip weights; a ViT tile
//                                           # encoder's hub directory (UNI/, phikon/); or a preset
//     language_model: vicuna-7b-v1.5/       # HF LLaMA directory; or a preset trained from scratch
//     template: vicuna_v1                   # plain (phase 1) | vicuna_v1 | pathasst | mistral_instruct | ...
//     model: {projector: mlp2x_gelu, vision_feature_layer: -2, vision_feature_select: patch}
//     data: {train: [phase2.json], images: [shards/train], eval: [eval/phase2.json]}
//     eval: {questions: eval/questions.jsonl, support: support.json, few_shot: [0, 2]}
//
// Slides instead of images (PathAlign-R report generation, ChatEXAONEPath-style slide chat): `slide_encoder` names a
// `slide` run, whose frozen slide encoder turns each slide a record names into its tokens; data.images then lists
// slide sources (`slides` shards, CSV manifests of TRIDENT/CLAM files) and records name slide ids.
//
// Which parameters train is the `train` section's business: phase 1 freezes `language_model.*`, phase 2 starts from
// phase 1 with train.init_from (configs/instruct/). The vision tower is always frozen.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/pixel_statistics.h"
#include "models/llava/config.h"
#include "text/conversation.h"

namespace pathvlm::train {

struct InstructDataConfig {
  std::vector<std::string> train = {};
  std::vector<std::string> eval = {};
  std::vector<std::string> images = {};
  double max_malformed_fraction = 0.0;
  double max_missing_images_fraction = 0.0;
  bool group_by_length = false;
  int64_t slide_tiles = 4096;
  double max_bad_slide_fraction = 0.0;
  int workers = 2;
  int prefetch = 4;
  template <class V>
  void visit(V& v) {
    v.field("train", train,
            "LLaVA records (.json list / .jsonl lines, folders or globs): id, image (one or a list), conversations "
            "of human/gpt turns (`pathvlm synth instruct` writes a demo set)");
    v.field("eval", eval, "records for the evaluation loss, same forms (empty = none)");
    v.field("images", images,
            "where a record's `image` is looked up, in order: `tiles` shards (by tile id), `tile_features` shards "
            "(cached tower features by tile id: `pathvlm embed --tiles`) or folders of image files (by path); "
            "manifest.json, its folder, an .h5 shard or a plain folder. Shards give pixels or features, not both. "
            "With instruct.slide_encoder: `slides` shards and slide CSV manifests (by slide id)");
    v.field("max_malformed_fraction", max_malformed_fraction,
            "a record file with more malformed records than this fraction stops the run (0 = any)", cfg::Range(0.0, 1.0));
    v.field("max_missing_images_fraction", max_missing_images_fraction,
            "a record file with more records whose image is found nowhere than this fraction stops the run; the "
            "others are skipped and counted (0 = any missing image stops it)", cfg::Range(0.0, 1.0));
    v.field("group_by_length", group_by_length,
            "LLaVA's group_by_modality_length: micro-batches of similar length, image and text-only records never "
            "in one optimizer step; the padding saved is logged");
    v.field("slide_tiles", slide_tiles,
            "tiles of a slide the slide encoder sees, evenly spaced, the same ones every time (0 = all)", cfg::Min(0));
    v.field("max_bad_slide_fraction", max_bad_slide_fraction,
            "a slide source with more missing or unreadable slide files than this fraction stops the run; the others "
            "are skipped and counted (0 = any bad slide stops it)", cfg::Range(0.0, 1.0));
    v.field("workers", workers, "background threads that assemble batches", cfg::Range(1, 256));
    v.field("prefetch", prefetch, "ready batches kept ahead of the training loop", cfg::Range(1, 1024));
  }
};

struct InstructEvalConfig {
  std::string questions = "";
  std::string support = "";
  std::vector<int64_t> few_shot = {};
  std::string question = "What type of tissue is shown in this image?";
  int64_t batch_size = 8;
  int64_t max_samples = 0;
  int64_t max_new_tokens = 32;
  template <class V>
  void visit(V& v) {
    v.field("questions", questions,
            "VQA questions JSONL (question_id, image, text, answer, answer_type) answered by greedy generation and "
            "scored closed (both published rules) and open (exact match, F1); empty = none");
    v.field("support", support,
            "few-shot support set (support.json of `pathvlm synth instruct`): labelled tiles shown in the prompt "
            "before the query, and the kNN baseline's neighbours");
    v.field("few_shot", few_shot, "example counts k to prompt with (0 = zero-shot); each also runs kNN with k");
    v.field("question", question, "the question of the few-shot prompts; the answer is a class name");
    v.field("batch_size", batch_size, "sequences per forward in evaluation and prompts per generation", cfg::Min(1));
    v.field("max_samples", max_samples, "at most this many eval records, questions and few-shot queries (0 = all)",
            cfg::Min(0));
    v.field("max_new_tokens", max_new_tokens, "generation length limit of an answer", cfg::Min(1));
  }
};

struct InstructConfig {
  std::string vision_tower = "tiny";
  std::string slide_encoder = "";
  std::string vision_hidden_act = "";
  int64_t vision_image_size = 0;
  std::vector<double> vision_image_mean, vision_image_std;
  std::string language_model = "tiny";
  std::string tokenizer = "";
  std::string conversation_template = "vicuna_v1";
  int64_t max_length = 2048;
  models::LlavaConfig model;
  InstructDataConfig data;
  InstructEvalConfig eval;
  template <class V>
  void visit(V& v) {
    v.field("vision_tower", vision_tower,
            "the frozen image tower: a CLIP (a `clip` run or checkpoint, an export, a Hugging Face CLIP or "
            "CLIPVisionModel directory, open_clip .safetensors), a ViT tile encoder as its hub directory holds it "
            "(timm's: UNI, Virchow, H-optimus, ...; transformers': Phikon, Phikon-v2, ...; PathChat's setup) or "
            "CONCH's safetensors (its ViT trunk's hidden states), a "
            "transformers LLaVA directory (its tower); or a CLIP preset (tiny, ViT-B-32, ViT-B-16, ViT-L-14) with "
            "fixed random weights (demos). Rebuilt from here on resume; never saved in checkpoints");
    v.field("slide_encoder", slide_encoder,
            "slides instead of images: a `slide` run (or its export directory) whose slide encoder, frozen, turns "
            "each slide into its tokens (qformer: its queries; abmil, transformer: one) for the projector; "
            "vision_tower is then unused. Rebuilt from here on resume; never saved in checkpoints");
    v.field("vision_hidden_act", vision_hidden_act,
            "activation of open_clip weights without open_clip_config.json (empty: quick_gelu); gelu for presets");
    v.field("vision_image_size", vision_image_size, "a preset tower's input size (0 = the preset's)", cfg::Min(0));
    v.field("vision_image_mean", vision_image_mean,
            "pixel mean [r,g,b] the tower's input is normalised with, instead of its own (a CLIP's OpenAI mean, a "
            "ViT's from its files; Midnight's card asks for [0.5,0.5,0.5]); also the padding colour and the export's");
    v.field("vision_image_std", vision_image_std, "pixel std [r,g,b] instead of the tower's own");
    v.field("language_model", language_model,
            "a Hugging Face LLaMA, Mistral, Qwen2 or Qwen3 directory, or a LLaVA checkpoint whose projector loads "
            "too when it fits (LLaVA's own, or a transformers LLaVA directory: name it as vision_tower too), loaded "
            "like a train.init_from source so frozen weights stay out of checkpoints; or a LLaMA preset trained from "
            "scratch (tiny, tinyllama-1.1b, llama2-7b, llama2-13b)");
    v.field("tokenizer", tokenizer,
            "tokenizer.model or tokenizer.json (or a directory with one); default: the language model's");
    v.field("template", conversation_template,
            "conversation template: plain (phase 1: image + caption), vicuna_v1 (USER/ASSISTANT, </s> ends a "
            "reply; LLaVA-1.5), pathasst (### User / ### Assistant, ### stops), mistral_instruct ([INST] ... "
            "[/INST]; LLaVA-Med v1.5 on Mistral-7B-Instruct), llava_llama_2 (the same with LLaVA's system "
            "message and <s> between rounds; LLaMA-2-chat), llama_3 (LLaMA-3-Instruct's headers and <|eot_id|>) or "
            "chatml (<|im_start|> / <|im_end|>; Qwen2 and Qwen2.5) or qwen3 (Qwen3's own, thinking off)",
            cfg::OneOf(text::ConversationTemplate::names()));
    v.field("max_length", max_length,
            "positions per sample with each image expanded to its feature rows; longer samples lose text from the "
            "end, never an image, and samples whose whole answer is cut are skipped and counted",
            cfg::Min(2));
    v.section("model", model, "how the image tower joins the language model");
    v.section("data", data, "instruction records and their images");
    v.section("eval", eval, "evaluation loss, VQA by generation, few-shot prompting with a kNN baseline");
  }

  void validate(const std::string& where) const {
    check_pixel_statistics(vision_image_mean, vision_image_std, "vision_image_mean", "vision_image_std", where);
  }
};

}  // namespace pathvlm::train
