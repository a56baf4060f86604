// `pathvlm weights inspect|reshard`: list the tensors of a safetensors file or sharded directory (dtype, shape,
// CRC-32), and rewrite weights as one file or shards of a given size (optionally casting floating tensors).
#include <cctype>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "io/safetensors.h"

namespace pathvlm::cli {
namespace {

namespace st = pathvlm::safetensors;

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string hex32(uint32_t v) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%08x", v);
  return buffer;
}

// "5GB" (10^9), "500MiB" (2^20), "123456" bytes: the sizes transformers' max_shard_size accepts.
uint64_t parse_size(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.'))
    ++digits;
  std::string unit = text.substr(digits);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  static const std::pair<const char*, double> units[] = {{"", 1},        {"B", 1},       {"KB", 1e3},
                                                         {"MB", 1e6},    {"GB", 1e9},    {"KIB", 1024.0},
                                                         {"MIB", 1 << 20}, {"GIB", 1 << 30}};
  for (const auto& [name, factor] : units) {
    if (unit != name || digits == 0) continue;
    double value = std::stod(text.substr(0, digits)) * factor;
    PATHVLM_CHECK(value >= 1, "--max-shard-size '", text, "' must be at least one byte");
    return static_cast<uint64_t>(value);
  }
  throw Error(str("--max-shard-size '", text, "' is not a size (e.g. 5GB, 500MiB, 1000000)"));
}

int weights_inspect(const Args& args) {
  ArgParser parser("pathvlm weights inspect",
                   "List the tensors of a safetensors file, a directory with model.safetensors, or a sharded "
                   "checkpoint (model.safetensors.index.json): name, dtype, shape and CRC-32 of the bytes.");
  parser.positional("PATH", "a .safetensors file, an index .json, or a directory");
  parser.option("format", "text or json", false, "text");
  parser.flag("no-checksum", "skip reading the data (header only)");
  if (!parser.parse(args)) return 0;
  const std::string format = parser.get("format");
  PATHVLM_CHECK(format == "text" || format == "json", "pathvlm weights inspect: --format must be text or json, got '",
                format, "'");
  const bool with_checksum = !parser.get_flag("no-checksum");
  auto ckpt = st::Checkpoint::open(parser.positionals()[0]);

  uint64_t total = 0;
  for (const auto& name : ckpt.names()) total += ckpt.info(name).nbytes();
  if (format == "json") {
    nlohmann::json out;
    out["path"] = ckpt.path();
    out["files"] = nlohmann::json::array();
    for (const auto& f : ckpt.files()) out["files"].push_back(f.path());
    out["metadata"] = ckpt.metadata();
    out["total_bytes"] = total;
    out["tensors"] = nlohmann::json::array();
    for (const auto& name : ckpt.names()) {
      const auto& info = ckpt.info(name);
      nlohmann::json t = {{"name", name},   {"dtype", st::dtype_name(info.dtype)}, {"shape", info.shape},
                          {"bytes", info.nbytes()}, {"file", ckpt.file_of(name)}};
      if (with_checksum) t["crc32"] = hex32(st::checksum(ckpt.get(name)));
      out["tensors"].push_back(t);
    }
    std::cout << out.dump(1) << "\n";
    return 0;
  }
  std::cout << ckpt.path() << ": " << ckpt.names().size() << " tensors, " << total << " bytes in "
            << ckpt.files().size() << " file(s)\n";
  for (const auto& [key, value] : ckpt.metadata()) std::cout << "  metadata " << key << " = " << value << "\n";
  size_t width = 4;
  for (const auto& name : ckpt.names()) width = std::max(width, name.size());
  for (const auto& name : ckpt.names()) {
    const auto& info = ckpt.info(name);
    std::string line = name + std::string(width - name.size() + 2, ' ') + st::dtype_name(info.dtype);
    line += std::string(line.size() < width + 8 ? width + 8 - line.size() : 1, ' ') + shape_text(info.shape);
    if (with_checksum) line += "  crc32 " + hex32(st::checksum(ckpt.get(name)));
    std::cout << line << "\n";
  }
  return 0;
}

int weights_reshard(const Args& args) {
  ArgParser parser("pathvlm weights reshard",
                   "Rewrite weights (file, directory or sharded checkpoint) into DIR as model.safetensors or as "
                   "shards with model.safetensors.index.json.");
  parser.positional("SRC", "a .safetensors file, an index .json, or a directory");
  parser.positional("DIR", "output directory");
  parser.option("max-shard-size", "largest shard (5GB = 5*10^9 bytes, 500MiB, or bytes)", false, "5GB");
  parser.option("dtype", "cast floating-point tensors to F32, F16 or BF16 (default: keep)");
  if (!parser.parse(args)) return 0;
  auto ckpt = st::Checkpoint::open(parser.positionals()[0]);
  std::optional<torch::ScalarType> cast;
  if (parser.has("dtype")) {
    cast = st::dtype_from_name(parser.get("dtype"));
    PATHVLM_CHECK(torch::isFloatingType(*cast), "pathvlm weights reshard: --dtype must be a float type, got '",
                  parser.get("dtype"), "'");
  }
  st::NamedTensors tensors;
  for (const auto& name : ckpt.names()) {
    torch::Tensor t = ckpt.get(name);
    if (cast && torch::isFloatingType(t.scalar_type())) t = t.to(*cast);
    tensors.emplace_back(name, t);
  }
  st::Metadata metadata = ckpt.metadata();
  auto written = st::save_sharded(parser.positionals()[1], tensors, parse_size(parser.get("max-shard-size")), metadata);
  for (const auto& path : written) std::cout << "wrote " << path << "\n";
  return 0;
}

const std::vector<Verb> kVerbs = {
    {"inspect", "list tensors with dtype, shape and CRC-32 (file, directory or sharded checkpoint)", weights_inspect},
    {"reshard", "rewrite weights as one file or shards of a given size, optionally casting floats", weights_reshard},
};

}  // namespace

int cmd_weights(const Args& args) {
  return run_verb("weights", "PATH", "safetensors weights and sharded checkpoints.", kVerbs, args);
}

}  // namespace pathvlm::cli
