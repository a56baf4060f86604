// safetensors headers and checkpoint indexes from anywhere (a downloaded model, a damaged or malicious file). The
// first input byte picks the reader: even, the bytes are a .safetensors file opened with File::open and every
// tensor read; odd, they are a model.safetensors.index.json beside two valid shards, opened with Checkpoint::open.
// Invariants: tensors lie inside the file, disjoint and in order, and each tensor read has its header's byte count.
#include <torch/torch.h>

#include <cstring>
#include <functional>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/safetensors.h"

namespace st = pathvlm::safetensors;
using pathvlm::fuzz::require;

namespace {

void read_every_tensor(const std::vector<st::TensorInfo>& infos,
                       const std::function<torch::Tensor(const std::string&)>& get) {
  for (const auto& info : infos) {
    require(info.end >= info.begin, "a tensor ends before it begins");
    const torch::Tensor t = get(info.name);
    require(t.scalar_type() == info.dtype, "a tensor's dtype differs from its header");
    require(static_cast<uint64_t>(t.numel()) * t.element_size() == info.nbytes(),
            "a tensor's bytes differ from its header");
    require(t.sizes().vec() == info.shape, "a tensor's shape differs from its header");
  }
}

void open_file(const uint8_t* bytes, size_t size) {
  const auto f = st::File::open(pathvlm::fuzz::scratch_file("fuzz.safetensors", bytes, size));
  uint64_t previous_end = 0, header = 0;
  std::memcpy(&header, bytes, 8);  // File::open refused anything shorter
  for (const auto& info : f.tensors()) {
    require(info.begin >= previous_end, "tensors overlap or are out of order");
    require(8 + header + info.end <= size, "a tensor lies beyond the file");
    previous_end = info.end;
  }
  read_every_tensor(f.tensors(), [&](const std::string& name) { return f.get(name); });
}

void open_index(const std::string& index_text) {
  static const bool shards_written = [] {
    const auto dir = pathvlm::fuzz::scratch_dir() / "ckpt";
    std::filesystem::create_directories(dir);
    st::save((dir / "model-00001-of-00002.safetensors").string(), {{"a", torch::arange(6).reshape({2, 3})}});
    st::save((dir / "model-00002-of-00002.safetensors").string(), {{"b", torch::ones({4}, torch::kBFloat16)}});
    return true;
  }();
  (void)shards_written;
  const std::string path = pathvlm::fuzz::scratch_file(
      "ckpt/model.safetensors.index.json", reinterpret_cast<const uint8_t*>(index_text.data()), index_text.size());
  const auto ckpt = st::Checkpoint::open(path);
  std::vector<st::TensorInfo> infos;
  for (const auto& name : ckpt.names()) infos.push_back(ckpt.info(name));
  read_every_tensor(infos, [&](const std::string& name) { return ckpt.get(name); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  try {
    if (data[0] % 2 == 0) {
      open_file(data + 1, size - 1);
    } else {
      open_index(std::string(reinterpret_cast<const char*>(data + 1), size - 1));
    }
  } catch (const pathvlm::Error&) {
  }
  return 0;
}
