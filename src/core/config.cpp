// Config documents (YAML files chained by `base:`, command-line overrides), typed reading with
// file:line errors and "did you mean" suggestions, and the YAML / docs / settings-table renderers.
#include "core/config.h"

#include <yaml-cpp/depthguard.h>  // YAML::DeepRecursion (not in yaml.h of yaml-cpp 0.7)
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <sstream>

#include "core/ascii.h"
#include "core/error.h"
#include "core/utf8.h"

namespace fs = std::filesystem;

namespace pathvlm::cfg {

// ---- constraints ---------------------------------------------------------------------------------

namespace {

std::string short_number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

}  // namespace

std::string Constraint::describe() const {
  switch (kind) {
    case Kind::None: return "";
    case Kind::Min: return ">= " + short_number(lo);
    case Kind::Max: return "<= " + short_number(hi);
    case Kind::Range: return "in [" + short_number(lo) + ", " + short_number(hi) + "]";
    case Kind::OneOf: return "one of: " + join(choices, ", ");
  }
  return "";
}

std::string Constraint::violation(const std::string& text, const double* number) const {
  switch (kind) {
    case Kind::None: return "";
    case Kind::Min:
    case Kind::Max:
    case Kind::Range: {
      if (!number) return "";
      bool ok = (kind == Kind::Max || *number >= lo) && (kind == Kind::Min || *number <= hi);
      return ok ? "" : "value " + text + " is out of range (must be " + describe() + ")";
    }
    case Kind::OneOf: {
      if (std::find(choices.begin(), choices.end(), text) != choices.end()) return "";
      std::string msg = "'" + text + "' is not " + describe();
      std::string near = nearest_key(text, choices);
      if (!near.empty()) msg += " (did you mean '" + near + "'?)";
      return msg;
    }
  }
  return "";
}

// ---- rendering -----------------------------------------------------------------------------------

namespace {

bool parse_double(const std::string& text, double& out) {
  std::string t = ascii_lower(text);
  if (t == ".inf" || t == "+.inf") return out = std::numeric_limits<double>::infinity(), true;
  if (t == "-.inf") return out = -std::numeric_limits<double>::infinity(), true;
  if (t == ".nan") return out = std::numeric_limits<double>::quiet_NaN(), true;
  if (t.empty() || std::isspace(static_cast<unsigned char>(t[0]))) return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtod(t.c_str(), &end);
  return end == t.c_str() + t.size() && errno != ERANGE;
}

bool parse_int64(const std::string& text, int64_t& out) {
  const char* begin = text.c_str();
  if (!text.empty() && text[0] == '+') ++begin;
  const char* end = text.c_str() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, out);
  return ec == std::errc() && ptr == end && begin != end;
}

bool parse_bool(const std::string& text, bool& out) {
  std::string t = ascii_lower(text);
  if (t == "true" || t == "yes" || t == "on") return out = true, true;
  if (t == "false" || t == "no" || t == "off") return out = false, true;
  return false;
}

// Strings that YAML would read as something other than this string get quoted.
bool needs_quotes(const std::string& s) {
  if (s.empty()) return true;
  static const char* reserved[] = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"};
  std::string t = ascii_lower(s);
  for (auto* r : reserved)
    if (t == r) return true;
  double d;
  if (parse_double(s, d)) return true;
  char first = s[0];
  if (!(std::isalnum(static_cast<unsigned char>(first)) || first == '_' || first == '.' || first == '/')) return true;
  for (char ch : s)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || std::string("_-./+@~=").find(ch) != std::string::npos))
      return true;
  return false;
}

template <class T>
std::string render_list(const std::vector<T>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + render(values[i]);
  return out + "]";
}

}  // namespace

std::string render(bool v) { return v ? "true" : "false"; }
std::string render(int v) { return std::to_string(v); }
std::string render(int64_t v) { return std::to_string(v); }

