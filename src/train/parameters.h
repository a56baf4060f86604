// Which parameters train: `train.freeze` and `train.trainable` glob patterns resolved against parameter names.
//
//   * matches any run of characters (dots included), ? one character. A pattern matches a parameter when it
//   matches the whole name or a whole dotted module prefix of it: `vision_model` and `vision_model.*` both
//   cover vision_model.encoder.layers.0.mlp.fc1.weight; `*.lora_*` covers LoRA tensors anywhere.
//
// A parameter trains unless a freeze pattern matches it and no trainable pattern does; one its task already
// froze (requires_grad false, e.g. CLIP's lock_image) stays frozen. Pure functions of names: no torch.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/glob.h"

namespace pathvlm::train {

// `pattern` against the whole of `text` (core/glob.h).
using pathvlm::glob_match;
// `pattern` against the whole name or one of its dotted prefixes ("a", "a.b" of "a.b.c").
bool matches_parameter(const std::string& pattern, const std::string& name);

struct ParameterInfo {
  std::string name;
  int64_t numel = 0;
  bool task_trainable = true;  // requires_grad as the task built it
};

// What one pattern covered, among all parameters (task-frozen ones included).
struct PatternUse {
  std::string key;  // "train.freeze" or "train.trainable"
  std::string pattern;
  int64_t tensors = 0, elements = 0;
};

struct TrainableSelection {
  std::vector<bool> trained;  // per parameter, in the given order
  std::vector<PatternUse> uses;  // freeze patterns, then trainable ones
};

// The decision for every parameter. Throws pathvlm::Error when a pattern matches no parameter, naming the
// key, the pattern and the real names nearest to it.
TrainableSelection select_trainable(const std::vector<ParameterInfo>& params, const std::vector<std::string>& freeze,
                                    const std::vector<std::string>& trainable);

// The trained parameters, compactly: numeric path components become `*` (so every layer reads as one) and a
// module whose tensors all train reads as `module.*`, each entry with its tensor count:
// "blocks.*.attn.* (8 tensors, 8.45k params), head.* (1 tensor, 512 params)"; "nothing" when none trains.
std::string trained_summary(const std::vector<ParameterInfo>& params, const std::vector<bool>& trained,
                            size_t max_entries = 12);

}  // namespace pathvlm::train
