#include "models/layers/kv_cache.h"

#include "core/error.h"

namespace pathvlm::models {

std::pair<torch::Tensor, torch::Tensor> KvCache::append(const torch::Tensor& keys, const torch::Tensor& values) {
  PATHVLM_CHECK(keys.dim() == 4 && keys.sizes() == values.sizes(), "kv cache: keys ", keys.sizes(), " and values ",
                values.sizes(), " must both be [B, kv_heads, L, head_dim]");
  if (!keys_.defined()) {
    keys_ = keys;
    values_ = values;
  } else {
    PATHVLM_CHECK(keys.size(0) == keys_.size(0) && keys.size(1) == keys_.size(1) && keys.size(3) == keys_.size(3),
                  "kv cache: step of shape ", keys.sizes(), " does not continue the cached ", keys_.sizes());
    keys_ = torch::cat({keys_, keys}, 2);
    values_ = torch::cat({values_, values}, 2);
  }
  return {keys_, values_};
}

void KvCache::clear() {
  keys_ = torch::Tensor();
  values_ = torch::Tensor();
}

}  // namespace pathvlm::models