std::string render(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  // The shortest text that reads back as exactly `v`: fixed notation for everyday magnitudes.
  char buf[400];
  double magnitude = std::fabs(v);
  bool fixed = magnitude == 0 || (magnitude >= 1e-4 && magnitude < 1e16);
  auto result = std::to_chars(buf, buf + sizeof buf, v, fixed ? std::chars_format::fixed : std::chars_format::scientific);
  std::string s(buf, result.ptr);
  // Keep it a float for every YAML reader: "1" -> "1.0", "1e-05" -> "1.0e-05".
  if (s.find('.') == std::string::npos) {
    auto e = s.find('e');
    if (e == std::string::npos) s += ".0";
    else s.insert(e, ".0");
  }
  return s;
}

std::string render(const std::string& v) {
  if (!needs_quotes(v)) return v;
  std::string out = "\"";
  for (char ch : v) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default: out += ch;
    }
  }
  return out + "\"";
}

std::string render(const std::vector<int>& v) { return render_list(v); }
std::string render(const std::vector<int64_t>& v) { return render_list(v); }
std::string render(const std::vector<double>& v) { return render_list(v); }
std::string render(const std::vector<std::string>& v) { return render_list(v); }

const char* type_name(const bool&) { return "bool"; }
const char* type_name(const int&) { return "int"; }
const char* type_name(const int64_t&) { return "int64"; }
const char* type_name(const double&) { return "double"; }
const char* type_name(const std::string&) { return "string"; }
const char* type_name(const std::vector<int>&) { return "list[int]"; }
const char* type_name(const std::vector<int64_t>&) { return "list[int64]"; }
const char* type_name(const std::vector<double>&) { return "list[double]"; }
const char* type_name(const std::vector<std::string>&) { return "list[string]"; }

// ---- documents -----------------------------------------------------------------------------------

namespace {
std::string describe_node(const YAML::Node& n);

// yaml-cpp stops at its nesting limit with the message "bad file"; say what happened instead.
std::string too_deep(const std::string& source, const YAML::DeepRecursion& e) {
  return str(source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": YAML nested ", e.depth(),
             " or more levels deep (the parser's limit; a pathvlm config needs a few); refusing it");
}

// " (YAML files there: a.yaml, b.yaml)" for a directory given as a config file, or "".
std::string yaml_files_in(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto ext = it->path().extension().string();
    if (ext == ".yaml" || ext == ".yml") names.push_back(it->path().filename().string());
  }
  std::sort(names.begin(), names.end());
  if (names.size() > 8) names.resize(8), names.push_back("...");
  return names.empty() ? "" : " (YAML files there: " + join(names, ", ") + ")";
}
}  // namespace

struct Document::Impl {
  struct Entry {
    YAML::Node value;
    std::string file;  // empty: the command line
    int line = 0;      // 1-based
  };
  std::vector<std::string> order;
  std::map<std::string, Entry> entries;

  void set(const std::string& key, Entry entry) {
    if (!entries.count(key)) order.push_back(key);
    entries[key] = std::move(entry);
  }
  std::string where(const Entry& e) const { return e.file.empty() ? "command line" : e.file + ":" + std::to_string(e.line); }

  // Nested maps become dotted keys; scalars, lists and nulls are values. An empty map sets nothing.
  void flatten(const YAML::Node& key_node, const YAML::Node& value, const std::string& prefix, const std::string& file) {
    int line = key_node.Mark().line + 1;
    PATHVLM_CHECK(key_node.IsScalar(), file.empty() ? "command line" : file + ":" + std::to_string(line),
                  ": keys must be plain names, got a ", key_node.IsMap() ? "map" : "list");
    std::string key = prefix.empty() ? key_node.Scalar() : prefix + "." + key_node.Scalar();
    // The same key twice in one file is a slip (YAML would silently keep one); the same line again is
    // a file reached twice through `base:` (a diamond), which is fine.
    auto seen = entries.find(key);
    PATHVLM_CHECK(file.empty() || seen == entries.end() || seen->second.file != file || seen->second.line == line,
                  file, ":", line, ": key '", key, "' is set twice in this file (also on line ", 
                  seen == entries.end() ? 0 : seen->second.line, ")");
    if (!value.IsMap()) return set(key, Entry{value, file, line});
    for (const auto& item : value) flatten(item.first, item.second, key, file);
  }

