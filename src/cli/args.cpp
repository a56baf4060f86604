#include "cli/args.h"

#include <iostream>
#include <sstream>

#include "core/error.h"

namespace pathvlm::cli {

ArgParser::ArgParser(std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)) {}

void ArgParser::option(const std::string& name, const std::string& help, bool required,
                       const std::string& default_value) {
  specs_.push_back({name, help, default_value, Kind::Option, required, {}});
}

void ArgParser::list(const std::string& name, const std::string& help, bool required) {
  specs_.push_back({name, help, "", Kind::List, required, {}});
}

void ArgParser::flag(const std::string& name, const std::string& help) {
  specs_.push_back({name, help, "", Kind::Flag, false, {}});
}

void ArgParser::standalone_flag(const std::string& name, const std::string& help) {
  flag(name, help);
  specs_.back().standalone = true;
}

void ArgParser::positional(const std::string& name, const std::string& help, bool many, bool required) {
  positional_specs_.push_back({name, help, many, required});
}

ArgParser::Spec* ArgParser::find(const std::string& name) {
  for (auto& s : specs_)
    if (s.name == name) return &s;
  return nullptr;
}

const ArgParser::Spec& ArgParser::spec(const std::string& name) const {
  for (auto& s : specs_)
    if (s.name == name) return s;
  throw Error(str(command_, ": internal error: option --", name, " was never declared"));
}

bool ArgParser::parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::cout << help();
      return false;
    }
    if (a.size() > 2 && a.rfind("--", 0) == 0) {
      std::string name = a.substr(2), inline_value;
      bool has_inline = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        inline_value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_inline = true;
      }
      Spec* s = find(name);
      PATHVLM_CHECK(s, command_, ": unknown option --", name, " (see `", command_, " --help`)");
      s->seen = true;
      if (s->kind == Kind::Flag) {
        PATHVLM_CHECK(!has_inline, command_, ": --", name, " is a flag and takes no value");
        continue;
      }
      if (has_inline) {
        s->values.push_back(inline_value);
      } else if (s->kind == Kind::Option) {
        PATHVLM_CHECK(i + 1 < args.size(), command_, ": --", name, " needs a value");
        s->values.assign(1, args[++i]);
      } else {
        while (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) s->values.push_back(args[++i]);
      }
      continue;
    }
    positionals_.push_back(a);
  }
  for (const auto& s : specs_)
    if (s.standalone && s.seen) return true;
  for (const auto& s : specs_)
    PATHVLM_CHECK(!s.required || s.seen, command_, ": missing required option --", s.name, " (", s.help, ")");
  size_t needed = 0;
  bool many = false;
  for (const auto& p : positional_specs_) {
    needed += p.required ? 1 : 0;
    many = many || p.many;
  }
  PATHVLM_CHECK(positionals_.size() >= needed, command_, ": expected ", needed, " positional argument(s), got ",
                positionals_.size(), " (see `", command_, " --help`)");
  PATHVLM_CHECK(many || positionals_.size() <= positional_specs_.size(), command_, ": unexpected argument '",
                positionals_.empty() ? "" : positionals_.back(), "'");
  return true;
}

bool ArgParser::has(const std::string& name) const { return spec(name).seen; }

std::string ArgParser::get(const std::string& name) const {
  const Spec& s = spec(name);
  return s.values.empty() ? s.default_value : s.values.back();
}

std::vector<std::string> ArgParser::get_list(const std::string& name) const { return spec(name).values; }

long long ArgParser::get_int(const std::string& name) const {
  std::string v = get(name);
  try {
    size_t used = 0;
    long long x = std::stoll(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  throw Error(str(command_, ": --", name, " expects an integer, got '", v, "'"));
}

double ArgParser::get_double(const std::string& name) const {
  std::string v = get(name);
  try {
    size_t used = 0;
    double x = std::stod(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  throw Error(str(command_, ": --", name, " expects a number, got '", v, "'"));
}

std::string ArgParser::help() const {
  std::ostringstream out;
  out << "usage: " << command_;
  if (!specs_.empty()) out << " [options]";
  for (const auto& p : positional_specs_) out << " " << (p.required ? "" : "[") << p.name << (p.many ? "..." : "")
                                              << (p.required ? "" : "]");
  out << "\n\n" << summary_ << "\n";
  if (!positional_specs_.empty()) {
    out << "\narguments:\n";
    for (const auto& p : positional_specs_) out << "  " << p.name << "\n      " << p.help << "\n";
  }
  if (!specs_.empty()) {
    out << "\noptions:\n";
    for (const auto& s : specs_) {
      out << "  --" << s.name << (s.kind == Kind::Option ? " VALUE" : s.kind == Kind::List ? " VALUE..." : "");
      if (s.required) out << "  (required)";
      if (!s.default_value.empty()) out << "  (default: " << s.default_value << ")";
      out << "\n      " << s.help << "\n";
    }
  }
  return out.str();
}

}  // namespace pathvlm::cli
