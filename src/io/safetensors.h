// safetensors: the weight format of pathvlm (Hugging Face's format, no pickles).
//
// A file is an 8-byte little-endian header length N, N bytes of JSON
//   {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}
// and the data buffer (offsets relative to its start, row-major, little-endian, contiguous, no gaps).
//
//   auto f = safetensors::File::open("model.safetensors");   // validates the whole header up front
//   torch::Tensor w = f.get("text_model.embeddings.token_embedding.weight");  // zero-copy view of the mapping
//   safetensors::save("out.safetensors", {{"w", w}}, {{"format", "pt"}});
//
//   auto ckpt = safetensors::Checkpoint::open(dir);   // model.safetensors or model.safetensors.index.json + shards
//   for (auto& name : ckpt.names()) ... ckpt.get(name);
//   safetensors::save_sharded(dir, named_tensors, 5ull << 30);
//
// Every error names the file and, where there is one, the tensor.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace pathvlm::safetensors {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;
using Metadata = std::map<std::string, std::string>;

constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;  // the limit the reference implementation enforces

struct TensorInfo {
  std::string name;
  torch::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range in the data buffer
  uint64_t nbytes() const { return end - begin; }
};

// "F32", "BF16", ... <-> torch dtypes. Supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL.
std::string dtype_name(torch::ScalarType dtype);
torch::ScalarType dtype_from_name(const std::string& name);  // throws on an unknown or unsupported name

// Refuses to read a tensor stored as `stored` into a `wanted` one when the conversion would reinterpret rather
// than convert: floating point reads into floating point of any width, integers and BOOL into integers and BOOL,
// never one kind into the other (F32 bytes labelled I32 would become integer nonsense, silently). Throws naming
// `where` and the tensor.
void check_convertible(torch::ScalarType stored, torch::ScalarType wanted, const std::string& where,
                       const std::string& tensor);

// CRC-32 (the zlib / python `zlib.crc32` polynomial) of a tensor's little-endian bytes in row-major order.
uint32_t checksum(const torch::Tensor& tensor);

// A read-only, memory-mapped safetensors file. Copies share the mapping; tensors returned by get() keep it alive.
class File {
 public:
  static File open(const std::string& path);

  const std::string& path() const;
  const std::vector<TensorInfo>& tensors() const;  // in data-offset order
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;
  // A CPU tensor viewing the mapping (copy-on-write: writing to it never touches the file).
  // Call .clone() to own the memory. Tensors whose bytes are not aligned for their dtype are copied.
  torch::Tensor get(const std::string& name) const;
  const Metadata& metadata() const;

 private:
  struct State;
  std::shared_ptr<const State> state_;
};

// Writes tensors (any device, any strides) to `path`: a temporary file, fsync, then rename.
// Data are laid out largest element size first so every tensor is aligned in the mapping. Names must be unique.
// Metadata gets "format": "pt" unless given (transformers refuses files without it).
void save(const std::string& path, const NamedTensors& tensors, const Metadata& metadata = {});

// PyTorch pickles (.bin, .pt, .pth, .ckpt) are never read: loading one can run code. pickle_refusal says so of
// `what` and names the command that converts `source` once (scripts/convert_to_safetensors.py). File::open and
// Checkpoint::open refuse pickles with it.
bool is_pickle_file(const std::string& path);
std::string pickle_refusal(const std::string& what, const std::string& source);

// A model's weights: one safetensors file, or a directory holding model.safetensors or
// model.safetensors.index.json (+ its shards), or the path of an index file itself.
class Checkpoint {
 public:
  static Checkpoint open(const std::string& path_or_dir);

  const std::vector<std::string>& names() const;  // sorted
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;
  torch::Tensor get(const std::string& name) const;  // see File::get
  const std::string& file_of(const std::string& name) const;  // the shard holding `name`
  const std::vector<File>& files() const;
  const std::string& path() const;  // what open() was given
  Metadata metadata() const;        // the first shard's metadata

 private:
  std::string path_;
  std::vector<File> files_;
  std::map<std::string, size_t> index_;  // tensor name -> position in files_
  std::vector<std::string> names_;
};

// Writes `dir`/model.safetensors when everything fits in `max_shard_bytes`, otherwise
// model-0000i-of-0000n.safetensors shards (in the given order, each at most max_shard_bytes unless a single
// tensor is larger) and model.safetensors.index.json, written last. Metadata gets "format": "pt" unless given.
// Returns the files written (index last).
std::vector<std::string> save_sharded(const std::string& dir, const NamedTensors& tensors, uint64_t max_shard_bytes,
                                      const Metadata& metadata = {});

}  // namespace pathvlm::safetensors
