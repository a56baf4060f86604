// `pathvlm synth instruct`: synthetic LLaVA-style instruction data (phase 1 descriptions, phase 2 conversations,
// held-out VQA questions, a few-shot support set) on procedural tiles.
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "synth/synth_instruct.h"

namespace pathvlm::cli {

int cmd_synth_instruct(const Args& args) {
  ArgParser p("pathvlm synth instruct",
              "Write synthetic instruction-tuning data on procedural H&E-like tiles: tile shards (train, support,\n"
              "held-out eval), LLaVA JSON for phase 1 (phase1.json: describe -> caption) and phase 2 (phase2.json:\n"
              "open, closed yes/no, multi-turn and text-only conversations), eval/questions.jsonl (closed and open\n"
              "questions with answers), support.json (few-shot tiles per class) and a small tokenizer.model. See docs/formats.md.");
  synth::SynthInstructOptions o;
  p.option("out", "output folder", true);
  p.option("size", "tile size in pixels", false, std::to_string(o.tile_size));
  p.option("train-per-class", "training tiles per class", false, std::to_string(o.train_per_class));
  p.option("support-per-class", "few-shot support tiles per class", false, std::to_string(o.support_per_class));
  p.option("eval-per-class", "held-out evaluation tiles per class", false, std::to_string(o.eval_per_class));
  p.option("conversations-per-tile", "phase-2 records per tile", false, std::to_string(o.conversations_per_tile));
  p.option("text-only", "phase-2 records without an image", false, std::to_string(o.text_only));
  p.option("seed", "seed: the same seed gives the same files", false, "0");
  p.option("threads", "drawing and sharding threads", false, std::to_string(o.threads));
  p.flag("quiet", "no progress bars");
  if (!p.parse(args)) return 0;
  o.out_dir = p.get("out");
  o.tile_size = static_cast<int>(p.get_int("size"));
  o.train_per_class = p.get_int("train-per-class");
  o.support_per_class = p.get_int("support-per-class");
  o.eval_per_class = p.get_int("eval-per-class");
  o.conversations_per_tile = p.get_int("conversations-per-tile");
  o.text_only = p.get_int("text-only");
  PATHVLM_CHECK(p.get_int("seed") >= 0, "--seed must be >= 0");
  o.seed = static_cast<uint64_t>(p.get_int("seed"));
  o.threads = static_cast<int>(p.get_int("threads"));
  o.progress = !p.get_flag("quiet");
  const auto r = synth::synth_instruct(o);
  std::cout << "wrote " << r.train_tiles << " train, " << r.support_tiles << " support and " << r.eval_tiles
            << " eval tiles; " << r.phase1_records << " phase-1 and " << r.phase2_records << " phase-2 records ("
            << r.text_only_records << " text-only); " << r.closed_questions << " closed and " << r.open_questions
            << " open eval questions; " << r.class_question_records << " class questions\n  " << r.phase1 << "\n  "
            << r.phase2 << "\n  " << r.class_questions << "\n  " << r.questions << "\n  "
            << r.support << "\n  " << r.tokenizer << "\n  " << r.text << "\n  " << r.train_shards << "\n  "
            << r.eval_shards << "\n";
  return 0;
}

}  // namespace pathvlm::cli
