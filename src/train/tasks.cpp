// The tasks `pathvlm train` knows: one line each (see registry.h). A task's folder under src/train/ holds
// its config, its Task and its evaluation glue.
#include "train/clip/task.h"
#include "train/instruct/task.h"
#include "train/lm/task.h"
#include "train/registry.h"
#include "train/slide/task.h"

namespace pathvlm::train {

const std::vector<TaskSpec>& registered_tasks() {
  static const std::vector<TaskSpec> tasks = {
      register_task<LmTask, LmConfig>(
          "lm", "the `lm` task: causal-LM training of a LLaMA on packed text",
          {{"tokenizer", "lm.tokenizer", "tokenizer.model or tokenizer.json (default: the model's)"},
           {"seq-len", "lm.seq_len", "tokens per packed sequence"},
           {"batch-size", "lm.eval.batch_size", "sequences per forward"},
           {"max-sequences", "lm.eval.max_sequences", "at most this many packed sequences"}}),
      register_task<ClipTask, ClipTaskConfig>(
          "clip", "the `clip` task: contrastive image-text training on tile shards",
          {{"zeroshot", "clip.data.zeroshot", "labelled tiles for zero-shot classification (manifest, folder or .h5)"},
           {"classes", "clip.eval.classes", "zero-shot YAML: templates and class names in label order"},
           {"val", "clip.data.val", "captioned tiles for retrieval metrics"},
           {"vocab", "clip.vocab",
            "CLIP BPE (bpe_simple_vocab_16e6.txt.gz) or HF tokenizer dir (default: the model's); for CONCH v1 its "
            "conch_byte_level_bpe_uncased.json (default: the model directory's tokenizer.json)"},
           {"batch-size", "clip.eval.batch_size", "images per rank per forward"},
           {"max-samples", "clip.eval.max_samples", "at most this many tiles of each set"}}),
      register_task<InstructTask, InstructConfig>(
          "instruct", "the `instruct` task: LLaVA / PathAsst instruction tuning (frozen CLIP tower, projector, LLaMA)",
          {{"questions", "instruct.eval.questions", "VQA questions JSONL (question_id, image, text, answer)"},
           {"batch-size", "instruct.eval.batch_size", "prompts per generation"},
           {"max-samples", "instruct.eval.max_samples", "at most this many eval records and questions"}}),
      register_task<SlideTask, SlideTaskConfig>(
          "slide", "the `slide` task: whole-slide <-> report alignment (slide encoder over tile features, CLIP text)",
          {{"val", "slide.data.val", "held-out slides: `slides` shards or a CSV manifest of TRIDENT/CLAM files"},
           {"classes", "slide.eval.classes", "zero-shot YAML: templates and class names (slide labels name them)"},
           {"labels", "slide.data.labels", "CSV slide_id,label for slides whose source has no label"},
           {"batch-size", "slide.eval.batch_size", "slides per rank per forward"},
           {"tile-features", "slide.eval.tile_features",
            "with CONCH v1: pooled (TRIDENT's / CLAM's conch_v1 features) or projected (embed pool=proj)"},
           {"vocab", "slide.text.vocab", "with CONCH v1: its conch_byte_level_bpe_uncased.json"}}),
  };
  return tasks;
}

}  // namespace pathvlm::train
