// Typed configuration: every key is declared once, with its default and a one-line doc, by a `visit`
// template on a small struct; YAML files (with `base:` inheritance) and `a.b.c=value` overrides fill it.
//
//   struct OptimConfig {
//     double lr = 5e-4;
//     std::string schedule = "cosine";
//     template <class V> void visit(V& v) {
//       v.field("lr", lr, "peak learning rate", cfg::Min(0.0));
//       v.field("schedule", schedule, "learning-rate schedule", cfg::OneOf{"cosine", "constant"});
//     }
//   };
//   // nested structs: v.section("optim", optim, "optimizer and schedule");
//   // lists of structs (YAML: a list of maps): v.list("init_from", init_from, "weights to start from");
//
//   auto job = cfg::load<JobConfig>("configs/x.yaml", {"optim.lr=1e-4"});  // throws pathvlm::Error
//   std::cout << cfg::to_yaml(job);          // the resolved config (what runs/<name>/config.yaml holds)
//   std::cout << cfg::settings_table(job);   // the startup table, non-default values marked
//
// Field types: bool, int, int64_t, double, std::string, std::vector<int|int64_t|double|std::string>.
// A list of sections is a std::vector<S> of a struct with a `visit`; its elements' keys read as
// `train.init_from[1].path` in errors and as `train.init_from[].path` in `config docs`.
// Every problem in a config (unknown key with "did you mean", wrong type, value out of range) is
// reported at once, each with file:line, before any work starts. This header stays light (no yaml-cpp).
//
// A struct whose keys constrain each other (heads dividing a width) declares
//   void validate(const std::string& where) const;   // throws pathvlm::Error starting with `where`
// and reading calls it once its own keys read cleanly, with `where` naming the file and the section.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace pathvlm::cfg {

// ---- constraints ---------------------------------------------------------------------------------

// What a value must satisfy; vectors apply it to every element.
struct Constraint {
  enum class Kind { None, Min, Max, Range, OneOf };
  Kind kind = Kind::None;
  double lo = 0, hi = 0;
  std::vector<std::string> choices;

  // "", ">= 0", "<= 1", "in [0, 1]", "one of: cosine, constant".
  std::string describe() const;
  // Empty when satisfied, else why not. `text` is the value as written; `number` is set for numeric fields.
  std::string violation(const std::string& text, const double* number) const;
};
struct Min : Constraint {
  explicit Min(double v) { kind = Kind::Min, lo = v; }
};
struct Max : Constraint {
  explicit Max(double v) { kind = Kind::Max, hi = v; }
};
struct Range : Constraint {
  Range(double low, double high) { kind = Kind::Range, lo = low, hi = high; }
};
struct OneOf : Constraint {
  OneOf(std::initializer_list<std::string> allowed) { kind = Kind::OneOf, choices = allowed; }
  explicit OneOf(std::vector<std::string> allowed) { kind = Kind::OneOf, choices = std::move(allowed); }
};

// ---- field types ---------------------------------------------------------------------------------

template <class T>
struct is_field_type
    : std::bool_constant<std::is_same_v<T, bool> || std::is_same_v<T, int> || std::is_same_v<T, int64_t> ||
                         std::is_same_v<T, double> || std::is_same_v<T, std::string> ||
                         std::is_same_v<T, std::vector<int>> || std::is_same_v<T, std::vector<int64_t>> ||
                         std::is_same_v<T, std::vector<double>> || std::is_same_v<T, std::vector<std::string>>> {};

#define PATHVLM_CFG_CHECK_TYPE(T)                                                                         \
  static_assert(::pathvlm::cfg::is_field_type<T>::value,                                                  \
                "config fields must be bool, int, int64_t, double, std::string or a std::vector of int, " \
                "int64_t, double or std::string")

