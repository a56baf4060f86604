// Sentinel ids of supervised token sequences, shared by the text layer (conversation templates) and the data
// layer (packing, instruction data). They are LLaVA's and PyTorch's values, so exported sequences read the same.
//
//   labels[i] = supervised ? input_ids[i] : text::kIgnoreIndex;
//   if (input_ids[i] == text::kImageToken) splice_image_features();
#pragma once
#include <cstdint>

namespace pathvlm::text {

// The label of a position the loss ignores (torch.nn.CrossEntropyLoss's and Hugging Face's ignore_index).
inline constexpr int64_t kIgnoreIndex = -100;

// The input id standing for one image in a token sequence (LLaVA's IMAGE_TOKEN_INDEX); the model replaces it
// by the image's feature rows. Never a vocabulary id, so it cannot reach the embedding table by mistake.
inline constexpr int64_t kImageToken = -200;

// The image placeholder written in conversation text (LLaVA's DEFAULT_IMAGE_TOKEN).
inline constexpr const char* kImagePlaceholder = "<image>";

}  // namespace pathvlm::text
