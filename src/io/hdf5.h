// HDF5 without raw handles: files, groups, datasets and attributes as RAII objects over hid_t.
//
//   auto f = h5::File::create("shard.h5");                        // truncates; File::open(path) is read-only
//   f.write("features", torch::randn({8, 4}).to(torch::kHalf));    // whole numeric array (N-d)
//   f.write_strings("ids", {"a", "b"});                            // vlen UTF-8
//   auto images = f.create_blobs("images");                       // extendable vlen uint8 (JPEG/PNG bytes)
//   images.append_blobs({jpeg_bytes});
//   h5::DatasetOptions opt;  opt.chunk = {256, 77};  opt.gzip = 4;
//   auto rows = f.create("tokens", torch::kInt32, {77}, opt);     // shape [0, 77], extendable
//   rows.append(batch);                                            // [k, 77]
//   f.set_attr("pathvlm_schema", "tiles/1");
//
//   auto g = h5::File::open("shard.h5");
//   torch::Tensor x = g.dataset("features").read(torch::kHalf);     // errors if the dtype differs
//   torch::Tensor r = g.dataset("tokens").read_rows(10, 4);         // hyperslab: rows 10..13
//   torch::Tensor s = g.dataset("features").read_row_list({2, 3, 9});  // only these rows (sorted, distinct)
//   std::string id = g.dataset("ids").read_string(1);
//
// Numeric dtypes: uint8, int8, int16, int32, int64, float16, float32, float64. HDF5's own error printing is
// silenced; every failure is a pathvlm::Error naming the file and the object ("'/x/a.h5': dataset '/ids': ...").
// Objects are cheap to copy (they share one handle). All calls take one process-wide lock, so objects may be used
// from several threads (HDF5 itself is not concurrent anyway).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pathvlm::h5 {

using hid = int64_t;  // hid_t (checked against <hdf5.h> in hdf5.cpp; this header does not include it)

// One owned HDF5 identifier, closed with the matching H5?close when the last copy goes away.
class Handle {
 public:
  Handle() = default;
  Handle(hid id, int (*close)(hid));
  ~Handle();
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid id() const { return id_; }
  int close() const;  // closes now (once); the close function's result

 private:
  mutable hid id_ = -1;
  int (*close_)(hid) = nullptr;
};

struct DatasetOptions {
  std::vector<int64_t> chunk = {};  // chunk shape; empty = automatic (~1 MiB of rows) when chunking is needed
  int gzip = 0;                     // deflate level 0..9 (0 = none)
  bool shuffle = false;             // byte-shuffle filter before deflate (helps float data)
};

using Blob = std::vector<uint8_t>;

// What a file holds in common with its groups and datasets: a name and attributes.
class Object {
 public:
  const std::string& file_path() const { return file_; }
  const std::string& path() const { return path_; }  // absolute object path, "/" for the root
  std::string where() const;                          // "'file.h5': dataset '/ids'" for error messages

  bool has_attr(const std::string& name) const;
  std::vector<std::string> attr_names() const;
  void set_attr(const std::string& name, const std::string& value);  // vlen UTF-8 scalar
  void set_attr(const std::string& name, const char* value) { set_attr(name, std::string(value)); }
  void set_attr(const std::string& name, int64_t value);
  void set_attr(const std::string& name, int value) { set_attr(name, static_cast<int64_t>(value)); }
  void set_attr(const std::string& name, double value);
  std::string attr_string(const std::string& name) const;  // vlen or fixed-length string attributes
  int64_t attr_int(const std::string& name) const;         // any integer attribute with one value
  double attr_double(const std::string& name) const;       // any integer or float attribute with one value

  hid id() const { return handle_->id(); }  // for code that must call the C API directly
  // Writes every attribute of this object onto `target` (same names, types and values; existing ones replaced).
  void copy_attrs_to(Object& target) const;

  // Wraps an open identifier; `kind` ("file", "group", "dataset") names it in messages.
  Object(std::shared_ptr<const Handle> handle, std::string file, std::string path, const char* kind);

 protected:
  std::shared_ptr<const Handle> handle_;
  std::string file_, path_;
  const char* kind_ = "object";
};

class Dataset : public Object {
 public:
  enum class Kind { Numeric, String, Blob };
  Kind kind() const;
  std::vector<int64_t> shape() const;
  int64_t rows() const;                        // size of the first dimension (1 for a scalar)
  torch::ScalarType dtype() const;             // numeric datasets; uint8 for blobs; error for strings
  std::string dtype_name() const;              // "float16", "int64", "vlen utf-8 string", "vlen uint8 blob", ...
  std::vector<int64_t> chunk() const;          // empty when contiguous
  int gzip_level() const;                      // 0 when not deflate-compressed
  bool extendable() const;                     // first dimension unlimited
  // Where a contiguous dataset's data lies in the file: absolute byte offset (user block included) and size;
  // offset -1 when the data is chunked or not allocated (no rows).
  struct Storage {
    int64_t offset = -1, bytes = 0;
  };
  Storage storage() const;

