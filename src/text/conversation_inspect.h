// Looking at training samples as the model will see them (for `pathvlm instruct inspect`): the text with the
// supervised spans marked, and the ids and labels as JSON.
//
//   auto seq = tmpl.tokenize(conversation, tokenizer);
//   std::cout << text::render_supervision(seq, tokenizer) << "\n";
//     // <s> A chat ... USER: <image> \nWhat tissue? ASSISTANT:[[ Colonic mucosa.</s>]]
//   std::cout << text::sequence_json(conversation.id, seq) << "\n";
//     // {"id":"id-7","input_ids":[1,319,...,-200,...],"labels":[-100,...,2]}
//
// render_supervision decodes each run of ordinary tokens on its own, so every run shows the space its first
// token starts with (the " \n" after an image is SentencePiece's dummy prefix of the chunk after the image);
// special tokens are written as their strings, images as "<image>", and each supervised stretch is wrapped in
// "[[" and "]]" (plain text markers, no colour codes, so the output can be diffed and grepped).
#pragma once
#include <string>

#include "text/supervised_sequence.h"

namespace pathvlm::text {

class Tokenizer;

std::string render_supervision(const SupervisedSequence& sequence, const Tokenizer& tokenizer);

// One line of JSON: {"id", "input_ids" (kImageToken at images), "labels" (kIgnoreIndex where not supervised)}.
std::string sequence_json(const std::string& id, const SupervisedSequence& sequence);

}  // namespace pathvlm::text
