// Splicing image rows into a batch of text embeddings (LLaVA's prepare_inputs_labels_for_multimodal): each
// kImageSentinel id in a row's valid tokens is replaced by the rows of the next image, in order (one image per
// sentinel, images numbered across the batch row by row). Padding is dropped, every row's expanded sequence is
// cut to `max_length` (0 = no cut; LLaVA cuts after expanding), and the rows are padded again on `padding`'s side
// (right for training, left for generation) to the longest.
//
//   auto text = lm->embed(input_ids.masked_fill(input_ids == kImageSentinel, 0));
//   auto in = splice_images(text, input_ids, labels, attention_mask, images, SplicePadding::right);
//   in.embeds;           // [B, L', H]: text rows, image rows, zero rows at padding
//   in.labels;           // [B, L'] int64: the text labels, kIgnoreIndex at image rows and padding
//   in.attention_mask;   // [B, L'] bool: true at text and image rows
//   in.position_ids;     // [B, L'] int64: 0.. over the valid rows of each sequence, 0 at padding
//
// Differentiable in the text embeddings and the image rows. Text-only rows and batches (no sentinel, no images)
// go through unchanged apart from the re-padding.
#pragma once
#include <torch/torch.h>

#include <vector>

namespace pathvlm::models {

enum class SplicePadding { left, right };

struct SplicedInputs {
  torch::Tensor embeds;
  torch::Tensor labels;  // undefined when no labels were given
  torch::Tensor attention_mask;
  torch::Tensor position_ids;
};

// `text_embeds` [B, L, H]: the embeddings of `input_ids` [B, L] (the rows at sentinels are not read).
// `labels` [B, L] int64 or undefined. `attention_mask` [B, L] keep flags of the valid tokens (either padding side,
// or padding in between) or undefined (all valid). `images`: one [T_i, H] per sentinel in the batch's valid tokens
// (T_i may differ), cast to the embeddings' dtype. Errors name the row and the counts that do not match.
SplicedInputs splice_images(const torch::Tensor& text_embeds, const torch::Tensor& input_ids, const torch::Tensor& labels,
                            const torch::Tensor& attention_mask, const std::vector<torch::Tensor>& images,
                            SplicePadding padding, int64_t max_length = 0);

}  // namespace pathvlm::models