  void load_file(const fs::path& path, std::vector<fs::path>& chain, const std::string& included_from) {
    std::string name = path.lexically_normal().string();
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(path, ec);
    if (std::find(chain.begin(), chain.end(), canonical) != chain.end()) {
      std::string cycle;
      for (auto& p : chain) cycle += p.string() + " -> ";
      throw Error(str(included_from, ": base cycle: ", cycle, canonical.string()));
    }
    if (!fs::is_regular_file(path)) {
      const std::string what =
          included_from.empty() ? str("config file '", name, "'") : str(included_from, ": base file '", name, "'");
      if (fs::is_directory(path)) throw Error(str(what, " is a directory, not a YAML file", yaml_files_in(path)));
      if (name.find(',') != std::string::npos || (!name.empty() && name.front() == '['))
        throw Error(
            str(what, " not found: give one file (a config combines several through `base: [a.yaml, b.yaml]`)"));
      throw Error(str(what, fs::exists(path) ? " is not a regular file" : " not found"));
    }
    YAML::Node root;
    try {
      root = YAML::LoadFile(path.string());
    } catch (const YAML::DeepRecursion& e) {
      throw Error(too_deep(name, e));
    } catch (const YAML::ParserException& e) {
      throw Error(str(name, ":", e.mark.line + 1, ":", e.mark.column + 1, ": malformed YAML: ", e.msg));
    } catch (const YAML::BadFile&) {
      throw Error(str("config file '", name, "' cannot be read"));
    }
    chain.push_back(canonical);
    load_root(root, name, path.parent_path(), chain);
    chain.pop_back();
  }

  // `base:` files first (in order), then this file's keys on top.
  void load_root(const YAML::Node& root, const std::string& name, const fs::path& dir, std::vector<fs::path>& chain) {
    if (root.IsNull()) return;
    PATHVLM_CHECK(root.IsMap(), name, ":", root.Mark().line + 1, ": the top level must be a map of keys, got a ",
                  root.IsSequence() ? "list" : "scalar");
    for (const auto& item : root) {
      if (!(item.first.IsScalar() && item.first.Scalar() == "base")) continue;
      std::string at = name + ":" + std::to_string(item.first.Mark().line + 1);
      const YAML::Node& base = item.second;
      std::vector<std::string> paths;
      if (base.IsScalar()) paths.push_back(base.Scalar());
      else if (base.IsSequence())
        for (const auto& b : base) {
          PATHVLM_CHECK(b.IsScalar(), at, ": 'base' must list file paths");
          paths.push_back(b.Scalar());
        }
      else PATHVLM_CHECK(base.IsNull(), at, ": 'base' must be a file path or a list of file paths");
      for (const auto& p : paths) {
        fs::path resolved = fs::path(p).is_absolute() ? fs::path(p) : dir / p;
        load_file(resolved, chain, at);
      }
    }
    for (const auto& item : root) {
      if (item.first.IsScalar() && item.first.Scalar() == "base") continue;
      flatten(item.first, item.second, "", name);
    }
  }
};

Document::Document() : impl_(std::make_shared<Impl>()) {}

Document Document::from_file(const std::string& path) {
  Document doc;
  std::vector<fs::path> chain;
  doc.impl_->load_file(path, chain, "");
  return doc;
}

Document Document::from_string(const std::string& yaml, const std::string& source, const std::string& base_dir) {
  Document doc;
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::DeepRecursion& e) {
    throw Error(too_deep(source, e));
  } catch (const YAML::ParserException& e) {
    throw Error(str(source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": malformed YAML: ", e.msg));
  }
  std::vector<fs::path> chain;
  doc.impl_->load_root(root, source, base_dir, chain);
  return doc;
}

