#include <cstdio>
#include <iostream>

#include "cli/commands.h"

namespace pathvlm::cli {

int run_verb(const std::string& command, const std::string& operands, const std::string& summary,
             const std::vector<Verb>& verbs, const Args& args) {
  if (!args.empty())
    for (const auto& verb : verbs)
      if (args[0] == verb.name) return verb.run(Args(args.begin() + 1, args.end()));
  const bool asked = !args.empty() && (args[0] == "--help" || args[0] == "-h");
  std::ostream& out = asked ? std::cout : std::cerr;
  if (!args.empty() && !asked) out << "pathvlm " << command << ": unknown verb '" << args[0] << "'\n\n";
  out << "usage: pathvlm " << command << " <verb> [options]" << (operands.empty() ? "" : " ") << operands << "\n\n"
      << summary << "\n\nverbs:\n";
  for (const auto& verb : verbs) {
    char line[256];
    std::snprintf(line, sizeof line, "  %-10s %s\n", verb.name, verb.summary);
    out << line;
  }
  out << "\n`pathvlm " << command << " <verb> --help` lists a verb's options.\n";
  return asked ? 0 : 1;
}

}  // namespace pathvlm::cli
