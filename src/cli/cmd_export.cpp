// `pathvlm export`: a trained model as a directory other tools load as it is.
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "text/clip_tokenizer.h"
#include "models/clip/weights.h"
#include "models/hf_dtype.h"
#include "models/llava/weights.h"
#include "train/instruct/task.h"

namespace pathvlm::cli {
namespace {

struct ExportFormat {
  const char* name;
  const char* summary;
  void (*run)(const ArgParser& parser, const std::string& source, const std::string& out_dir);
};

torch::ScalarType dtype_of(const ArgParser& parser) { return models::export_dtype(parser.get("dtype"), "--dtype"); }

void export_hf_clip(const ArgParser& parser, const std::string& source, const std::string& out_dir) {
  models::ClipLoadOptions options;
  if (parser.has("hidden-act")) options.hidden_act = parser.get("hidden-act");
  auto model = models::load_clip(source, options);
  const auto dtype = dtype_of(parser);
  models::export_hf_clip(model, model->config(), out_dir, dtype);
  const auto vocab = parser.has("vocab") ? parser.get("vocab") : models::clip_vocab_of(source);
  if (!vocab.empty()) text::ClipTokenizer(vocab, model->config().context_length).save_hf(out_dir);
  std::cout << "export: " << source << " -> " << out_dir << " (transformers CLIPModel, " << models::hf_dtype_name(dtype)
            << "; " << describe(model->config())
            << (vocab.empty() ? "; no tokenizer files: --vocab writes them" : "; CLIPTokenizer from " + vocab)
            << ")\n";
}

// An instruct run or a LLaVA checkpoint (train::open_instruct_model; --vision-tower names the
// latter's tower).
train::InstructRun open_instruct_source(const ArgParser& parser, const std::string& source) {
  return train::open_instruct_model(source, {parser.has("vision-tower") ? parser.get("vision-tower") : "", ""},
                                    torch::kCPU);
}

// An instruct run (its latest checkpoint, or a step directory) or a LLaVA checkpoint as a
// transformers LlavaForConditionalGeneration directory with its processor and tokenizer files, plus
// mm_projector.safetensors. A run on slides has no LLaVA form: its LLaMA, projector and slide encoder go out in
// the forms their readers load.
void export_hf_llava(const ArgParser& parser, const std::string& source, const std::string& out_dir) {
  auto run = open_instruct_source(parser, source);
  const auto dtype = dtype_of(parser);
  run.task->export_model(out_dir, dtype);
  std::cout << "export: " << source << " -> " << out_dir << " ("
            << (run.task->llava()->vision_tower
                    ? "transformers LlavaForConditionalGeneration, AutoProcessor; mm_projector.safetensors"
                    : "slides: language_model/ a transformers LLaMA, mm_projector.safetensors, slide_encoder/")
            << "; " << models::hf_dtype_name(dtype) << ")\n";
}

// The projector alone, in LLaVA's mm_projector names: what phase 1 hands to phase 2 (or LLaVA's own train.py).
void export_llava_projector(const ArgParser& parser, const std::string& source, const std::string& out_file) {
  auto run = open_instruct_source(parser, source);
  auto& llava = run.task->llava();
  models::export_projector(llava, out_file, dtype_of(parser));
  std::cout << "export: " << source << " -> " << out_file << " (LLaVA mm_projector, "
            << llava->config().projector << ")\n";
}

// One line per format.
const ExportFormat kFormats[] = {
    {"hf-clip", "transformers CLIPModel directory (config.json, model.safetensors, preprocessor_config.json)",
     export_hf_clip},
    {"hf-llava", "instruct run, one of LLaVA's original checkpoints (LLaVA-1.5, LLaVA-Med v1.5; --vision-tower) or a "
                 "transformers LLaVA directory (llava-hf) -> transformers LlavaForConditionalGeneration directory "
                 "(+ processor, tokenizer, mm_projector.safetensors); a run on slides -> language_model/ "
                 "(transformers LLaMA), mm_projector.safetensors and slide_encoder/", export_hf_llava},
    {"llava-projector", "instruct run -> the projector alone as LLaVA's mm_projector .safetensors (OUT is a file)",
     export_llava_projector},
};

}  // namespace

int cmd_export(const Args& args) {
  std::string formats;
  for (const auto& f : kFormats) formats += str("\n  ", f.name, ": ", f.summary);
  ArgParser parser("pathvlm export", "Export a checkpoint (run dir, step dir, or weights) as a directory. Formats:" + formats);
  parser.positional("checkpoint", "run directory, checkpoint step directory, HF directory or .safetensors weights");
  parser.positional("out", "output directory (llava-projector: the .safetensors file)");
  parser.option("format", "export format", /*required=*/true);
  parser.option("vocab", "hf-clip: write CLIPTokenizer files from this CLIP BPE (bpe_simple_vocab_16e6.txt.gz) or HF "
                         "tokenizer directory (default: the source's own: a run's clip.vocab, an HF directory's files)");
  parser.option("hidden-act", "hf-clip: activation for open_clip weights without open_clip_config.json");
  parser.option("dtype", "fp32, bf16 or fp16: the exported weights' dtype", false, "fp32");
  parser.option("vision-tower", "hf-llava, llava-projector from one of LLaVA's original checkpoints: the CLIP "
                "directory it was trained with (default: its config.json's mm_vision_tower when that is local)");
  if (!parser.parse(args)) return 0;
  const auto format = parser.get("format");
  dtype_of(parser);  // a bad --dtype is refused before anything loads
  for (const auto& f : kFormats) {
    if (format == f.name) {
      f.run(parser, parser.positionals().at(0), parser.positionals().at(1));
      return 0;
    }
  }
  throw Error(str("--format '", format, "' is not known; formats:", formats));
}

}  // namespace pathvlm::cli
