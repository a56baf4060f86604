// Synthetic instruction-tuning data (LLaVA / PathAsst style) on the procedural demo tiles, for the instruct
// trainer's two phases and its evaluation without real data. `synth_instruct` writes, under out_dir:
//   tiles/                    the `synth tiles` output: train tiles, support tiles (its `val` split) and held-out
//                             eval tiles (its `zeroshot` split: other seeds), with CSVs and zeroshot.yaml
//   shards/{train,support,eval}/   `tiles` shards + manifest.json; a record's id is its tile id, the image path
//                             relative to tiles/ ("images/train/stroma_00003.png"), its label the class
//   phase1.json               LLaVA records, one per train tile: a describe-this prompt -> the tile's caption
//   phase2.json               LLaVA conversations on train tiles: open (tissue, features), closed yes/no
//                             (balanced), multi-turn (2-3 turns), plus text-only records (no "image")
//   phase2_classes.json       per train tile a yes/no question naming each class ("yes" for its own): with it the
//                             demo's closed accuracy goes from ~0.7 to ~0.97
//   eval/phase1.json, eval/phase2.json   the same kinds of records on the eval tiles (evaluation loss)
//   eval/questions.jsonl      one question per line on the eval tiles, closed and open, with ground truth:
//                             {"question_id", "image", "text", "answer", "answer_type": "CLOSED"|"OPEN"}
//                             (what eval/vqa.h reads; closed questions end with Quilt-LLaVA's two-option hint)
//   support.json              the few-shot support set: per class its label, key, name and support tile ids
//   tokenizer.model           a small SentencePiece BPE trained on all of the above and the templates' strings
//   text.jsonl                the train records' turns as documents ({"text"}), to pretrain the demo's language
//                             model with the lm task before instruction tuning
// Everything is a function of the options (docs/formats.md, "Instruction data").
//
//   SynthInstructOptions o;  o.out_dir = "demo/instruct";  o.tile_size = 64;
//   auto r = synth_instruct(o);   // r.phase1, r.phase2, r.questions, ... and the counts
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace pathvlm::synth {

struct SynthInstructOptions {
  std::string out_dir;
  int tile_size = 224;
  int64_t train_per_class = 16;
  int64_t support_per_class = 2;
  int64_t eval_per_class = 4;
  int64_t conversations_per_tile = 2;  // phase-2 records per tile
  int64_t text_only = 16;              // phase-2 records without an image
  int vocab_size = 512;                // the tokenizer's (the tiny LLaMA preset's vocabulary)
  uint64_t seed = 0;
  int threads = 2;
  bool progress = true;
};

struct SynthInstructReport {
  int64_t train_tiles = 0, support_tiles = 0, eval_tiles = 0;
  int64_t phase1_records = 0, phase2_records = 0, text_only_records = 0, class_question_records = 0;
  int64_t closed_questions = 0, open_questions = 0;  // in eval/questions.jsonl
  std::string train_shards, support_shards, eval_shards;  // manifest.json paths
  std::string phase1, phase2, class_questions, eval_phase1, eval_phase2, questions, support, tokenizer, text;
};

SynthInstructReport synth_instruct(const SynthInstructOptions& options);

// From lists of LLaVA records: `corpus_path`, JSONL documents ({"text"}) of each record's turns and then of
// `documents`, to pretrain the demo language model with the lm task; and `tokenizer_path`, a SentencePiece BPE of
// `vocab_size` trained on all of those, the templates' fixed strings and `extra`.
void write_instruct_tokenizer_and_corpus(const std::vector<const nlohmann::ordered_json*>& record_lists,
                                         const std::vector<std::string>& documents,
                                         const std::vector<std::string>& extra, int vocab_size,
                                         const std::string& tokenizer_path, const std::string& corpus_path);

// The describe-this prompts phase-1 records draw from.
const std::vector<std::string>& synth_describe_prompts();
// The question of few-shot prompts on these tiles (instruct.eval.question's default); a class name answers it.
const char* synth_few_shot_question();

}  // namespace pathvlm::synth
