// Every `pathvlm` subcommand: one function each, implemented in src/cli/cmd_<name>.cpp.
// `args` excludes the program and command names. Return the process exit status.
#pragma once
#include <string>
#include <vector>

namespace pathvlm::cli {

using Args = std::vector<std::string>;

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const Args& args);
};

// The table main() dispatches on and `pathvlm --help` lists (defined in main.cpp).
const std::vector<Command>& commands();

// A subcommand with verbs (`pathvlm shards inspect|validate|build|upgrade`): one entry per verb.
struct Verb {
  const char* name;
  const char* summary;
  int (*run)(const Args& args);
};

// Runs the verb named by args[0] with the remaining arguments. With no verb, `--help` or an unknown verb it
// prints `usage: pathvlm <command> <verb> [options] <operands>`, the summary and the verbs (status 0 for
// --help, 1 otherwise).
int run_verb(const std::string& command, const std::string& operands, const std::string& summary,
             const std::vector<Verb>& verbs, const Args& args);

int cmd_version(const Args& args);
int cmd_shards(const Args& args);
int cmd_shards_build(const Args& args);  // the `build` verb of `shards`
int cmd_synth(const Args& args);
int cmd_weights(const Args& args);
int cmd_train(const Args& args);
int cmd_config(const Args& args);
int cmd_tile(const Args& args);
int cmd_embed(const Args& args);
int cmd_synth_slides(const Args& args);  // the `slides` verb of `pathvlm synth`
int cmd_synth_instruct(const Args& args);  // the `instruct` verb of `pathvlm synth`

int cmd_tokenize(const Args& args);
int cmd_encode(const Args& args);
int cmd_probe(const Args& args);
int cmd_export(const Args& args);
int cmd_eval(const Args& args);
int cmd_generate(const Args& args);
int cmd_instruct(const Args& args);
int cmd_sweep(const Args& args);
int cmd_runs(const Args& args);

}  // namespace pathvlm::cli
