// Instruction records about synthetic slides; see slide_instruct.h.
#include "synth/slide_instruct.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/random.h"
#include "core/text_file.h"
#include "synth/synth_instruct.h"
#include "synth/synth_tiles.h"
#include "synth/tissue_texture.h"

namespace pathvlm::synth {

namespace {

using Json = nlohmann::ordered_json;

const char* const kMainTissueQuestion = "What is the predominant tissue in this slide?";

Json turn(const char* from, const std::string& value) { return Json{{"from", from}, {"value", value}}; }

// The tissue classes of a slide, largest share first.
std::vector<TissueClass> classes_by_share(const SynthSlide& slide) {
  std::vector<TissueClass> out;
  for (const auto& [share, c] : synth_class_shares(slide.regions)) out.push_back(static_cast<TissueClass>(c));
  return out;
}

std::string name_of(TissueClass c) { return synth_class_synonyms(c)[0]; }

std::string main_tissue_answer(TissueClass c) { return "Predominantly " + name_of(c) + "."; }

std::string presence_question(TissueClass c) { return "Is there " + name_of(c) + " in this slide?"; }

// A tissue class the slide does not show, drawn from `draw`.
TissueClass absent_class(const std::vector<TissueClass>& present, uint64_t draw) {
  std::vector<TissueClass> absent;
  for (auto c : all_tissue_classes())
    if (c != TissueClass::Background && std::find(present.begin(), present.end(), c) == present.end())
      absent.push_back(c);
  PATHVLM_CHECK(!absent.empty(), "synth slides: a slide shows every tissue class");
  return absent[draw % absent.size()];
}

}  // namespace

SlideInstructFiles write_slide_instruct(const std::string& out_dir, const std::vector<SynthSlide>& slides,
                                        uint64_t seed, int vocab_size) {
  namespace fs = std::filesystem;
  fs::create_directories(out_dir);
  const fs::path out(out_dir);
  Json reports = Json::array(), chat = Json::array();
  std::vector<Json> eval_reports, eval_chat;
  int64_t question_id = 0;
  for (size_t i = 0; i < slides.size(); ++i) {
    const auto& slide = slides[i];
    const auto present = classes_by_share(slide);
    PATHVLM_CHECK(!present.empty(), "synth slides: slide '", slide.id, "' has no tissue regions");
    const TissueClass main = present.front();
    uint64_t state = splitmix64(seed ^ (0x736c696465ULL + i));
    const TissueClass shown = present[(state = splitmix64(state)) % present.size()];
    const TissueClass missing = absent_class(present, state = splitmix64(state));
    const std::string report_request = std::string("<image>\n") + kSlideReportPrompt;
    const std::string main_request = std::string("<image>\n") + kMainTissueQuestion;

    reports.push_back(Json{{"id", slide.id + "-report"},
                           {"image", slide.id},
                           {"conversations", Json::array({turn("human", report_request), turn("gpt", slide.report)})}});
    chat.push_back(Json{{"id", slide.id + "-main"},
                        {"image", slide.id},
                        {"conversations", Json::array({turn("human", main_request),
                                                       turn("gpt", main_tissue_answer(main))})}});
    // Every class asked about on every slide: a yes or no must come from the slide, not from the class named.
    for (auto c : all_tissue_classes()) {
      if (c == TissueClass::Background) continue;
      const bool yes = std::find(present.begin(), present.end(), c) != present.end();
      chat.push_back(Json{{"id", slide.id + "-" + tissue_class_key(c)},
                          {"image", slide.id},
                          {"conversations", Json::array({turn("human", "<image>\n" + presence_question(c)),
                                                         turn("gpt", yes ? "Yes." : "No.")})}});
    }
    chat.push_back(Json{{"id", slide.id + "-report-main"},
                        {"image", slide.id},
                        {"conversations", Json::array({turn("human", report_request), turn("gpt", slide.report),
                                                       turn("human", kMainTissueQuestion),
                                                       turn("gpt", main_tissue_answer(main))})}});

    eval_reports.push_back(Json{{"question_id", question_id++}, {"image", slide.id}, {"text", kSlideReportPrompt},
                                {"answer", slide.report}, {"answer_type", "OPEN"}});
    eval_chat.push_back(Json{{"question_id", question_id++}, {"image", slide.id}, {"text", kMainTissueQuestion},
                             {"answer", main_tissue_answer(main)}, {"answer_type", "OPEN"}});
    const bool yes = i % 2 == 0;
    eval_chat.push_back(Json{{"question_id", question_id++}, {"image", slide.id},
                             {"text", presence_question(yes ? shown : missing)}, {"answer", yes ? "yes" : "no"},
                             {"answer_type", "CLOSED"}});
  }
  SlideInstructFiles files;
  files.reports = (out / "reports.json").string();
  files.chat = (out / "chat.json").string();
  files.eval_reports = (out / "eval_reports.jsonl").string();
  files.eval_chat = (out / "eval_chat.jsonl").string();
  files.tokenizer = (out / "tokenizer.model").string();
  files.text = (out / "text.jsonl").string();
  write_text_file(files.reports, reports.dump(1) + "\n");
  write_text_file(files.chat, chat.dump(1) + "\n");
  const auto jsonl = [](const std::vector<Json>& lines) {
    std::string text;
    for (const auto& line : lines) text += line.dump() + "\n";
    return text;
  };
  write_text_file(files.eval_reports, jsonl(eval_reports));
  write_text_file(files.eval_chat, jsonl(eval_chat));
  // Reports alone too: report generation prompts the LLM with the slide's tokens and no request text. And each
  // report after its findings in words, as a pretrained LLM knows that words before a report shape it: phase 1's
  // projector then has words to map the slide to, not a reading of its prefix to teach a frozen model.
  std::vector<std::string> report_texts;
  for (const auto& slide : slides) {
    report_texts.push_back(slide.report);
    std::string findings;
    for (auto c : classes_by_share(slide)) findings += (findings.empty() ? "Findings: " : ", ") + name_of(c);
    report_texts.push_back(findings + ".\n" + slide.report);
  }
  write_instruct_tokenizer_and_corpus({&reports, &chat}, report_texts, {}, vocab_size, files.tokenizer, files.text);
  return files;
}

}  // namespace pathvlm::synth
