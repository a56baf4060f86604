// `pathvlm synth <verb>`: procedural demo data. `tiles`: H&E-like tiles with captions and zero-shot splits;
// `text`: pathology-report-like documents and a small tokenizer for the lm task; `slides` and `instruct` live in
// their own files (cmd_synth_slides.cpp, cmd_synth_instruct.cpp).
// Another kind of demo data is one line in kVerbs plus its function.
#include <cstdio>
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "synth/synth_text.h"
#include "synth/synth_tiles.h"

namespace pathvlm::cli {
namespace {

int synth_tiles_verb(const Args& args) {
  ArgParser p("pathvlm synth tiles",
              "Draw synthetic H&E-like tiles of 8 tissue classes with varied captions: train / val / held-out\n"
              "zero-shot splits as image files, CSVs (filepath,caption,label,class) and a zero-shot YAML.");
  p.option("out", "output folder", true);
  p.option("size", "tile size in pixels", false, "224");
  p.option("train-per-class", "training tiles per class", false, "200");
  p.option("val-per-class", "validation tiles per class", false, "25");
  p.option("zeroshot-per-class", "held-out zero-shot tiles per class", false, "25");
  p.option("seed", "seed: the same seed gives the same files", false, "0");
  p.option("format", "image format: png or jpg", false, "png");
  p.option("threads", "drawing threads", false, "2");
  p.flag("quiet", "no progress bar");
  if (!p.parse(args)) return 0;
  synth::SynthTilesOptions o;
  o.out_dir = p.get("out");
  o.tile_size = static_cast<int>(p.get_int("size"));
  o.train_per_class = p.get_int("train-per-class");
  o.val_per_class = p.get_int("val-per-class");
  o.zeroshot_per_class = p.get_int("zeroshot-per-class");
  PATHVLM_CHECK(p.get_int("seed") >= 0, "--seed must be >= 0");
  o.seed = static_cast<uint64_t>(p.get_int("seed"));
  o.format = p.get("format");
  o.threads = static_cast<int>(p.get_int("threads"));
  o.progress = !p.get_flag("quiet");
  auto r = synth::synth_tiles(o);
  std::cout << "wrote " << r.train << " train, " << r.val << " val and " << r.zeroshot << " zero-shot tiles to "
            << o.out_dir << "\n  " << r.train_csv << "\n  " << r.val_csv << "\n  " << r.zeroshot_csv << "\n  "
            << r.zeroshot_yaml << "\n";
  return 0;
}

int synth_text_verb(const Args& args) {
  ArgParser p("pathvlm synth text",
              "Write pathology-report-like documents (train.jsonl, eval.jsonl: {\"text\": ...} per line) and a\n"
              "SentencePiece tokenizer.model trained on the training documents, for the lm task without downloads.");
  p.option("out", "output folder", true);
  p.option("train", "training documents", false, "2000");
  p.option("eval", "evaluation documents (other seeds than training)", false, "200");
  p.option("vocab", "tokenizer vocabulary size", false, "512");
  p.option("seed", "seed: the same seed gives the same files", false, "0");
  if (!p.parse(args)) return 0;
  synth::SynthTextOptions o;
  o.out_dir = p.get("out");
  o.train_documents = p.get_int("train");
  o.eval_documents = p.get_int("eval");
  o.vocab_size = static_cast<int>(p.get_int("vocab"));
  PATHVLM_CHECK(p.get_int("seed") >= 0, "--seed must be >= 0");
  o.seed = static_cast<uint64_t>(p.get_int("seed"));
  auto r = synth::synth_text(o);
  std::cout << "wrote " << r.train << " training and " << r.eval << " evaluation documents and a " << o.vocab_size
            << "-token tokenizer to " << o.out_dir << "\n  " << r.train_jsonl << "\n  " << r.eval_jsonl << "\n  "
            << r.tokenizer << "\n";
  return 0;
}

// One line per kind of synthetic data; `pathvlm synth` with no verb lists them.
const std::vector<Verb> kVerbs = {
    {"tiles", "H&E-like tiles of 8 tissue classes with captions (train / val / zero-shot splits)", synth_tiles_verb},
    {"text", "pathology-report-like documents (JSONL) and a small tokenizer for the lm task", synth_text_verb},
    {"slides", "pyramidal TIFF slides with known tissue regions, reports and ground-truth masks", cmd_synth_slides},
    {"instruct", "LLaVA-style instruction data on tiles: phase 1/2 JSON, eval VQA questions, few-shot set",
     cmd_synth_instruct},
};

}  // namespace

int cmd_synth(const Args& args) {
  return run_verb("synth", "", "Procedural demo data.", kVerbs, args);
}

}  // namespace pathvlm::cli
