// Stop strings (PathAsst's "###", a conversation's separator): found in the decoded text of the generated ids,
// not in the ids, because a stop string is usually split over several tokens ("#", "##") and the same text
// has many tokenizations. LLaVA's KeywordsStoppingCriteria does the same on the decoded tail.
//
//   generate::StopStrings stops({"###", "</s>"});
//   auto at = stops.find(decode(generated_ids));   // std::string::npos while no stop string has appeared
//   if (at != std::string::npos) text = text.substr(0, at);
//
// The generation keeps, in its ids, the tokens up to and including the one that completed the stop string (as
// LLaVA's generate output does); only the text is cut, before the stop string.
#pragma once
#include <string>
#include <vector>

namespace pathvlm::generate {

class StopStrings {
 public:
  // Empty strings are refused (they would stop every sequence at once).
  explicit StopStrings(std::vector<std::string> stops = {});

  // The position of the earliest occurrence in `text` of any stop string, or std::string::npos.
  size_t find(const std::string& text) const;
  bool empty() const { return stops_.empty(); }

 private:
  std::vector<std::string> stops_;
};

}  // namespace pathvlm::generate
