#include "io/checked_rows.h"

#include "core/error.h"
#include "io/crc32.h"

namespace pathvlm::shards {
namespace {

std::string record_where(const h5::Dataset& ds, int64_t i) {
  return str("shard '", ds.file_path(), "' record ", i, " (", ds.path(), ")");
}

// The X_crc32 dataset next to `data`: int64 [rows], values that fit 32 bits.
std::vector<uint32_t> load_checksums(const h5::Group& group, const std::string& name, int64_t rows) {
  const h5::Dataset ds = group.dataset(name + "_crc32");
  PATHVLM_CHECK(ds.kind() == h5::Dataset::Kind::Numeric && ds.dtype() == torch::kInt64 && ds.shape().size() == 1 &&
                    ds.rows() == rows,
                ds.where(), ": expected int64 [", rows, "] checksums, got ", ds.dtype_name(), " ",
                c10::IntArrayRef(ds.shape()));
  const torch::Tensor values = ds.read(torch::kInt64);
  std::vector<uint32_t> out(static_cast<size_t>(rows));
  const int64_t* p = values.data_ptr<int64_t>();
  for (int64_t i = 0; i < rows; ++i) {
    PATHVLM_CHECK(p[i] >= 0 && p[i] <= 0xFFFFFFFFll, ds.where(), ": row ", i, " is not a CRC-32 (", p[i], ")");
    out[static_cast<size_t>(i)] = static_cast<uint32_t>(p[i]);
  }
  return out;
}

uint32_t bytes_crc(const torch::Tensor& contiguous_row) {
  return crc32(contiguous_row.data_ptr(), static_cast<size_t>(contiguous_row.numel()) * contiguous_row.element_size());
}

}  // namespace

torch::Tensor row_checksums(const torch::Tensor& rows) {
  const torch::Tensor t = rows.detach().to(torch::kCPU).contiguous();
  torch::Tensor out = torch::empty({t.size(0)}, torch::kInt64);
  for (int64_t i = 0; i < t.size(0); ++i) out.data_ptr<int64_t>()[i] = bytes_crc(t[i]);
  return out;
}

CheckedRows::CheckedRows(const h5::Group& group, const std::string& name) : data_(group.dataset(name)) {
  PATHVLM_CHECK(data_.kind() == h5::Dataset::Kind::Numeric && !data_.shape().empty(), data_.where(),
                ": expected numeric rows, got ", data_.dtype_name());
  crc_ = load_checksums(group, name, data_.rows());
}

void CheckedRows::check(const torch::Tensor& rows, const std::vector<int64_t>& index) const {
  for (size_t k = 0; k < index.size(); ++k) {
    const uint32_t computed = bytes_crc(rows[static_cast<int64_t>(k)]);
    const uint32_t stored = crc_[static_cast<size_t>(index[k])];
    PATHVLM_CHECK(computed == stored, record_where(data_, index[k]), ": checksum mismatch (stored ", stored,
                  ", computed ", computed, "): the file is damaged");
  }
}

torch::Tensor CheckedRows::read_rows(int64_t begin, int64_t count) const {
  torch::Tensor rows = data_.read_rows(begin, count);
  std::vector<int64_t> index(static_cast<size_t>(count));
  for (int64_t k = 0; k < count; ++k) index[static_cast<size_t>(k)] = begin + k;
  check(rows, index);
  return rows;
}

torch::Tensor CheckedRows::read_row_list(const std::vector<int64_t>& rows) const {
  torch::Tensor out = data_.read_row_list(rows);
  check(out, rows);
  return out;
}

CheckedBytes::CheckedBytes(const h5::Group& group, const std::string& name) : data_(group.dataset(name)) {
  PATHVLM_CHECK(data_.kind() == h5::Dataset::Kind::Numeric && data_.dtype() == torch::kUInt8 &&
                    data_.shape().size() == 1,
                data_.where(), ": expected uint8 [bytes], got ", data_.dtype_name(), " ",
                c10::IntArrayRef(data_.shape()));
  const h5::Dataset offsets = group.dataset(name + "_offsets");
  PATHVLM_CHECK(offsets.kind() == h5::Dataset::Kind::Numeric && offsets.dtype() == torch::kInt64 &&
                    offsets.shape().size() == 1 && offsets.rows() >= 1,
                offsets.where(), ": expected int64 [N+1] offsets, got ", offsets.dtype_name(), " ",
                c10::IntArrayRef(offsets.shape()));
  const torch::Tensor values = offsets.read(torch::kInt64);
  offsets_.assign(values.data_ptr<int64_t>(), values.data_ptr<int64_t>() + values.numel());
  const int64_t total = data_.rows();
  PATHVLM_CHECK(offsets_.front() == 0 && offsets_.back() == total, offsets.where(), ": offsets run from ",
                offsets_.front(), " to ", offsets_.back(), ", expected 0 to ", total);
  for (size_t i = 1; i < offsets_.size(); ++i)
    PATHVLM_CHECK(offsets_[i] >= offsets_[i - 1], offsets.where(), ": offsets decrease at record ", i - 1);
  crc_ = load_checksums(group, name, static_cast<int64_t>(offsets_.size()) - 1);
}

h5::Blob CheckedBytes::read(int64_t i) const {
  PATHVLM_CHECK(i >= 0 && i < size(), data_.where(), ": record ", i, " is out of range [0, ", size(), ")");
  const int64_t begin = offsets_[static_cast<size_t>(i)], end = offsets_[static_cast<size_t>(i) + 1];
  h5::Blob out(static_cast<size_t>(end - begin));
  if (!out.empty()) {
    torch::Tensor view = torch::from_blob(out.data(), {end - begin}, torch::kUInt8);
    data_.read_rows_into(begin, view);
  }
  const uint32_t computed = crc32(out.data(), out.size()), stored = crc_[static_cast<size_t>(i)];
  PATHVLM_CHECK(computed == stored, record_where(data_, i), ": checksum mismatch (stored ", stored, ", computed ",
                computed, "): the file is damaged");
  return out;
}

}  // namespace pathvlm::shards