void Document::override_with(const std::vector<std::string>& assignments) {
  for (const auto& a : assignments) {
    auto eq = a.find('=');
    const bool yaml_name = eq == std::string::npos && fs::path(a).extension().string().rfind(".y", 0) == 0;
    PATHVLM_CHECK(!yaml_name, "command line: '", a,
                  "' looks like a second config file, but only one is read "
                  "(and key=value overrides after it); combine files through `base: [a.yaml, b.yaml]` in a config");
    PATHVLM_CHECK(eq != std::string::npos && eq > 0, "command line: '", a,
                  "' is not an override of the form key=value (e.g. optim.lr=1e-4)");
    std::string key = a.substr(0, eq), text = a.substr(eq + 1);
    PATHVLM_CHECK(key != "base", "command line: 'base' can only be set inside a config file");
    YAML::Node value;
    try {
      value = YAML::Load(text);
    } catch (const YAML::DeepRecursion& e) {
      throw Error(too_deep(str("command line: '", key, "'"), e));
    } catch (const YAML::ParserException& e) {
      throw Error(str("command line: '", a, "': malformed value: ", e.msg));
    }
    impl_->flatten(YAML::Node(key), value, "", "");
  }
}

std::vector<Document> Document::elements(const std::string& key, std::vector<std::string>& problems) const {
  const auto& entry = impl_->entries.at(key);
  std::vector<Document> out;
  if (entry.value.IsNull()) return out;
  if (!entry.value.IsSequence()) {
    problems.push_back(impl_->where(entry) + ": key '" + key + "': expected a list of maps, got " +
                       describe_node(entry.value) + " (write - name: value, or [{name: value}])");
    return out;
  }
  for (size_t i = 0; i < entry.value.size(); ++i) {
    const YAML::Node& item = entry.value[i];
    const std::string element = key + "[" + std::to_string(i) + "]";
    if (!item.IsMap()) {
      // An element's own line, when it comes from a file.
      Impl::Entry at{item, entry.file, entry.file.empty() ? 0 : item.Mark().line + 1};
      problems.push_back(impl_->where(at) + ": key '" + element + "': expected a map of keys, got " +
                         describe_node(item));
      continue;
    }
    Document doc;
    for (const auto& kv : item) doc.impl_->flatten(kv.first, kv.second, element, entry.file);
    out.push_back(std::move(doc));
  }
  return out;
}

std::vector<std::string> Document::keys() const { return impl_->order; }
bool Document::has(const std::string& key) const { return impl_->entries.count(key) > 0; }
std::string Document::where(const std::string& key) const {
  auto it = impl_->entries.find(key);
  return it == impl_->entries.end() ? "" : impl_->where(it->second);
}

// ---- reading -------------------------------------------------------------------------------------

namespace {

std::string describe_node(const YAML::Node& n) {
  if (n.IsNull()) return "nothing";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a map";
  return "'" + n.Scalar() + "'";
}

// Converts one YAML scalar to T, or says what was expected.
bool convert(const YAML::Node& n, bool& out, std::string& expected) {
  expected = "true or false";
  return n.IsScalar() && parse_bool(n.Scalar(), out);
}
bool convert(const YAML::Node& n, int64_t& out, std::string& expected) {
  expected = "an integer";
  return n.IsScalar() && parse_int64(n.Scalar(), out);
}
bool convert(const YAML::Node& n, int& out, std::string& expected) {
  int64_t wide;
  if (!convert(n, wide, expected)) return false;
  expected = "an integer that fits in 32 bits";
  if (wide < std::numeric_limits<int>::min() || wide > std::numeric_limits<int>::max()) return false;
  out = static_cast<int>(wide);
  return true;
}
bool convert(const YAML::Node& n, double& out, std::string& expected) {
  expected = "a number";
  return n.IsScalar() && parse_double(n.Scalar(), out);
}
bool convert(const YAML::Node& n, std::string& out, std::string& expected) {
  expected = "a string";
  if (n.IsNull()) return out.clear(), true;
  if (!n.IsScalar()) return false;
  out = n.Scalar();
  return true;
}

template <class T>
std::string check_constraint(const T& value, const std::string& text, const Constraint& c) {
  if constexpr (std::is_same_v<T, std::string>) {
    // The resolved config goes into every checkpoint's JSON, which holds only UTF-8: refuse now, not at step 1000.
    const size_t bad = utf8_error_at(value);
    if (bad != std::string::npos)
      return str("is not valid UTF-8 (byte ", bad, "); settings are stored as JSON text in checkpoints");
  }
  if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
    double number = static_cast<double>(value);
    return c.violation(text, &number);
  } else {
    return c.violation(text, nullptr);
  }
}

