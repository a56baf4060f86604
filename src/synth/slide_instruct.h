// Instruction data about synthetic slides (`pathvlm synth slides` writes it into <out>/instruct/), for the instruct
// task reading slides through a slide encoder: PathAlign-R-style report generation and slide-level chat.
//   reports.json        one LLaVA record per slide: kSlideReportPrompt -> the slide's report (phase 1, template plain)
//   chat.json           per slide: the predominant tissue (open), whether each tissue class is present (closed
//                       yes/no), and a two-turn record (the report, then the predominant tissue)
//   eval_reports.jsonl  questions (eval/vqa.h's JSONL): per slide the report request, the report as the open answer
//   eval_chat.jsonl     per slide the predominant-tissue question (open) and one yes/no question (alternating yes, no)
//   tokenizer.model     a SentencePiece BPE over all of the above and the templates' strings
//   text.jsonl          the records' turns, the reports alone and each report after its findings in words
//                       ("Findings: mucin, lymphocytes.") as documents, to pretrain the demo language model
// A record's `image` is the slide id; everything is a function of the slides and the seed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "synth/slide_synth.h"

namespace pathvlm::synth {

struct SlideInstructFiles {
  std::string reports, chat, eval_reports, eval_chat, tokenizer, text;
};

SlideInstructFiles write_slide_instruct(const std::string& out_dir, const std::vector<SynthSlide>& slides,
                                        uint64_t seed, int vocab_size = 512);

}  // namespace pathvlm::synth
