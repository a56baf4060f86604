// `pathvlm export`: a trained model as a directory other tools load as it is.
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "text/clip_tokenizer.h"
#include "models/clip/weights.h"

namespace pathvlm::cli {
namespace {

struct ExportFormat {
  const char* name;
  const char* summary;
  void (*run)(const ArgParser& parser, const std::string& source, const std::string& out_dir);
};

void export_hf_clip(const ArgParser& parser, const std::string& source, const std::string& out_dir) {
  models::ClipLoadOptions options;
  if (parser.has("hidden-act")) options.hidden_act = parser.get("hidden-act");
  auto model = models::load_clip(source, options);
  models::export_hf_clip(model, model->config(), out_dir);
  if (parser.has("vocab")) text::ClipTokenizer(parser.get("vocab"), model->config().context_length).save_hf(out_dir);
  std::cout << "export: " << source << " -> " << out_dir << " (transformers CLIPModel; " << describe(model->config())
            << ")\n";
}

// One line per format.
const ExportFormat kFormats[] = {
    {"hf-clip", "transformers CLIPModel directory (config.json, model.safetensors, preprocessor_config.json)",
     export_hf_clip},
};

}  // namespace

int cmd_export(const Args& args) {
  std::string formats;
  for (const auto& f : kFormats) formats += str("\n  ", f.name, ": ", f.summary);
  ArgParser parser("pathvlm export", "Export a checkpoint (run dir, step dir, or weights) as a directory. Formats:" + formats);
  parser.positional("checkpoint", "run directory, checkpoint step directory, HF directory or .safetensors weights");
  parser.positional("out", "output directory");
  parser.option("format", "export format", /*required=*/true);
  parser.option("vocab", "hf-clip: also write CLIPTokenizer files from this CLIP BPE (bpe_simple_vocab_16e6.txt.gz)");
  parser.option("hidden-act", "hf-clip: activation for open_clip weights without open_clip_config.json");
  if (!parser.parse(args)) return 0;
  const auto format = parser.get("format");
  for (const auto& f : kFormats) {
    if (format == f.name) {
      f.run(parser, parser.positionals().at(0), parser.positionals().at(1));
      return 0;
    }
  }
  throw Error(str("--format '", format, "' is not known; formats:", formats));
}

}  // namespace pathvlm::cli