template <class T>
void read_value(const Document::Impl& impl, const std::string& key, T& out, const Constraint& c,
                std::vector<std::string>& errors) {
  const auto& entry = impl.entries.at(key);
  std::string prefix = impl.where(entry) + ": key '" + key + "': ";
  std::string expected;
  T value{};
  if (!convert(entry.value, value, expected)) {
    errors.push_back(prefix + "expected " + expected + ", got " + describe_node(entry.value));
    return;
  }
  std::string problem = check_constraint(value, entry.value.IsScalar() ? entry.value.Scalar() : "", c);
  if (!problem.empty()) return errors.push_back(prefix + problem);
  out = value;
}

template <class T>
void read_list(const Document::Impl& impl, const std::string& key, std::vector<T>& out, const Constraint& c,
               std::vector<std::string>& errors) {
  const auto& entry = impl.entries.at(key);
  std::string prefix = impl.where(entry) + ": key '" + key + "'";
  if (entry.value.IsNull()) return out.clear();
  if (!entry.value.IsSequence()) {
    const char* items = std::is_same_v<T, std::string> ? "strings" : std::is_same_v<T, double> ? "numbers" : "integers";
    errors.push_back(prefix + ": expected a list of " + items + ", got " + describe_node(entry.value) +
                     " (write [a, b])");
    return;
  }
  std::vector<T> values;
  bool ok = true;
  for (size_t i = 0; i < entry.value.size(); ++i) {
    const YAML::Node& item = entry.value[i];
    std::string expected, at = prefix + "[" + std::to_string(i) + "]: ";
    T value{};
    if (!convert(item, value, expected)) {
      errors.push_back(at + "expected " + expected + ", got " + describe_node(item));
      ok = false;
      continue;
    }
    std::string problem = check_constraint(value, item.Scalar(), c);
    if (!problem.empty()) {
      errors.push_back(at + problem);
      ok = false;
    }
    values.push_back(value);
  }
  if (ok) out = std::move(values);
}

}  // namespace

void ReaderVisitor::read(const std::string& key, bool& out, const Constraint& c) {
  read_value(doc_.impl(), key, out, c, errors_);
}
void ReaderVisitor::read(const std::string& key, int& out, const Constraint& c) {
  read_value(doc_.impl(), key, out, c, errors_);
}
void ReaderVisitor::read(const std::string& key, int64_t& out, const Constraint& c) {
  read_value(doc_.impl(), key, out, c, errors_);
}
void ReaderVisitor::read(const std::string& key, double& out, const Constraint& c) {
  read_value(doc_.impl(), key, out, c, errors_);
}
void ReaderVisitor::read(const std::string& key, std::string& out, const Constraint& c) {
  read_value(doc_.impl(), key, out, c, errors_);
}
void ReaderVisitor::read(const std::string& key, std::vector<int>& out, const Constraint& c) {
  read_list(doc_.impl(), key, out, c, errors_);
}
void ReaderVisitor::read(const std::string& key, std::vector<int64_t>& out, const Constraint& c) {
  read_list(doc_.impl(), key, out, c, errors_);
}
void ReaderVisitor::read(const std::string& key, std::vector<double>& out, const Constraint& c) {
  read_list(doc_.impl(), key, out, c, errors_);
}
void ReaderVisitor::read(const std::string& key, std::vector<std::string>& out, const Constraint& c) {
  read_list(doc_.impl(), key, out, c, errors_);
}