  // Numeric reads give a new contiguous CPU tensor in the file's dtype; the `expected` overloads fail with
  // "dtype X, expected Y" instead of converting.
  torch::Tensor read() const;
  torch::Tensor read(torch::ScalarType expected) const;
  torch::Tensor read_rows(int64_t begin, int64_t count) const;
  // Into a caller-provided contiguous CPU tensor of the dataset's dtype and shape [count, row...] (pinned buffers).
  void read_rows_into(int64_t begin, torch::Tensor& out) const;
  // Rows `rows` (strictly increasing) as [rows.size(), row...]: one hyperslab read per contiguous run, so only
  // those rows (their chunks) are read from disk (the sampled tiles of a slide).
  torch::Tensor read_row_list(const std::vector<int64_t>& rows) const;
  void append(const torch::Tensor& rows);  // extendable datasets: rows [k, row...] of the dataset's dtype
  void write_rows(int64_t begin, const torch::Tensor& rows);  // overwrites rows [begin, begin+k) of any dataset

  std::vector<std::string> read_strings() const;
  std::vector<std::string> read_strings(int64_t begin, int64_t count) const;
  std::string read_string(int64_t index) const;
  void append_strings(const std::vector<std::string>& values);

  std::vector<Blob> read_blobs(int64_t begin, int64_t count) const;
  Blob read_blob(int64_t index) const;
  void append_blobs(const std::vector<Blob>& values);

  using Object::Object;

 private:
  void check_rows(int64_t begin, int64_t count) const;
  int64_t grow(int64_t extra);  // extends the first dimension, returns the old row count
};

class Group : public Object {
 public:
  // Paths are relative to this group (or absolute); creating an object creates missing intermediate groups.
  bool has(const std::string& path) const;            // any link, along the whole path
  bool has_group(const std::string& path) const;
  bool has_dataset(const std::string& path) const;
  std::vector<std::string> children() const;          // names of the direct members, in name order
  Group group(const std::string& path) const;         // opens an existing group
  Group create_group(const std::string& path);        // error if it exists
  Group require_group(const std::string& path);       // opens or creates
  Dataset dataset(const std::string& path) const;     // opens an existing dataset

  // Whole-array writes (fixed size). Numeric: any CPU or CUDA tensor of a supported dtype, any rank (0-d too).
  Dataset write(const std::string& path, const torch::Tensor& values, const DatasetOptions& options = {});
  Dataset write_strings(const std::string& path, const std::vector<std::string>& values,
                        const DatasetOptions& options = {});
  Dataset write_blobs(const std::string& path, const std::vector<Blob>& values, const DatasetOptions& options = {});
  // Empty extendable datasets to append() to: numeric ones have shape [0, row_shape...].
  Dataset create(const std::string& path, torch::ScalarType dtype, const std::vector<int64_t>& row_shape,
                 const DatasetOptions& options = {});
  Dataset create_strings(const std::string& path, const DatasetOptions& options = {});
  // A fixed-size contiguous numeric dataset of `shape`, its storage allocated now (filled by write_rows()), so
  // storage() is known before the file is closed.
  Dataset create_contiguous(const std::string& path, torch::ScalarType dtype, const std::vector<int64_t>& shape);
  Dataset create_blobs(const std::string& path, const DatasetOptions& options = {});

  // Shorthand for dataset(path).read(...).
  torch::Tensor read(const std::string& path) const { return dataset(path).read(); }
  torch::Tensor read(const std::string& path, torch::ScalarType expected) const {
    return dataset(path).read(expected);
  }
  std::vector<std::string> read_strings(const std::string& path) const { return dataset(path).read_strings(); }

  using Object::Object;
};

class File : public Group {
 public:
  static File open(const std::string& path);        // read-only
  static File open_rw(const std::string& path);     // read-write, must exist
  static File create(const std::string& path);      // create or truncate
  // With a user block of `userblock_bytes` (a power of two >= 512) before the HDF5 data, left to the caller.
  static File create(const std::string& path, int64_t userblock_bytes);
  using Group::create;                              // file.create("rows", dtype, row_shape) still works
  void flush();                                     // H5Fflush: what is written so far survives a crash
  // Closes the file now, throwing when that fails (a full disk): every group and dataset object of it must be
  // gone and this must be the file's only copy. Afterwards this object is unusable.
  void close();

  using Group::Group;
};

// Open HDF5 identifiers of any kind in this process (tests use it to prove nothing leaks).
int64_t open_object_count();

// "float16", "int32", ... for messages.
std::string dtype_name(torch::ScalarType dtype);

}  // namespace pathvlm::h5
