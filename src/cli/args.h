// A small command-line parser for the subcommands: named options, flags, positionals, and `--help`.
//
//   ArgParser p("pathvlm encode", "Embed images and texts with a CLIP model.");
//   p.option("model", "HF CLIP directory, run checkpoint or export", /*required=*/true);
//   p.list("images", "image files");                   // --images a.png b.png ...
//   p.flag("normalize", "L2-normalise the embeddings");
//   if (!p.parse(args)) return 0;                       // --help was printed
//   auto dir = p.get("model");
#pragma once
#include <string>
#include <vector>

namespace pathvlm::cli {

class ArgParser {
 public:
  ArgParser(std::string command, std::string summary);

  void option(const std::string& name, const std::string& help, bool required = false,
              const std::string& default_value = "");
  void list(const std::string& name, const std::string& help, bool required = false);
  void flag(const std::string& name, const std::string& help);
  // A flag that answers on its own like --help (`--docs`): when given, required options and positionals are not
  // demanded.
  void standalone_flag(const std::string& name, const std::string& help);
  void positional(const std::string& name, const std::string& help, bool many = false, bool required = true);

  // Parses `args` (without the program and command names). Returns false after printing help.
  // Throws pathvlm::Error naming the option on unknown or missing options and bad values.
  bool parse(const std::vector<std::string>& args);

  bool has(const std::string& name) const;  // given on the command line (or a flag that is set)
  std::string get(const std::string& name) const;
  std::vector<std::string> get_list(const std::string& name) const;
  long long get_int(const std::string& name) const;
  double get_double(const std::string& name) const;
  bool get_flag(const std::string& name) const { return has(name); }
  // Positionals in order; for a `many` positional, every remaining argument.
  const std::vector<std::string>& positionals() const { return positionals_; }

  std::string help() const;

 private:
  enum class Kind { Option, List, Flag };
  struct Spec {
    std::string name, help, default_value;
    Kind kind;
    bool required;
    std::vector<std::string> values;
    bool seen = false;
    bool standalone = false;
  };
  struct PositionalSpec {
    std::string name, help;
    bool many, required;
  };
  Spec* find(const std::string& name);
  const Spec& spec(const std::string& name) const;

  std::string command_, summary_;
  std::vector<Spec> specs_;
  std::vector<PositionalSpec> positional_specs_;
  std::vector<std::string> positionals_;
};

}  // namespace pathvlm::cli