// YAML text of a value: `true`, `42`, `0.0005`, `cosine` (quoted when needed), `[1, 2]`.
std::string render(bool v);
std::string render(int v);
std::string render(int64_t v);
std::string render(double v);
std::string render(const std::string& v);
std::string render(const std::vector<int>& v);
std::string render(const std::vector<int64_t>& v);
std::string render(const std::vector<double>& v);
std::string render(const std::vector<std::string>& v);

// "bool", "int", "int64", "double", "string", "list[int]", ...
const char* type_name(const bool&);
const char* type_name(const int&);
const char* type_name(const int64_t&);
const char* type_name(const double&);
const char* type_name(const std::string&);
const char* type_name(const std::vector<int>&);
const char* type_name(const std::vector<int64_t>&);
const char* type_name(const std::vector<double>&);
const char* type_name(const std::vector<std::string>&);

// Whether S declares `void validate(const std::string& where) const`.
template <class S, class = void>
struct has_validate : std::false_type {};
template <class S>
struct has_validate<S, std::void_t<decltype(std::declval<const S&>().validate(std::string()))>> : std::true_type {};

// ---- documents: merged YAML sources ----------------------------------------------------------------

// A config as read from YAML: the files chained by `base:` deep-merged in order (later wins), then the
// command-line overrides; flattened to dotted keys, each remembering its file and line.
class Document {
 public:
  Document();
  // Reads `path` and, first, every file its `base:` list names (paths relative to the including file).
  static Document from_file(const std::string& path);
  // Parses YAML text; `source` names it in errors; `base:` paths are relative to `base_dir`.
  static Document from_string(const std::string& yaml, const std::string& source = "<string>",
                              const std::string& base_dir = ".");
  // Applies `a.b.c=value` assignments; the value is a YAML scalar, flow list or flow map.
  void override_with(const std::vector<std::string>& assignments);

  // Dotted keys present, in first-seen order.
  std::vector<std::string> keys() const;
  bool has(const std::string& key) const;
  // "file.yaml:12" or "command line" for a key (empty if absent).
  std::string where(const std::string& key) const;
  // A list-of-maps value as one Document per element, whose keys are `key[i].name` and keep their file and
  // line. Each element that is not a map (and a value that is not a list) adds a message to `problems`
  // and gives no Document; a null value is an empty list.
  std::vector<Document> elements(const std::string& key, std::vector<std::string>& problems) const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  std::shared_ptr<Impl> impl_;
};

// ---- visitors ----------------------------------------------------------------------------------------

// One declared key, as `config docs` lists it.
struct KeyInfo {
  std::string key;       // dotted: "optim.lr"
  std::string type;      // "double", or "section"
  std::string value;     // YAML text of the value (the default, for a default-constructed struct)
  std::string doc;
  std::string constraint;
  bool is_section = false;
  bool is_element = false;  // a key of each element of a list of sections: documented, not a setting itself
};

// Dotted key bookkeeping shared by the visitors.
class KeyPath {
 public:
  KeyPath() = default;
  explicit KeyPath(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string key(const char* name) const { return prefix_.empty() ? name : prefix_ + "." + name; }
  void push(const char* name) { stack_.push_back(prefix_), prefix_ = key(name); }
  void pop() { prefix_ = stack_.back(), stack_.pop_back(); }

 private:
  std::string prefix_;
  std::vector<std::string> stack_;
};

// Collects every key with its type, value, doc and constraint.
class SchemaVisitor {
 public:
  template <class T>
  void field(const char* name, T& value, const char* doc, const Constraint& c = {}) {
    PATHVLM_CFG_CHECK_TYPE(T);
    keys.push_back({path_.key(name), type_name(value), render(value), doc, c.describe(), false, in_element_});
  }
  template <class S>
  void section(const char* name, S& s, const char* doc) {
    keys.push_back({path_.key(name), "section", "", doc, "", true, in_element_});
    path_.push(name);
    s.visit(*this);
    path_.pop();
  }
  // The list itself (its value in flow YAML), then the keys of one element as `name[].key`.
  template <class S>
  void list(const char* name, std::vector<S>& items, const char* doc);
  std::vector<KeyInfo> keys;

