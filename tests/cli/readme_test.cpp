// The README's commands against the program, in seconds: every `$B` command of its shell blocks names a command
// (and verb) pathvlm has and only options that command lists, every file of the repository or of the shared data
// it names exists, and every config it trains or evaluates resolves with its overrides. Running them all, in
// order, is scripts/dev/readme_check.sh (about 15 minutes, not in CI).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli_test_util.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace pathvlm::testing;

namespace {

struct ReadmeCommand {
  int line;                         // where it starts in the README
  std::vector<std::string> words;   // shell words, quotes removed, the comment dropped

  // The words after `$B` (the program's arguments); empty when the command does not run pathvlm.
  std::vector<std::string> pathvlm_args() const {
    auto b = std::find(words.begin(), words.end(), "$B");
    return b == words.end() ? std::vector<std::string>{} : std::vector<std::string>(b + 1, words.end());
  }
};

// Shell words of one command line: whitespace-separated, '...' and "..." kept whole; a # outside quotes that starts
// a word ends the line.
std::vector<std::string> shell_words(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (char c : text) {
    if (quote) {
      if (c == quote) quote = 0; else word += c;
    } else if (c == '\'' || c == '"') {
      quote = c, in_word = true;
    } else if (c == ' ' || c == '\t') {
      if (in_word) words.push_back(word), word.clear(), in_word = false;
    } else if (c == '#' && !in_word) {
      break;
    } else {
      word += c, in_word = true;
    }
  }
  if (in_word) words.push_back(word);
  return words;
}

// Every command of the README's ```bash and ```sh blocks, continuation lines joined.
std::vector<ReadmeCommand> readme_commands() {
  std::istringstream readme(read_text(std::string(PATHVLM_SOURCE_DIR) + "/README.md"));
  std::vector<ReadmeCommand> commands;
  bool in_block = false;
  std::string pending;
  int number = 0, start = 0;
  for (std::string line; std::getline(readme, line);) {
    ++number;
    if (!in_block) {
      in_block = line == "```bash" || line == "```sh";
      continue;
    }
    if (line == "```") {
      in_block = false;
      continue;
    }
    if (pending.empty()) start = number;
    if (!line.empty() && line.back() == '\\') {
      pending += line.substr(0, line.size() - 1) + " ";
      continue;
    }
    auto words = shell_words(pending + line);
    pending.clear();
    if (!words.empty()) commands.push_back({start, std::move(words)});
  }
  return commands;
}

// The options a command's --help lists ("  --name ...").
std::set<std::string> listed_options(const std::string& help) {
  std::set<std::string> options{"--help"};
  static const std::regex option(R"(^\s+(--[a-z0-9-]+))");
  std::istringstream in(help);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, option)) options.insert(m[1]);
  }
  return options;
}

bool is_plain_word(const std::string& w) {
  return !w.empty() && w.find_first_not_of("abcdefghijklmnopqrstuvwxyz") == std::string::npos;
}

}  // namespace

TEST(ReadmeCommands, NameCommandsAndOptionsTheProgramHas) {
  TempDir dir("readme_options");
  std::map<std::string, CliResult> helps;  // by command name: most README commands are train, eval or generate
  auto help_of = [&](const std::string& name) -> const CliResult& {
    auto it = helps.find(name);
    if (it == helps.end()) it = helps.emplace(name, run_cli(name + " --help", dir.path)).first;
    return it->second;
  };
  int checked = 0;
  for (const auto& command : readme_commands()) {
    const auto args = command.pathvlm_args();
    if (args.empty() || args[0].rfind("-", 0) == 0) continue;
    const auto where = "README line " + std::to_string(command.line);
    // `pathvlm CMD VERB` where CMD has verbs (shards build, sweep status, ...), else `pathvlm CMD`.
    std::string name = args[0];
    if (args.size() > 1 && is_plain_word(args[1]) && help_of(args[0] + " " + args[1]).status == 0)
      name += " " + args[1];
    const auto& help = help_of(name);
    ASSERT_EQ(help.status, 0) << where << ": `pathvlm " << name << " --help` failed\n" << help.out << help.err;
    const auto options = listed_options(help.out + help.err);
    for (const auto& w : args) {
      if (w.rfind("--", 0) == 0) {
        EXPECT_TRUE(options.count(w)) << where << ": `pathvlm " << name << "` has no option " << w;
      }
    }
    ++checked;
  }
  EXPECT_GE(checked, 40) << "fewer README commands than expected: did the blocks lose their ```bash fences?";
}

TEST(ReadmeCommands, NameFilesThatExist) {
  const bool shared = fs::exists(PATHVLM_SHARED_DATA);
  int checked = 0;
  for (const auto& command : readme_commands()) {
    for (const auto& w : command.words) {
      const auto where = "README line " + std::to_string(command.line) + ": " + w;
      for (const char* dir : {"configs/", "launch/", "scripts/"}) {
        if (w.rfind(dir, 0) == 0 && w.find('*') == std::string::npos) {
          EXPECT_TRUE(fs::exists(std::string(PATHVLM_SOURCE_DIR) + "/" + w)) << where;
          ++checked;
        }
      }
      const std::string shared_prefix = "../shared/data/";
      if (shared && w.rfind(shared_prefix, 0) == 0) {
        EXPECT_TRUE(fs::exists(std::string(PATHVLM_SHARED_DATA) + "/" + w.substr(shared_prefix.size()))) << where;
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 20);
}

// `train` and `eval` of a config: the config and the README's overrides resolve (unknown keys, wrong types and bad
// values are refused by `config show` as by `train`).
TEST(ReadmeCommands, TrainAndEvalConfigsResolveWithTheirOverrides) {
  TempDir dir("readme_configs");
  int checked = 0;
  for (const auto& command : readme_commands()) {
    const auto args = command.pathvlm_args();
    if (args.size() < 2 || (args[0] != "train" && args[0] != "eval") || args[1].rfind("configs/", 0) != 0) continue;
    std::string show = "config show " + std::string(PATHVLM_SOURCE_DIR) + "/" + args[1];
    for (size_t i = 2; i < args.size(); ++i) {
      if (args[i].find('=') != std::string::npos && args[i].rfind("--", 0) != 0) show += " '" + args[i] + "'";
    }
    const auto shown = run_cli(show, dir.path);
    EXPECT_EQ(shown.status, 0) << "README line " << command.line << ": " << show << "\n" << shown.err;
    ++checked;
  }
  EXPECT_GE(checked, 10);
}