std::string ReaderVisitor::section_where(const std::string& key) const {
  const std::string name = key.empty() ? "the config" : "section '" + key + "'";
  for (const auto& k : doc_.keys())
    if (key.empty() || k.rfind(key + ".", 0) == 0) return doc_.where(k) + ": " + name;
  return name + " (defaults)";
}

void ReaderVisitor::finish() {
  auto all = problems();
  if (all.empty()) return;
  if (all.size() == 1) throw Error(all[0]);
  throw Error(str("the config has ", all.size(), " problems:\n  ", join(all, "\n  ")));
}

std::vector<std::string> ReaderVisitor::problems() {
  const auto& impl = doc_.impl();
  auto is_known = [](const std::vector<std::string>& list, const std::string& k) {
    return std::find(list.begin(), list.end(), k) != list.end();
  };
  for (const auto& key : impl.order) {
    if (is_known(known_, key)) continue;
    const auto& entry = impl.entries.at(key);
    std::string at = impl.where(entry) + ": ";
    if (is_known(sections_, key)) {
      if (!entry.value.IsNull())
        errors_.push_back(at + "key '" + key + "' is a section: expected a map of its keys, got " +
                          describe_node(entry.value));
      continue;
    }
    std::string msg = at + "unknown key '" + key + "'";
    std::string near = nearest_key(key, known_);
    if (!near.empty()) {
      msg += " (did you mean '" + near + "'?)";
    } else {
      // Name what the enclosing section does have, or the top-level sections.
      auto dot = key.rfind('.');
      std::string parent = dot == std::string::npos ? "" : key.substr(0, dot);
      std::vector<std::string> siblings;
      auto collect = [&](const std::vector<std::string>& list) {
        for (const auto& k : list) {
          auto kd = k.rfind('.');
          if ((kd == std::string::npos ? "" : k.substr(0, kd)) == parent) siblings.push_back(k.substr(kd + 1));
        }
      };
      collect(sections_);
      collect(known_);
      if (is_known(sections_, parent) || parent.empty())
        msg += "; " + (parent.empty() ? std::string("top-level keys") : "keys in '" + parent + "'") + ": " +
               join(siblings, ", ");
    }
    errors_.push_back(msg);
  }
  return std::move(errors_);
}

// ---- writing -------------------------------------------------------------------------------------

std::string& YamlVisitor::key(const char* name) {
  if (flow_) return out.append(out.empty() ? "" : ", ").append(name).append(": ");
  return out.append(indent_, ' ').append(name).append(": ");
}

std::string YamlVisitor::render_flow_list(const std::vector<std::string>& elements) {
  std::string out = "[";
  for (size_t i = 0; i < elements.size(); ++i) out += (i ? ", {" : "{") + elements[i] + "}";
  return out + "]";
}

// Each element's block lines, the first after "- " and the rest aligned under it.
std::string YamlVisitor::render_block_list(const std::vector<std::string>& elements, size_t indent) {
  std::string out;
  for (const auto& element : elements) {
    std::istringstream lines(element);
    bool first = true;
    for (std::string line; std::getline(lines, line); first = false)
      out.append(indent + 2, ' ').append(first ? "- " : "  ").append(line).append("\n");
  }
  return out;
}

// ---- suggestions ---------------------------------------------------------------------------------

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string nearest_key(const std::string& key, const std::vector<std::string>& candidates) {
  // A small typo first; then the right name in the wrong section ("lr" at the top for "optim.lr"), the nearest
  // such section when several have it ("instruct.data.batch_size" -> "instruct.eval.batch_size"); then anything
  // reasonably close.
  auto leaf = [](const std::string& k) { return k.substr(k.rfind('.') + 1); };
  const std::string key_leaf = leaf(key);
  std::string best, same_leaf;
  size_t best_distance = std::string::npos, same_leaf_distance = std::string::npos;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(key, c);
    if (d < best_distance) best_distance = d, best = c;
    if (d < same_leaf_distance && leaf(c) == key_leaf) same_leaf_distance = d, same_leaf = c;
  }
  if (best_distance <= 2) return best;
  if (!same_leaf.empty()) return same_leaf;
  return best_distance <= std::max<size_t>(2, key.size() / 3) ? best : "";
}