 private:
  KeyPath path_;
  bool in_element_ = false;
};

// Fills a struct from a Document, collecting every problem; finish() throws them all as one Error.
class ReaderVisitor {
 public:
  explicit ReaderVisitor(const Document& doc) : doc_(doc) {}
  // Reads one element of a list of sections: its keys start with `prefix` ("train.init_from[1]").
  // The element counts as a section, so an unknown key without a near match lists the element's keys.
  ReaderVisitor(const Document& doc, const std::string& prefix) : doc_(doc), path_(prefix), sections_{prefix} {}
  template <class T>
  void field(const char* name, T& value, const char* /*doc*/, const Constraint& c = {}) {
    PATHVLM_CFG_CHECK_TYPE(T);
    std::string key = path_.key(name);
    known_.push_back(key);
    if (doc_.has(key)) read(key, value, c);
  }
  template <class S>
  void section(const char* name, S& s, const char* /*doc*/) {
    const std::string key = path_.key(name);
    sections_.push_back(key);
    path_.push(name);
    const size_t problems_before = errors_.size();
    s.visit(*this);
    path_.pop();
    if (errors_.size() == problems_before) validate(s, key);
  }
  // Calls s.validate() when S has one, adding its error to the problems; `key` is the section's ("" the root).
  template <class S>
  void validate(const S& s, const std::string& key) {
    if constexpr (has_validate<S>::value) {
      try {
        s.validate(section_where(key));
      } catch (const std::exception& e) {
        errors_.push_back(e.what());
      }
    }
  }
  // Each element is read like a section; the list is replaced only when every element reads cleanly.
  template <class S>
  void list(const char* name, std::vector<S>& items, const char* /*doc*/) {
    std::string key = path_.key(name);
    known_.push_back(key);
    if (!doc_.has(key)) return;
    const size_t problems_before = errors_.size();
    std::vector<Document> elements = doc_.elements(key, errors_);
    std::vector<S> values(elements.size());
    bool ok = errors_.size() == problems_before;
    for (size_t i = 0; i < elements.size(); ++i) {
      ReaderVisitor element(elements[i], key + "[" + std::to_string(i) + "]");
      values[i].visit(element);
      if (element.errors_.empty()) element.validate(values[i], key + "[" + std::to_string(i) + "]");
      auto element_problems = element.problems();
      ok = ok && element_problems.empty();
      errors_.insert(errors_.end(), element_problems.begin(), element_problems.end());
    }
    if (ok) items = std::move(values);
  }
  // Reports keys the struct does not declare (with the nearest known key) and every earlier problem.
  void finish();

 private:
  // Every problem found so far, unknown keys included.
  std::vector<std::string> problems();
  // "file.yaml:12: section 'clip.model'" (the first key set under it), or "section 'clip.model' (defaults)".
  std::string section_where(const std::string& key) const;
  void read(const std::string& key, bool& out, const Constraint& c);
  void read(const std::string& key, int& out, const Constraint& c);
  void read(const std::string& key, int64_t& out, const Constraint& c);
  void read(const std::string& key, double& out, const Constraint& c);
  void read(const std::string& key, std::string& out, const Constraint& c);
  void read(const std::string& key, std::vector<int>& out, const Constraint& c);
  void read(const std::string& key, std::vector<int64_t>& out, const Constraint& c);
  void read(const std::string& key, std::vector<double>& out, const Constraint& c);
  void read(const std::string& key, std::vector<std::string>& out, const Constraint& c);

