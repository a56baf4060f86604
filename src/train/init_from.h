// train.init_from: weights loaded into a freshly built model before training, e.g. a phase-2 run starting
// from phase 1 or an LLM from its Hugging Face release.
//
// Each source is resolved to safetensors weights:
//   - a run directory (has checkpoints/): its newest complete checkpoint;
//   - a checkpoint step directory (has trainer_state.json): verified, then read as ckpt::ModelTensors (a
//     partial checkpoint's external tensors come from their own sources);
//   - a directory with model.safetensors or a sharded model.safetensors.index.json, or a .safetensors file.
// The source's names that start with a `skip` prefix are left out; the others pass through `map` ("from_prefix ->
// to_prefix", the first rename whose prefix matches; unmatched names are kept) and address the task's
// state_tensors() (Hugging Face names for CLIP). Sources
// apply in order; a later one overwrites what an earlier one loaded. Dtypes convert to the model's; a shape
// mismatch is an error naming the tensor, the file and both shapes.
#pragma once
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "train/checkpoint.h"
#include "train/train_config.h"

namespace pathvlm::train {

// One "from -> to" entry of `map`.
struct Rename {
  std::string from, to;
};
// Parses `map`; throws naming `key` and the entry when it has no "->".
std::vector<Rename> parse_renames(const std::vector<std::string>& map, const std::string& key);
// `name` after the first rename whose `from` it starts with (unchanged when none does).
std::string apply_renames(const std::vector<Rename>& renames, const std::string& name);

// The weights `path` names, as described above (a step directory for runs and checkpoints); throws when it
// holds no weights.
std::string resolve_weights(const std::string& path);

// train.init_from's entries keyed "train.init_from[i]".
std::vector<KeyedInitSource> keyed_init_from(const std::vector<InitSource>& init_from);

// Copies every source into `targets` (name -> tensor of the live model, updated in place without autograd).
// Logs per source the loaded / missing / unexpected counts with a few names. Throws on a strict source with
// unused tensors, on model tensors no source loaded when any source is strict, and on shape mismatches.
// Returns where each loaded tensor's final values are (the file really holding them, through partial
// checkpoints) with every such file's size and CRC-32, computed here once: a later checkpoint may leave
// the frozen ones out and point at these files.
ckpt::External load_init_from(const std::vector<KeyedInitSource>& sources,
                              const std::vector<std::pair<std::string, torch::Tensor>>& targets);

}  // namespace pathvlm::train
