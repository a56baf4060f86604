// How transformers numbers a tower's `hidden_states`: 0 = the embeddings, k = after block k, negative from the end
// (-1 = the last block, -2 = the penultimate: LLaVA's). One rule for CLIP image towers, ViTs and the configs and
// cached features that name a layer.
#pragma once

namespace pathvlm::models {

// `layer` as an index in 0..depth (outside that range when `layer` is outside -(depth + 1)..depth).
inline int hidden_state_index(int layer, int depth) { return layer < 0 ? depth + 1 + layer : layer; }

}  // namespace pathvlm::models
