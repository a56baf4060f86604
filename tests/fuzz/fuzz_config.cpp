// Config text from anywhere (a user's YAML, `a.b=value` overrides) through the typed reader every job uses: the
// YAML is the input up to its first NUL byte, each NUL-separated piece after it an override. `base:` paths resolve
// in a scratch directory that holds one valid base file. Invariant: a config that reads writes itself (to_yaml,
// what runs/<name>/config.yaml holds) as YAML that reads back to the same values.
#include "core/config.h"
#include "core/core_config.h"
#include "core/error.h"
#include "fuzz_util.h"

namespace cfg = pathvlm::cfg;

namespace {

// Every field type, a constraint of each kind, a cross-key check and a list of sections.
struct Layer {
  std::string kind = "linear";
  int64_t width = 8;
  std::vector<double> scale = {1.0};
  template <class V>
  void visit(V& v) {
    v.field("kind", kind, "layer kind", cfg::OneOf{"linear", "conv"});
    v.field("width", width, "width", cfg::Range(1, 4096));
    v.field("scale", scale, "scales", cfg::Min(0.0));
  }
};

struct Model {
  int heads = 2;
  int64_t dim = 8;
  double dropout = 0.0;
  bool bias = true;
  std::vector<int> sizes = {1, 2};
  std::vector<int64_t> strides = {};
  std::vector<std::string> names = {"a"};
  std::vector<Layer> layers;
  template <class V>
  void visit(V& v) {
    v.field("heads", heads, "heads", cfg::Min(1));
    v.field("dim", dim, "width", cfg::Min(1));
    v.field("dropout", dropout, "dropout", cfg::Range(0.0, 1.0));
    v.field("bias", bias, "bias");
    v.field("sizes", sizes, "sizes", cfg::Max(100));
    v.field("strides", strides, "strides");
    v.field("names", names, "names");
    v.list("layers", layers, "layers");
  }
  void validate(const std::string& where) const {
    PATHVLM_CHECK(dim % heads == 0, where, ": dim must divide by heads");
  }
};

struct Job {
  pathvlm::RunConfig run;
  pathvlm::LogConfig log;
  Model model;
  template <class V>
  void visit(V& v) {
    v.section("run", run, "run");
    v.section("log", log, "logging");
    v.section("model", model, "model");
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    const auto d = pathvlm::fuzz::scratch_dir() / "configs";
    std::filesystem::create_directories(d);
    std::ofstream(d / "base.yaml")
        << "run:\n  name: base\nmodel:\n  heads: 4\n  layers:\n    - {kind: conv, width: 3}\n";
    return d.string();
  }();
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t end = input.find('\0');
  const std::string yaml = input.substr(0, end);
  std::vector<std::string> overrides;
  for (size_t at = end; at != std::string::npos && at < input.size();) {
    const size_t next = input.find('\0', at + 1);
    overrides.push_back(input.substr(at + 1, next == std::string::npos ? std::string::npos : next - at - 1));
    at = next;
  }
  try {
    auto doc = cfg::Document::from_string(yaml, "fuzz.yaml", dir);
    doc.override_with(overrides);
    const Job job = cfg::read<Job>(doc);
    pathvlm::fuzz::require_reads_back(
        cfg::to_yaml(job),
        [&](const std::string& yaml) { return cfg::read<Job>(cfg::Document::from_string(yaml, "written.yaml", dir)); },
        [](const Job& again) { return cfg::to_yaml(again); });
  } catch (const pathvlm::Error&) {
  }
  return 0;
}
