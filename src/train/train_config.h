// Config sections of the generic Trainer: `train` (loop, precision, freezing), `optim` (AdamW + schedule),
// `checkpoint` (saving, retention, resume) and `eval`. Light header: no torch.
#pragma once
#include <string>
#include <vector>

#include "core/config.h"

namespace pathvlm::train {

// Testing aid: one rank sends itself a signal right after a step, so resume tests are deterministic.
struct FaultConfig {
  int64_t step = 0;
  std::string signal = "KILL";
  int rank = 0;
  template <class V>
  void visit(V& v) {
    v.field("step", step, "after this optimizer step, `rank` sends itself `signal` (0: never; for resume tests)",
            cfg::Min(0));
    v.field("signal", signal, "signal to send", cfg::OneOf{"KILL", "USR1", "TERM"});
    v.field("rank", rank, "rank that sends it", cfg::Min(0));
  }
};

// One source of initial weights (train.init_from); see src/train/init_from.h.
struct InitSource {
  std::string path;
  std::vector<std::string> map = {};
  bool strict = true;
  std::vector<std::string> skip = {};
  template <class V>
  void visit(V& v) {
    v.field("path", path,
            "a run directory (its latest complete checkpoint), a checkpoint step directory, a directory with "
            "model.safetensors or model.safetensors.index.json, or a .safetensors file");
    v.field("map", map, "renames of the source's tensor names, \"from_prefix -> to_prefix\" (first match wins)");
    v.field("strict", strict,
            "every model tensor must be loaded (by all sources together) and every tensor of this source used");
    v.field("skip", skip,
            "prefixes of the source's tensor names (before map) left out: not loaded, and not unused under strict "
            "(a vision tower another part loads, an extra head)");
  }
};

// train.lora: LoRA adapters (src/models/lora/apply.h) on the model's Linear layers; the base model freezes.
struct LoraConfig {
  std::vector<std::string> targets = {};
  int64_t r = 8;
  double alpha = 16;
  double dropout = 0.05;
  bool use_rslora = false;
  bool enabled() const { return !targets.empty(); }
  template <class V>
  void visit(V& v) {
    v.field("targets", targets,
            "Linear layers that get adapters: module paths or their last names (q_proj), * and ? globs; empty: "
            "no LoRA. Everything else is frozen unless train.trainable names it; the export gets the adapter in "
            "PEFT's layout (<export>/adapter) and the model with the adapters merged");
    v.field("r", r, "adapter rank", cfg::Min(1));
    v.field("alpha", alpha, "scaling numerator: updates are scaled by alpha / r", cfg::Min(0.0));
    v.field("dropout", dropout, "dropout on the adapters' input while training", cfg::Range(0.0, 0.99));
    v.field("use_rslora", use_rslora, "scale by alpha / sqrt(r) (rank-stabilised LoRA)");
  }
};

// A source of initial weights with the config key its errors name ("train.init_from[1]", "lm.pretrained").
// `complete`: prefixes of model tensor names that must all be loaded (by the sources together) even when the source
// is not strict: a task's pretrained part whose module is built without initialising its weights.
struct KeyedInitSource {
  std::string key;
  InitSource source;
  std::vector<std::string> complete = {};
};

struct TrainConfig {
  int64_t steps = 1000;
  int64_t micro_batch_size = 32;
  int grad_accum = 1;
  std::string device = "auto";
  std::string precision = "auto";
  bool tf32 = true;
  std::vector<std::string> freeze = {};
  std::vector<std::string> trainable = {};
  std::vector<InitSource> init_from = {};
  std::vector<std::string> activation_checkpointing = {};
  int max_nonfinite = 5;
  LoraConfig lora;
  FaultConfig fault;
  template <class V>
  void visit(V& v) {
    v.field("steps", steps, "optimizer steps to train (the run ends there)", cfg::Min(1));
    v.field("micro_batch_size", micro_batch_size, "samples per rank per micro-step", cfg::Min(1));
    v.field("grad_accum", grad_accum,
            "micro-steps per optimizer step (global batch = micro_batch_size x grad_accum x world size)",
            cfg::Min(1));
    v.field("device", device, "where to train (auto: CUDA when available)", cfg::OneOf{"auto", "cpu", "cuda"});
    v.field("precision", precision,
            "fp32; bf16-mixed: fp32 weights, bf16 autocast; bf16: bf16 weights and gradients, bf16 autocast, fp32 "
            "master weights and moments in the optimizer (sharded with it). CPU or CUDA. auto: bf16-mixed on CUDA, "
            "fp32 on CPU. Before bf16-mixed existed, bf16 meant autocast: old configs want bf16-mixed",
            cfg::OneOf{"auto", "fp32", "bf16-mixed", "bf16"});
    v.field("tf32", tf32, "allow TF32 matmuls and convolutions on CUDA");
    v.field("freeze", freeze,
            "glob patterns (* any characters, ? one) of parameters not trained; a pattern matches a name or a "
            "dotted module prefix of it (printed at start)");
    v.field("trainable", trainable, "glob patterns of parameters trained even though a freeze pattern matches them");
    v.list("init_from", init_from,
           "weights loaded after the model is built, in order (later sources win); skipped when resuming");
    v.field("activation_checkpointing", activation_checkpointing,
            "module names whose activations are recomputed in backward (the task decides what each name covers)");
    v.field("max_nonfinite", max_nonfinite,
            "a step with a non-finite loss or gradient is skipped; this many in a row end the run at the next log line, "
            "evaluation or checkpoint", cfg::Min(1));
    v.section("lora", lora, "LoRA adapters: low-rank updates of chosen Linear layers, the base frozen");
    v.section("fault", fault, "fault injection for resume tests");
  }
};

struct OptimConfig {
  double lr = 5e-4;
  double weight_decay = 0.2;
  double beta1 = 0.9;
  double beta2 = 0.98;
  double eps = 1e-6;
  std::vector<std::string> no_decay = {};
  double clip_grad_norm = 1.0;
  std::string schedule = "cosine";
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.0;
  int64_t cooldown_steps = 0;
  template <class V>
  void visit(V& v) {
    v.field("lr", lr, "peak learning rate", cfg::Min(0.0));
    v.field("weight_decay", weight_decay, "AdamW decoupled weight decay (not on 1-D tensors, biases, norms, no_decay)",
            cfg::Range(0.0, 10.0));
    v.field("beta1", beta1, "AdamW first-moment decay", cfg::Range(0.0, 1.0));
    v.field("beta2", beta2, "AdamW second-moment decay", cfg::Range(0.0, 1.0));
    v.field("eps", eps, "AdamW denominator epsilon", cfg::Min(0.0));
    v.field("no_decay", no_decay, "extra parameter-name substrings excluded from weight decay");
    v.field("clip_grad_norm", clip_grad_norm, "clip gradients to this global L2 norm (0: no clipping)", cfg::Min(0.0));
    v.field("schedule", schedule, "learning-rate schedule after warmup",
            cfg::OneOf{"cosine", "constant", "constant_cooldown"});
    v.field("warmup_steps", warmup_steps, "linear warmup from 0 to lr over these steps", cfg::Min(0));
    v.field("min_lr_ratio", min_lr_ratio, "final learning rate of cosine / cooldown as a fraction of lr",
            cfg::Range(0.0, 1.0));
    v.field("cooldown_steps", cooldown_steps, "constant_cooldown: linear decay to min_lr over the last steps",
            cfg::Min(0));
  }
};

struct CheckpointConfig {
  int64_t every_steps = 1000;
  double every_minutes = 0;
  int keep_last = 3;
  std::string resume = "auto";
  bool save_final = true;
  bool export_final = true;
  template <class V>
  void visit(V& v) {
    v.field("every_steps", every_steps, "save every N optimizer steps (0: only by time, preemption and at the end)",
            cfg::Min(0));
    v.field("every_minutes", every_minutes, "also save when this many minutes passed since the last save (0: off)",
            cfg::Min(0.0));
    v.field("keep_last", keep_last, "complete checkpoints kept (older ones are deleted)", cfg::Min(1));
    v.field("resume", resume,
            "auto: continue from the newest complete checkpoint of the run if any; none: start fresh; "
            "or the path of a step directory");
    v.field("save_final", save_final, "save a checkpoint after the last step");
    v.field("export_final", export_final, "export the trained model to <run>/export at the end");
  }
};

struct EvalConfig {
  int64_t every = 0;
  template <class V>
  void visit(V& v) {
    v.field("every", every, "evaluate every N optimizer steps and at the end (0: never)", cfg::Min(0));
  }
};

}  // namespace pathvlm::train
