// `pathvlm config show CONFIG [key=value ...]` and `pathvlm config docs`.
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "train/job_config.h"

namespace pathvlm::cli {

namespace {

const char* kUsage =
    "usage: pathvlm config <verb> [options]\n\n"
    "Inspect job configs (YAML with `base:` inheritance and key=value overrides).\n\nverbs:\n"
    "  show CONFIG [key=value ...]  check a config and print it resolved (every key, defaults filled in)\n"
    "  docs [--markdown]            list every key with its type, default, allowed values and doc\n\n"
    "`pathvlm config <verb> --help` lists a verb's options.\n";

int show(const Args& args) {
  ArgParser parser("pathvlm config show",
                   "Check a config (following base: files, applying key=value overrides) and print it resolved.");
  parser.positional("config", "the YAML config file");
  parser.positional("overrides", "key=value overrides, e.g. optim.lr=1e-4 data.batch_size=64", true, false);
  parser.flag("table", "print the settings table (non-default values marked) instead of YAML");
  if (!parser.parse(args)) return 0;
  const auto& pos = parser.positionals();
  JobConfig job = load_job_config(pos[0], Args(pos.begin() + 1, pos.end()));
  std::cout << (parser.get_flag("table") ? cfg::settings_table(job) : cfg::to_yaml(job));
  return 0;
}

int docs(const Args& args) {
  ArgParser parser("pathvlm config docs", "List every config key with its type, default, allowed values and doc.");
  parser.flag("markdown", "print Markdown tables, one per section (for docs/)");
  if (!parser.parse(args)) return 0;
  std::cout << cfg::docs<JobConfig>(parser.get_flag("markdown"));
  return 0;
}

}  // namespace

int cmd_config(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << kUsage;
    return args.empty() ? 1 : 0;
  }
  Args rest(args.begin() + 1, args.end());
  if (args[0] == "show") return show(rest);
  if (args[0] == "docs") return docs(rest);
  std::cerr << "pathvlm config: unknown verb '" << args[0] << "'\n\n" << kUsage;
  return 1;
}

}  // namespace pathvlm::cli