// ---- docs and the settings table -----------------------------------------------------------------

std::string format_docs(const std::vector<KeyInfo>& keys) {
  size_t key_w = 3, type_w = 4, value_w = 7;
  for (const auto& k : keys) {
    if (k.is_section) continue;
    key_w = std::max(key_w, k.key.size());
    type_w = std::max(type_w, k.type.size());
    value_w = std::max(value_w, std::min<size_t>(k.value.size(), 24));
  }
  std::ostringstream out;
  char buf[1024];
  std::snprintf(buf, sizeof buf, "%-*s  %-*s  %-*s  %s\n", int(key_w), "key", int(type_w), "type", int(value_w),
                "default", "description");
  out << buf;
  for (const auto& k : keys) {
    if (k.is_section) {
      out << "\n[" << k.key << "]  " << k.doc << "\n";
      continue;
    }
    std::string doc = k.doc + (k.constraint.empty() ? "" : " (" + k.constraint + ")");
    std::snprintf(buf, sizeof buf, "%-*s  %-*s  %-*s  ", int(key_w), k.key.c_str(), int(type_w), k.type.c_str(),
                  int(value_w), k.value.c_str());
    out << buf << doc << "\n";
  }
  return out.str();
}

std::string format_docs_markdown(const std::vector<KeyInfo>& keys) {
  auto cell = [](std::string text) {
    for (size_t at = 0; (at = text.find('|', at)) != std::string::npos; at += 2) text.replace(at, 1, "\\|");
    return text;
  };
  std::ostringstream out;
  bool table_open = false;
  for (const auto& k : keys) {
    if (k.is_section) {
      out << (table_open || out.tellp() > 0 ? "\n" : "") << "### `" << k.key << "`\n\n" << k.doc << "\n\n";
      table_open = false;
      continue;
    }
    if (!table_open) out << "| key | type | default | allowed | description |\n|---|---|---|---|---|\n";
    table_open = true;
    out << "| `" << k.key << "` | " << k.type << " | `" << cell(k.value) << "` | " << cell(k.constraint) << " | "
        << cell(k.doc) << " |\n";
  }
  return out.str();
}

std::string format_settings(const std::vector<KeyInfo>& values, const std::vector<KeyInfo>& defaults) {
  std::map<std::string, std::string> default_of;
  for (const auto& d : defaults) default_of[d.key] = d.value;
  size_t key_w = 7, value_w = 5;
  const size_t max_value = 72;
  for (const auto& k : values) {
    if (k.is_section || k.is_element) continue;
    key_w = std::max(key_w, k.key.size());
    value_w = std::max(value_w, std::min(k.value.size(), max_value));
  }
  std::string rule = "+" + std::string(key_w + 2, '-') + "+" + std::string(value_w + 4, '-') + "+\n";
  std::ostringstream out;
  char buf[1024];
  auto row = [&](const std::string& key, std::string value, const char* mark) {
    if (value.size() > max_value) value = value.substr(0, max_value - 3) + "...";
    std::snprintf(buf, sizeof buf, "| %-*s | %-*s %s |\n", int(key_w), key.c_str(), int(value_w), value.c_str(), mark);
    out << buf;
  };
  out << rule;
  row("setting", "value", " ");
  out << rule;
  for (const auto& k : values) {
    if (k.is_section || k.is_element) continue;
    auto d = default_of.find(k.key);
    row(k.key, k.value, d != default_of.end() && d->second == k.value ? " " : "*");
  }
  out << rule << "(* differs from the default)\n";
  return out.str();
}

}  // namespace pathvlm::cfg