  const Document& doc_;
  KeyPath path_;
  std::vector<std::string> known_, sections_, errors_;
};

// Writes nested YAML in declaration order: block style, one key per line (what files hold), or flow style
// on one line ("{path: x, strict: true}", what the settings table shows for an element of a list).
class YamlVisitor {
 public:
  explicit YamlVisitor(bool flow = false) : flow_(flow) {}
  template <class T>
  void field(const char* name, T& value, const char* /*doc*/, const Constraint& /*c*/ = {}) {
    PATHVLM_CFG_CHECK_TYPE(T);
    key(name).append(render(value));
    if (!flow_) out.append("\n");
  }
  template <class S>
  void section(const char* name, S& s, const char* /*doc*/) {
    if (flow_) {
      key(name).append("{");
      YamlVisitor inner(true);
      s.visit(inner);
      out.append(inner.out).append("}");
      return;
    }
    out.append(indent_, ' ').append(name).append(":\n");
    indent_ += 2;
    s.visit(*this);
    indent_ -= 2;
  }
  // Block style: a YAML sequence of maps ("- path: x" and the element's other keys under it).
  template <class S>
  void list(const char* name, std::vector<S>& items, const char* /*doc*/) {
    std::vector<std::string> rendered;
    for (auto& item : items) {
      YamlVisitor element(flow_);
      item.visit(element);
      rendered.push_back(element.out);
    }
    if (flow_ || items.empty()) {
      key(name).append(render_flow_list(rendered));
      if (!flow_) out.append("\n");
    } else {
      out.append(indent_, ' ').append(name).append(":\n").append(render_block_list(rendered, indent_));
    }
  }
  std::string out;

 private:
  std::string& key(const char* name);
  static std::string render_flow_list(const std::vector<std::string>& elements);
  static std::string render_block_list(const std::vector<std::string>& elements, size_t indent);
  bool flow_;
  size_t indent_ = 0;
};

template <class S>
void SchemaVisitor::list(const char* name, std::vector<S>& items, const char* doc) {
  YamlVisitor flow(true);
  flow.list(name, items, doc);
  std::string value = flow.out.substr(flow.out.find(": ") + 2);
  keys.push_back({path_.key(name), "list[section]", value, doc, "", false, in_element_});
  // The element's keys, documented once from a default element.
  S element{};
  bool outer = in_element_;
  in_element_ = true;
  path_.push((std::string(name) + "[]").c_str());
  element.visit(*this);
  path_.pop();
  in_element_ = outer;
}

// ---- the API ---------------------------------------------------------------------------------------

template <class T>
std::vector<KeyInfo> schema(T config = T{}) {
  SchemaVisitor v;
  config.visit(v);
  return v.keys;
}

template <class T>
T read(const Document& doc) {
  T config{};
  ReaderVisitor reader(doc);
  config.visit(reader);
  reader.validate(config, "");
  reader.finish();
  return config;
}

// Reads `path` (following `base:`), applies `overrides` ("a.b.c=value"), checks everything; throws Error.
template <class T>
T load(const std::string& path, const std::vector<std::string>& overrides = {}) {
  Document doc = Document::from_file(path);
  doc.override_with(overrides);
  return read<T>(doc);
}

// The config as YAML that `load` reads back to the same values.
template <class T>
std::string to_yaml(T config) {
  YamlVisitor v;
  config.visit(v);
  return v.out;
}

// `config docs`: every key with type, default, constraint and doc (plain columns, or Markdown tables).
std::string format_docs(const std::vector<KeyInfo>& keys);
std::string format_docs_markdown(const std::vector<KeyInfo>& keys);
template <class T>
std::string docs(bool markdown = false) {
  return markdown ? format_docs_markdown(schema<T>()) : format_docs(schema<T>());
}

// The startup table of every resolved setting; values that differ from the default are marked '*'.
std::string format_settings(const std::vector<KeyInfo>& values, const std::vector<KeyInfo>& defaults);
template <class T>
std::string settings_table(const T& config) {
  return format_settings(schema<T>(config), schema<T>());
}

// Levenshtein distance, and the candidate nearest to `key` (empty if none is reasonably close).
size_t edit_distance(const std::string& a, const std::string& b);
std::string nearest_key(const std::string& key, const std::vector<std::string>& candidates);

}  // namespace pathvlm::cfg
