// RAII wrappers over the HDF5 C API. Every call goes through check(), which turns a negative return into a
// pathvlm::Error naming the file, the object and HDF5's innermost error message.
#include "io/hdf5.h"

#include <hdf5.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <type_traits>

#include "core/error.h"

static_assert(std::is_same_v<hid_t, pathvlm::h5::hid>, "hdf5.h declares hid as hid_t");
static_assert(std::is_same_v<herr_t, int>, "hdf5.h closes handles through int(*)(hid)");

namespace pathvlm::h5 {
namespace {

std::recursive_mutex& library_mutex() {
  // Before the first HDF5 call: no HDF5 atexit handler. It would close again, at exit, a file whose close failed
  // (a full disk) and crash in H5F__close_cb (HDF5 1.10); every file is closed by its owner before exit anyway.
  static const bool no_atexit = [] { return H5dont_atexit() >= 0; }();
  (void)no_atexit;
  static std::recursive_mutex m;
  return m;
}

// Holds the process-wide lock and makes sure HDF5 never prints its error stack on this thread.
struct Guard {
  std::lock_guard<std::recursive_mutex> lock{library_mutex()};
  Guard() {
    thread_local bool silenced = false;
    if (!silenced) {
      H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
      silenced = true;
    }
  }
};

// HDF5's innermost error message ("...: file signature not found"), then the stack is cleared.
std::string take_error_detail() {
  std::string detail;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* e, void* out) -> herr_t {
        auto* text = static_cast<std::string*>(out);
        if (n == 0 && text->empty()) {
          char minor[256] = "";
          H5Eget_msg(e->min_num, nullptr, minor, sizeof minor);
          *text = e->desc && *e->desc ? std::string(e->desc) : std::string();
          if (*minor) *text += (text->empty() ? "" : " (") + std::string(minor) + (text->empty() ? "" : ")");
        }
        return 0;
      },
      &detail);
  H5Eclear2(H5E_DEFAULT);
  return detail;
}

template <class T>
T check(T result, const std::string& where, const char* action) {
  if (result < 0) {
    std::string detail = take_error_detail();
    throw Error(str(where, ": ", action, " failed", detail.empty() ? "" : ": ", detail));
  }
  return result;
}

// Owned identifiers of each kind.
Handle* owned(hid id, herr_t (*close)(hid_t)) { return new Handle(id, close); }
std::shared_ptr<const Handle> share(hid id, herr_t (*close)(hid_t)) {
  return std::shared_ptr<const Handle>(owned(id, close));
}
using Owned = std::unique_ptr<Handle>;
Owned own(hid id, herr_t (*close)(hid_t)) { return Owned(owned(id, close)); }

std::string join(const std::string& base, const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  if (path.empty() || path == ".") return base;
  return base == "/" ? "/" + path : base + "/" + path;
}

Owned type_for(torch::ScalarType dtype, const std::string& where) {
  hid_t base;
  switch (dtype) {
    case torch::kUInt8: base = H5T_STD_U8LE; break;
    case torch::kInt8: base = H5T_STD_I8LE; break;
    case torch::kInt16: base = H5T_STD_I16LE; break;
    case torch::kInt32: base = H5T_STD_I32LE; break;
    case torch::kInt64: base = H5T_STD_I64LE; break;
    case torch::kFloat32: base = H5T_IEEE_F32LE; break;
    case torch::kFloat64: base = H5T_IEEE_F64LE; break;
    case torch::kFloat16: {
      // IEEE half, little-endian: the layout numpy/h5py use for float16.
      Owned t = own(check(H5Tcopy(H5T_IEEE_F32LE), where, "H5Tcopy"), H5Tclose);
      check(H5Tset_fields(t->id(), 15, 10, 5, 0, 10), where, "define float16");
      check(H5Tset_size(t->id(), 2), where, "define float16");
      check(H5Tset_ebias(t->id(), 15), where, "define float16");
      return t;
    }
    default:
      throw Error(str(where, ": dtype ", dtype_name(dtype),
                      " cannot be stored (uint8, int8, int16, int32, int64, float16, float32, float64)"));
  }
  return own(check(H5Tcopy(base), where, "H5Tcopy"), H5Tclose);
}

Owned string_type(const std::string& where) {
  Owned t = own(check(H5Tcopy(H5T_C_S1), where, "H5Tcopy"), H5Tclose);
  check(H5Tset_size(t->id(), H5T_VARIABLE), where, "define vlen string");
  check(H5Tset_cset(t->id(), H5T_CSET_UTF8), where, "define vlen string");
  return t;
}

Owned blob_type(const std::string& where) {
  return own(check(H5Tvlen_create(H5T_NATIVE_UINT8), where, "define vlen uint8"), H5Tclose);
}

// The torch dtype a numeric HDF5 type reads into without loss; throws for the rest.
torch::ScalarType dtype_of(hid_t type, const std::string& where) {
  H5T_class_t cls = H5Tget_class(type);
  size_t size = H5Tget_size(type);
  if (cls == H5T_INTEGER) {
    bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
    if (size == 1) return is_signed ? torch::kInt8 : torch::kUInt8;
    if (is_signed && size == 2) return torch::kInt16;
    if (is_signed && size == 4) return torch::kInt32;
    if (is_signed && size == 8) return torch::kInt64;
    throw Error(str(where, ": unsupported integer type (", is_signed ? "int" : "uint", size * 8, ")"));
  }
  if (cls == H5T_FLOAT) {
    if (size == 2) return torch::kFloat16;
    if (size == 4) return torch::kFloat32;
    if (size == 8) return torch::kFloat64;
    throw Error(str(where, ": unsupported float type of ", size, " bytes"));
  }
  throw Error(str(where, ": not a numeric dataset"));
}

void reclaim(hid_t type, hid_t space, void* buffer) {
#if H5_VERSION_GE(1, 12, 0)
  H5Treclaim(type, space, H5P_DEFAULT, buffer);
#else
  H5Dvlen_reclaim(type, space, H5P_DEFAULT, buffer);
#endif
}

std::vector<hsize_t> to_hsize(const std::vector<int64_t>& v) { return std::vector<hsize_t>(v.begin(), v.end()); }

// Dataset creation properties: chunked (and then extendable along rows) when asked to, compressed or streaming.
struct Layout {
  Owned space, dcpl;
};

Layout make_layout(const std::vector<int64_t>& dims, int64_t row_bytes, bool extendable, const DatasetOptions& opt,
                   const std::string& where) {
  PATHVLM_CHECK(opt.gzip >= 0 && opt.gzip <= 9, where, ": gzip level ", opt.gzip, " is not in 0..9");
  bool chunked = extendable || !opt.chunk.empty() || opt.gzip > 0 || opt.shuffle;
  Layout layout;
  layout.dcpl = own(check(H5Pcreate(H5P_DATASET_CREATE), where, "H5Pcreate"), H5Pclose);
  // No modification times in the object headers: the same data written twice gives the same bytes.
  check(H5Pset_obj_track_times(layout.dcpl->id(), 0), where, "H5Pset_obj_track_times");
  if (dims.empty()) {
    PATHVLM_CHECK(!chunked, where, ": a scalar dataset cannot be chunked, compressed or extended");
    layout.space = own(check(H5Screate(H5S_SCALAR), where, "H5Screate"), H5Sclose);
    return layout;
  }
  std::vector<hsize_t> current = to_hsize(dims), maximum = current;
  if (chunked) {
    maximum[0] = H5S_UNLIMITED;
    std::vector<hsize_t> chunk;
    if (opt.chunk.empty()) {
      for (size_t i = 1; i < dims.size(); ++i)
        PATHVLM_CHECK(dims[i] > 0, where, ": cannot chunk rows with a zero-sized dimension");
      // About 1 MiB of rows, at most 8192 of them, and no more than a fixed-size dataset holds.
      int64_t rows = std::clamp<int64_t>((int64_t(1) << 20) / std::max<int64_t>(1, row_bytes), 1, 8192);
      if (!extendable && dims[0] > 0) rows = std::min(rows, dims[0]);
      chunk = current;
      chunk[0] = static_cast<hsize_t>(rows);
    } else {
      PATHVLM_CHECK(opt.chunk.size() == dims.size(), where, ": chunk has rank ", opt.chunk.size(),
                    " but the dataset has rank ", dims.size());
      for (size_t i = 0; i < dims.size(); ++i) {
        PATHVLM_CHECK(opt.chunk[i] > 0, where, ": chunk dimensions must be positive");
        PATHVLM_CHECK(i == 0 || opt.chunk[i] <= dims[i], where, ": chunk dimension ", i, " (", opt.chunk[i],
                      ") exceeds the dataset's (", dims[i], ")");
      }
      chunk = to_hsize(opt.chunk);
    }
    check(H5Pset_chunk(layout.dcpl->id(), static_cast<int>(chunk.size()), chunk.data()), where, "H5Pset_chunk");
    if (opt.shuffle) check(H5Pset_shuffle(layout.dcpl->id()), where, "H5Pset_shuffle");
    if (opt.gzip > 0) {
      PATHVLM_CHECK(H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0, where, ": this HDF5 has no deflate filter");
      check(H5Pset_deflate(layout.dcpl->id(), static_cast<unsigned>(opt.gzip)), where, "H5Pset_deflate");
    }
  }
  layout.space = own(check(H5Screate_simple(static_cast<int>(current.size()), current.data(), maximum.data()), where,
                           "H5Screate_simple"),
                     H5Sclose);
  return layout;
}

// Group creation properties: no modification times, as for datasets.
Owned group_create_plist(const std::string& where) {
  Owned gcpl = own(check(H5Pcreate(H5P_GROUP_CREATE), where, "H5Pcreate"), H5Pclose);
  check(H5Pset_obj_track_times(gcpl->id(), 0), where, "H5Pset_obj_track_times");
  return gcpl;
}

// Creates the missing groups on the way to `path` (all but its last part) here rather than through HDF5's
// intermediate-group option, whose groups take the default properties and so keep times.
void create_parent_groups(hid_t loc, const std::string& path, const std::string& where) {
  Owned gcpl = group_create_plist(where);
  for (size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1)) {
    const std::string parent = path.substr(0, slash);
    if (parent.back() == '/') continue;  // "a//b"
    const std::string at = str(where, ": its group '", parent, "'");
    if (check(H5Lexists(loc, parent.c_str(), H5P_DEFAULT), at, "look up") > 0) continue;
    check(H5Gclose(check(H5Gcreate2(loc, parent.c_str(), H5P_DEFAULT, gcpl->id(), H5P_DEFAULT), at, "create")), at,
          "close");
  }
}

// One attribute's type, read as a single value; counts and classes checked.
struct AttrReader {
  Owned attr, type, space;
  AttrReader(hid_t loc, const std::string& name, const std::string& where) {
    PATHVLM_CHECK(H5Aexists(loc, name.c_str()) > 0, where, ": no attribute '", name, "'");
    attr = own(check(H5Aopen(loc, name.c_str(), H5P_DEFAULT), where, "open attribute"), H5Aclose);
    type = own(check(H5Aget_type(attr->id()), where, "H5Aget_type"), H5Tclose);
    space = own(check(H5Aget_space(attr->id()), where, "H5Aget_space"), H5Sclose);
    hssize_t n = H5Sget_simple_extent_npoints(space->id());
    PATHVLM_CHECK(n == 1, where, ": attribute '", name, "' holds ", n, " values, expected one");
  }
};

std::string strip_fixed(const char* data, size_t size) {
  std::string s(data, strnlen(data, size));
  while (!s.empty() && s.back() == ' ') s.pop_back();  // space-padded fixed strings
  return s;
}

}  // namespace

// ---- Handle / Object -------------------------------------------------------------------------------------------

Handle::Handle(hid id, int (*close)(hid)) : id_(id), close_(close) {}

Handle::~Handle() { close(); }

int Handle::close() const {
  if (id_ < 0 || !close_) return 0;
  Guard guard;
  const int result = close_(id_);
  id_ = -1;
  if (result < 0) take_error_detail();
  return result;
}

Object::Object(std::shared_ptr<const Handle> handle, std::string file, std::string path, const char* kind)
    : handle_(std::move(handle)), file_(std::move(file)), path_(std::move(path)), kind_(kind) {}

std::string Object::where() const {
  if (std::strcmp(kind_, "file") == 0) return str("'", file_, "'");
  return str("'", file_, "': ", kind_, " '", path_, "'");
}

bool Object::has_attr(const std::string& name) const {
  Guard guard;
  return check(H5Aexists(id(), name.c_str()), where(), "H5Aexists") > 0;
}

std::vector<std::string> Object::attr_names() const {
  Guard guard;
  std::vector<std::string> names;
  check(H5Aiterate2(
            id(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
            [](hid_t, const char* name, const H5A_info_t*, void* out) -> herr_t {
              static_cast<std::vector<std::string>*>(out)->push_back(name);
              return 0;
            },
            &names),
        where(), "list attributes");
  return names;
}

namespace {
// Replaces attribute `name` on `loc` with one scalar value of `file_type`, written from `value` as `mem_type`.
void put_attr(hid_t loc, const std::string& name, hid_t file_type, hid_t mem_type, const void* value,
              const std::string& where) {
  if (check(H5Aexists(loc, name.c_str()), where, "H5Aexists") > 0)
    check(H5Adelete(loc, name.c_str()), where, "replace attribute");
  Owned space = own(check(H5Screate(H5S_SCALAR), where, "H5Screate"), H5Sclose);
  Owned attr = own(check(H5Acreate2(loc, name.c_str(), file_type, space->id(), H5P_DEFAULT, H5P_DEFAULT),
                         where, "create attribute"),
                   H5Aclose);
  check(H5Awrite(attr->id(), mem_type, value), where, "write attribute");
}
}  // namespace

void Object::set_attr(const std::string& name, const std::string& value) {
  Guard guard;
  const std::string at = str(where(), ": attribute '", name, "'");
  Owned type = string_type(at);
  const char* text = value.c_str();
  put_attr(id(), name, type->id(), type->id(), &text, at);
}

void Object::set_attr(const std::string& name, int64_t value) {
  Guard guard;
  put_attr(id(), name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, str(where(), ": attribute '", name, "'"));
}

void Object::set_attr(const std::string& name, double value) {
  Guard guard;
  put_attr(id(), name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, str(where(), ": attribute '", name, "'"));
}

std::string Object::attr_string(const std::string& name) const {
  Guard guard;
  const std::string at = str(where(), ": attribute '", name, "'");
  AttrReader a(id(), name, where());
  PATHVLM_CHECK(H5Tget_class(a.type->id()) == H5T_STRING, at, " is not a string");
  if (H5Tis_variable_str(a.type->id()) > 0) {
    Owned mem = string_type(at);
    char* text = nullptr;
    check(H5Aread(a.attr->id(), mem->id(), &text), at, "read");
    std::string value = text ? text : "";
    reclaim(mem->id(), a.space->id(), &text);
    return value;
  }
  size_t size = H5Tget_size(a.type->id());
  std::vector<char> buffer(size + 1, 0);
  Owned mem = own(check(H5Tcopy(a.type->id()), at, "H5Tcopy"), H5Tclose);
  check(H5Aread(a.attr->id(), mem->id(), buffer.data()), at, "read");
  return strip_fixed(buffer.data(), size);
}

int64_t Object::attr_int(const std::string& name) const {
  Guard guard;
  const std::string at = str(where(), ": attribute '", name, "'");
  AttrReader a(id(), name, where());
  PATHVLM_CHECK(H5Tget_class(a.type->id()) == H5T_INTEGER, at, " is not an integer");
  int64_t value = 0;
  check(H5Aread(a.attr->id(), H5T_NATIVE_INT64, &value), at, "read");
  return value;
}

double Object::attr_double(const std::string& name) const {
  Guard guard;
  const std::string at = str(where(), ": attribute '", name, "'");
  AttrReader a(id(), name, where());
  H5T_class_t cls = H5Tget_class(a.type->id());
  PATHVLM_CHECK(cls == H5T_INTEGER || cls == H5T_FLOAT, at, " is not a number");
  double value = 0;
  check(H5Aread(a.attr->id(), H5T_NATIVE_DOUBLE, &value), at, "read");
  return value;
}

void Object::copy_attrs_to(Object& target) const {
  Guard guard;
  for (const auto& name : attr_names()) {
    const std::string at = str(where(), ": attribute '", name, "'");
    Owned attr = own(check(H5Aopen(id(), name.c_str(), H5P_DEFAULT), at, "open attribute"), H5Aclose);
    Owned type = own(check(H5Aget_type(attr->id()), at, "H5Aget_type"), H5Tclose);
    Owned space = own(check(H5Aget_space(attr->id()), at, "H5Aget_space"), H5Sclose);
    const hssize_t n = check(H5Sget_simple_extent_npoints(space->id()), at, "H5Sget_simple_extent_npoints");
    std::vector<uint8_t> buffer(static_cast<size_t>(n) * H5Tget_size(type->id()) + 1);
    check(H5Aread(attr->id(), type->id(), buffer.data()), at, "read");
    const std::string to = str(target.where(), ": attribute '", name, "'");
    if (check(H5Aexists(target.id(), name.c_str()), to, "H5Aexists") > 0)
      check(H5Adelete(target.id(), name.c_str()), to, "replace attribute");
    Owned copy = own(check(H5Acreate2(target.id(), name.c_str(), type->id(), space->id(), H5P_DEFAULT, H5P_DEFAULT),
                           to, "create attribute"),
                     H5Aclose);
    const herr_t written = H5Awrite(copy->id(), type->id(), buffer.data());
    if (H5Tdetect_class(type->id(), H5T_VLEN) > 0 || H5Tis_variable_str(type->id()) > 0)
      reclaim(type->id(), space->id(), buffer.data());
    check(written, to, "write attribute");
  }
}

// ---- Dataset ---------------------------------------------------------------------------------------------------

Dataset::Kind Dataset::kind() const {
  Guard guard;
  Owned type = own(check(H5Dget_type(id()), where(), "H5Dget_type"), H5Tclose);
  H5T_class_t cls = H5Tget_class(type->id());
  if (cls == H5T_INTEGER || cls == H5T_FLOAT) return Kind::Numeric;
  if (cls == H5T_STRING) return Kind::String;
  if (cls == H5T_VLEN) {
    Owned base = own(check(H5Tget_super(type->id()), where(), "H5Tget_super"), H5Tclose);
    if (H5Tget_class(base->id()) == H5T_INTEGER && H5Tget_size(base->id()) == 1) return Kind::Blob;
  }
  throw Error(str(where(), ": unsupported HDF5 type class ", static_cast<int>(cls),
                  " (expected numbers, strings or vlen uint8)"));
}

std::vector<int64_t> Dataset::shape() const {
  Guard guard;
  Owned space = own(check(H5Dget_space(id()), where(), "H5Dget_space"), H5Sclose);
  int rank = check(H5Sget_simple_extent_ndims(space->id()), where(), "H5Sget_simple_extent_ndims");
  std::vector<hsize_t> dims(rank);
  check(H5Sget_simple_extent_dims(space->id(), dims.data(), nullptr), where(), "H5Sget_simple_extent_dims");
  return std::vector<int64_t>(dims.begin(), dims.end());
}

int64_t Dataset::rows() const {
  auto s = shape();
  return s.empty() ? 1 : s[0];
}

bool Dataset::extendable() const {
  Guard guard;
  Owned space = own(check(H5Dget_space(id()), where(), "H5Dget_space"), H5Sclose);
  int rank = check(H5Sget_simple_extent_ndims(space->id()), where(), "H5Sget_simple_extent_ndims");
  if (rank == 0) return false;
  std::vector<hsize_t> dims(rank), maximum(rank);
  check(H5Sget_simple_extent_dims(space->id(), dims.data(), maximum.data()), where(), "H5Sget_simple_extent_dims");
  return maximum[0] == H5S_UNLIMITED;
}

torch::ScalarType Dataset::dtype() const {
  Guard guard;
  Kind k = kind();
  PATHVLM_CHECK(k != Kind::String, where(), ": holds strings, not numbers");
  if (k == Kind::Blob) return torch::kUInt8;
  Owned type = own(check(H5Dget_type(id()), where(), "H5Dget_type"), H5Tclose);
  return dtype_of(type->id(), where());
}

std::string Dataset::dtype_name() const {
  Guard guard;
  Kind k = kind();
  if (k == Kind::Blob) return "vlen uint8 blob";
  if (k == Kind::Numeric) return h5::dtype_name(dtype());
  Owned type = own(check(H5Dget_type(id()), where(), "H5Dget_type"), H5Tclose);
  if (H5Tis_variable_str(type->id()) > 0)
    return H5Tget_cset(type->id()) == H5T_CSET_UTF8 ? "vlen utf-8 string" : "vlen ascii string";
  return str("fixed string[", H5Tget_size(type->id()), "]");
}

std::vector<int64_t> Dataset::chunk() const {
  Guard guard;
  Owned dcpl = own(check(H5Dget_create_plist(id()), where(), "H5Dget_create_plist"), H5Pclose);
  if (H5Pget_layout(dcpl->id()) != H5D_CHUNKED) return {};
  hsize_t dims[H5S_MAX_RANK];
  int rank = check(H5Pget_chunk(dcpl->id(), H5S_MAX_RANK, dims), where(), "H5Pget_chunk");
  return std::vector<int64_t>(dims, dims + rank);
}

Dataset::Storage Dataset::storage() const {
  Guard guard;
  Storage s;
  const haddr_t offset = H5Dget_offset(id());
  if (offset == HADDR_UNDEF) {
    take_error_detail();
    return s;
  }
  s.offset = static_cast<int64_t>(offset);
  s.bytes = static_cast<int64_t>(H5Dget_storage_size(id()));
  return s;
}

int Dataset::gzip_level() const {
  Guard guard;
  Owned dcpl = own(check(H5Dget_create_plist(id()), where(), "H5Dget_create_plist"), H5Pclose);
  int n = H5Pget_nfilters(dcpl->id());
  for (int i = 0; i < n; ++i) {
    unsigned flags = 0, values[8] = {};
    size_t count = 8;
    H5Z_filter_t filter = H5Pget_filter2(dcpl->id(), static_cast<unsigned>(i), &flags, &count, values, 0, nullptr,
                                         nullptr);
    if (filter == H5Z_FILTER_DEFLATE) return count > 0 ? static_cast<int>(values[0]) : 0;
  }
  return 0;
}

void Dataset::check_rows(int64_t begin, int64_t count) const {
  int64_t n = rows();
  PATHVLM_CHECK(!shape().empty(), where(), ": a scalar dataset has no rows");
  PATHVLM_CHECK(begin >= 0 && count >= 0 && begin + count <= n, where(), ": rows [", begin, ", ", begin + count,
                ") are outside the dataset's ", n, " rows");
}

namespace {
// File and memory dataspaces selecting rows [begin, begin+count) of a dataset with dims `dims`.
std::pair<Owned, Owned> row_selection(hid_t dataset, std::vector<int64_t> dims, int64_t begin, int64_t count,
                                      const std::string& where) {
  Owned file_space = own(check(H5Dget_space(dataset), where, "H5Dget_space"), H5Sclose);
  std::vector<hsize_t> start(dims.size(), 0), extent = to_hsize(dims);
  start[0] = static_cast<hsize_t>(begin);
  extent[0] = static_cast<hsize_t>(count);
  check(H5Sselect_hyperslab(file_space->id(), H5S_SELECT_SET, start.data(), nullptr, extent.data(), nullptr), where,
        "select rows");
  Owned mem_space = own(check(H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr), where,
                              "H5Screate_simple"),
                        H5Sclose);
  return {std::move(file_space), std::move(mem_space)};
}
}  // namespace

torch::Tensor Dataset::read() const {
  Guard guard;
  torch::ScalarType dt = dtype();
  PATHVLM_CHECK(kind() == Kind::Numeric, where(), ": holds vlen blobs; use read_blobs()");
  torch::Tensor out = torch::empty(shape(), torch::TensorOptions().dtype(dt));
  if (out.numel() == 0) return out;
  Owned mem = type_for(dt, where());
  check(H5Dread(id(), mem->id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data_ptr()), where(), "read");
  return out;
}

torch::Tensor Dataset::read(torch::ScalarType expected) const {
  Guard guard;
  torch::ScalarType dt = dtype();
  PATHVLM_CHECK(dt == expected, where(), ": dtype ", h5::dtype_name(dt), ", expected ", h5::dtype_name(expected));
  return read();
}

torch::Tensor Dataset::read_rows(int64_t begin, int64_t count) const {
  Guard guard;
  auto dims = shape();
  check_rows(begin, count);
  dims[0] = count;
  torch::Tensor out = torch::empty(dims, torch::TensorOptions().dtype(dtype()));
  read_rows_into(begin, out);
  return out;
}

void Dataset::read_rows_into(int64_t begin, torch::Tensor& out) const {
  Guard guard;
  PATHVLM_CHECK(kind() == Kind::Numeric, where(), ": read_rows needs a numeric dataset");
  auto dims = shape();
  PATHVLM_CHECK(out.dim() >= 1, where(), ": read_rows_into needs a tensor with a row dimension");
  int64_t count = out.size(0);
  check_rows(begin, count);
  dims[0] = count;
  torch::ScalarType dt = dtype();
  PATHVLM_CHECK(out.device().is_cpu() && out.is_contiguous() && out.scalar_type() == dt &&
                    out.sizes().vec() == dims,
                where(), ": read_rows_into needs a contiguous CPU ", h5::dtype_name(dt), " tensor of shape ",
                c10::IntArrayRef(dims), ", got ", h5::dtype_name(out.scalar_type()), " ", out.sizes());
  if (out.numel() == 0) return;
  auto [file_space, mem_space] = row_selection(id(), shape(), begin, count, where());
  Owned mem = type_for(dt, where());
  check(H5Dread(id(), mem->id(), mem_space->id(), file_space->id(), H5P_DEFAULT, out.data_ptr()), where(),
        "read rows");
}

torch::Tensor Dataset::read_row_list(const std::vector<int64_t>& rows) const {
  Guard guard;
  PATHVLM_CHECK(kind() == Kind::Numeric, where(), ": read_row_list needs a numeric dataset");
  auto dims = shape();
  PATHVLM_CHECK(!dims.empty(), where(), ": a scalar dataset has no rows");
  for (size_t i = 0; i < rows.size(); ++i) {
    PATHVLM_CHECK(rows[i] >= 0 && rows[i] < dims[0], where(), ": row ", rows[i], " is outside the dataset's ",
                  dims[0], " rows");
    PATHVLM_CHECK(i == 0 || rows[i] > rows[i - 1], where(), ": read_row_list needs strictly increasing rows (",
                  rows[i - 1], " then ", rows[i], ")");
  }
  const auto full = dims;
  dims[0] = static_cast<int64_t>(rows.size());
  torch::Tensor out = torch::empty(dims, torch::TensorOptions().dtype(dtype()));
  if (out.numel() == 0) return out;
  // One read per contiguous run into its place in `out`: HDF5 1.10 builds a union of many hyperslabs in
  // quadratic time (seconds for 4096 scattered rows), while a read per run costs one chunk lookup.
  Owned file_space = own(check(H5Dget_space(id()), where(), "H5Dget_space"), H5Sclose);
  const auto mem_dims = to_hsize(dims);
  Owned mem_space = own(check(H5Screate_simple(static_cast<int>(mem_dims.size()), mem_dims.data(), nullptr),
                              where(), "H5Screate_simple"),
                        H5Sclose);
  Owned mem = type_for(dtype(), where());
  std::vector<hsize_t> file_start(full.size(), 0), mem_start(full.size(), 0), extent = to_hsize(full);
  for (size_t i = 0; i < rows.size();) {
    size_t end = i + 1;
    while (end < rows.size() && rows[end] == rows[end - 1] + 1) ++end;
    file_start[0] = static_cast<hsize_t>(rows[i]);
    mem_start[0] = static_cast<hsize_t>(i);
    extent[0] = static_cast<hsize_t>(end - i);
    check(H5Sselect_hyperslab(file_space->id(), H5S_SELECT_SET, file_start.data(), nullptr, extent.data(), nullptr),
          where(), "select rows");
    check(H5Sselect_hyperslab(mem_space->id(), H5S_SELECT_SET, mem_start.data(), nullptr, extent.data(), nullptr),
          where(), "select rows");
    check(H5Dread(id(), mem->id(), mem_space->id(), file_space->id(), H5P_DEFAULT, out.data_ptr()), where(),
          "read rows");
    i = end;
  }
  return out;
}

int64_t Dataset::grow(int64_t extra) {
  PATHVLM_CHECK(extendable(), where(), ": cannot append: the dataset was created with a fixed size");
  auto dims = shape();
  int64_t old_rows = dims[0];
  dims[0] += extra;
  auto extent = to_hsize(dims);
  check(H5Dset_extent(id(), extent.data()), where(), "extend");
  return old_rows;
}

void Dataset::append(const torch::Tensor& rows) {
  Guard guard;
  torch::ScalarType dt = dtype();
  PATHVLM_CHECK(kind() == Kind::Numeric, where(), ": append() needs a numeric dataset; use append_blobs()");
  auto dims = shape();
  PATHVLM_CHECK(rows.scalar_type() == dt, where(), ": cannot append ", h5::dtype_name(rows.scalar_type()),
                " rows to a ", h5::dtype_name(dt), " dataset");
  auto expected = dims;
  if (rows.dim() >= 1) expected[0] = rows.size(0);
  PATHVLM_CHECK(rows.sizes().vec() == expected, where(), ": cannot append rows of shape ", rows.sizes(),
                " to a dataset of shape ", c10::IntArrayRef(dims));
  if (rows.size(0) == 0) return;
  torch::Tensor data = rows.detach().to(torch::kCPU).contiguous();
  int64_t begin = grow(data.size(0));
  auto [file_space, mem_space] = row_selection(id(), shape(), begin, data.size(0), where());
  Owned mem = type_for(dt, where());
  check(H5Dwrite(id(), mem->id(), mem_space->id(), file_space->id(), H5P_DEFAULT, data.data_ptr()), where(),
        "append rows");
}

void Dataset::write_rows(int64_t begin, const torch::Tensor& rows) {
  Guard guard;
  torch::ScalarType dt = dtype();
  PATHVLM_CHECK(kind() == Kind::Numeric, where(), ": write_rows() needs a numeric dataset");
  auto dims = shape();
  PATHVLM_CHECK(rows.scalar_type() == dt && rows.dim() == static_cast<int64_t>(dims.size()) && rows.dim() >= 1,
                where(), ": cannot write ", h5::dtype_name(rows.scalar_type()), " rows of shape ", rows.sizes(),
                " into a ", h5::dtype_name(dt), " dataset of shape ", c10::IntArrayRef(dims));
  PATHVLM_CHECK(rows.sizes().slice(1).vec() == std::vector<int64_t>(dims.begin() + 1, dims.end()), where(),
                ": cannot write rows of shape ", rows.sizes(), " into a dataset of shape ", c10::IntArrayRef(dims));
  check_rows(begin, rows.size(0));
  if (rows.numel() == 0) return;
  torch::Tensor data = rows.detach().to(torch::kCPU).contiguous();
  auto [file_space, mem_space] = row_selection(id(), dims, begin, data.size(0), where());
  Owned mem = type_for(dt, where());
  check(H5Dwrite(id(), mem->id(), mem_space->id(), file_space->id(), H5P_DEFAULT, data.data_ptr()), where(),
        "write rows");
}

std::vector<std::string> Dataset::read_strings() const { return read_strings(0, rows()); }

std::vector<std::string> Dataset::read_strings(int64_t begin, int64_t count) const {
  Guard guard;
  PATHVLM_CHECK(kind() == Kind::String, where(), ": dtype ", dtype_name(), ", expected strings");
  auto dims = shape();
  PATHVLM_CHECK(dims.size() == 1, where(), ": string datasets must be one-dimensional, got rank ", dims.size());
  check_rows(begin, count);
  std::vector<std::string> out;
  if (count == 0) return out;
  out.reserve(count);
  auto [file_space, mem_space] = row_selection(id(), dims, begin, count, where());
  Owned type = own(check(H5Dget_type(id()), where(), "H5Dget_type"), H5Tclose);
  if (H5Tis_variable_str(type->id()) > 0) {
    Owned mem = string_type(where());
    std::vector<char*> text(count, nullptr);
    check(H5Dread(id(), mem->id(), mem_space->id(), file_space->id(), H5P_DEFAULT, text.data()), where(),
          "read strings");
    for (char* s : text) out.emplace_back(s ? s : "");
    reclaim(mem->id(), mem_space->id(), text.data());
  } else {
    size_t size = H5Tget_size(type->id());
    Owned mem = own(check(H5Tcopy(type->id()), where(), "H5Tcopy"), H5Tclose);
    std::vector<char> buffer(size * count);
    check(H5Dread(id(), mem->id(), mem_space->id(), file_space->id(), H5P_DEFAULT, buffer.data()), where(),
          "read strings");
    for (int64_t i = 0; i < count; ++i) out.push_back(strip_fixed(buffer.data() + i * size, size));
  }
  return out;
}

std::string Dataset::read_string(int64_t index) const { return read_strings(index, 1).at(0); }

namespace {
void write_string_rows(hid_t dataset, hid_t file_space, hid_t mem_space, const std::vector<std::string>& values,
                       const std::string& where) {
  std::vector<const char*> text;
  text.reserve(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    PATHVLM_CHECK(values[i].find('\0') == std::string::npos, where, ": string ", i, " contains a NUL byte");
    text.push_back(values[i].c_str());
  }
  Owned mem = string_type(where);
  check(H5Dwrite(dataset, mem->id(), mem_space, file_space, H5P_DEFAULT, text.data()), where, "write strings");
}

void write_blob_rows(hid_t dataset, hid_t file_space, hid_t mem_space, const std::vector<Blob>& values,
                     const std::string& where) {
  std::vector<hvl_t> refs(values.size());
  for (size_t i = 0; i < values.size(); ++i)
    refs[i] = hvl_t{values[i].size(), const_cast<uint8_t*>(values[i].data())};
  Owned mem = blob_type(where);
  check(H5Dwrite(dataset, mem->id(), mem_space, file_space, H5P_DEFAULT, refs.data()), where, "write blobs");
}
}  // namespace

void Dataset::append_strings(const std::vector<std::string>& values) {
  Guard guard;
  PATHVLM_CHECK(kind() == Kind::String && shape().size() == 1, where(), ": append_strings needs a 1-D string dataset");
  if (values.empty()) return;
  int64_t begin = grow(static_cast<int64_t>(values.size()));
  auto [file_space, mem_space] = row_selection(id(), shape(), begin, values.size(), where());
  write_string_rows(id(), file_space->id(), mem_space->id(), values, where());
}

std::vector<Blob> Dataset::read_blobs(int64_t begin, int64_t count) const {
  Guard guard;
  PATHVLM_CHECK(kind() == Kind::Blob, where(), ": dtype ", dtype_name(), ", expected vlen uint8 blobs");
  auto dims = shape();
  PATHVLM_CHECK(dims.size() == 1, where(), ": blob datasets must be one-dimensional, got rank ", dims.size());
  check_rows(begin, count);
  std::vector<Blob> out;
  if (count == 0) return out;
  auto [file_space, mem_space] = row_selection(id(), dims, begin, count, where());
  Owned mem = blob_type(where());
  std::vector<hvl_t> refs(count);
  check(H5Dread(id(), mem->id(), mem_space->id(), file_space->id(), H5P_DEFAULT, refs.data()), where(),
        "read blobs");
  out.reserve(count);
  for (const hvl_t& r : refs) {
    const auto* p = static_cast<const uint8_t*>(r.p);
    out.emplace_back(p, p + r.len);
  }
  reclaim(mem->id(), mem_space->id(), refs.data());
  return out;
}

Blob Dataset::read_blob(int64_t index) const { return read_blobs(index, 1).at(0); }

void Dataset::append_blobs(const std::vector<Blob>& values) {
  Guard guard;
  PATHVLM_CHECK(kind() == Kind::Blob && shape().size() == 1, where(), ": append_blobs needs a 1-D blob dataset");
  if (values.empty()) return;
  int64_t begin = grow(static_cast<int64_t>(values.size()));
  auto [file_space, mem_space] = row_selection(id(), shape(), begin, values.size(), where());
  write_blob_rows(id(), file_space->id(), mem_space->id(), values, where());
}

// ---- Group -----------------------------------------------------------------------------------------------------

bool Group::has(const std::string& path) const {
  Guard guard;
  if (path.empty() || path == "." || path == "/") return true;
  // H5Lexists fails (rather than saying no) when an intermediate link is missing, so walk the path.
  std::string prefix = path[0] == '/' ? "/" : "";
  size_t pos = prefix.size();
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    std::string part = path.substr(pos, slash - pos);
    if (!part.empty()) {
      prefix += (prefix.empty() || prefix == "/" ? "" : "/") + part;
      htri_t exists = H5Lexists(id(), prefix.c_str(), H5P_DEFAULT);
      if (exists <= 0) {
        take_error_detail();
        return false;
      }
    }
    pos = slash + 1;
  }
  return true;
}

namespace {
H5I_type_t object_type(hid_t loc, const std::string& path) {
  if (path.empty() || path == "." || path == "/") return H5I_GROUP;
  hid_t object = H5Oopen(loc, path.c_str(), H5P_DEFAULT);
  if (object < 0) {
    take_error_detail();
    return H5I_BADID;
  }
  H5I_type_t type = H5Iget_type(object);
  H5Oclose(object);
  return type;
}
}  // namespace

bool Group::has_group(const std::string& path) const {
  Guard guard;
  return has(path) && object_type(id(), path) == H5I_GROUP;
}

bool Group::has_dataset(const std::string& path) const {
  Guard guard;
  return has(path) && object_type(id(), path) == H5I_DATASET;
}

std::vector<std::string> Group::children() const {
  Guard guard;
  H5G_info_t info{};
  check(H5Gget_info(id(), &info), where(), "H5Gget_info");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t n = check(H5Lget_name_by_idx(id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT), where(),
                      "list members");
    std::string name(static_cast<size_t>(n), '\0');
    check(H5Lget_name_by_idx(id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1, H5P_DEFAULT),
          where(), "list members");
    names.push_back(std::move(name));
  }
  return names;
}

Group Group::group(const std::string& path) const {
  Guard guard;
  std::string full = join(path_, path);
  PATHVLM_CHECK(has(path), "'", file_, "': no group '", full, "'");
  PATHVLM_CHECK(has_group(path), "'", file_, "': '", full, "' is not a group");
  hid_t g = check(H5Gopen2(id(), path.c_str(), H5P_DEFAULT), str("'", file_, "': group '", full, "'"), "open");
  return Group(share(g, H5Gclose), file_, full, "group");
}

Group Group::create_group(const std::string& path) {
  Guard guard;
  std::string full = join(path_, path);
  PATHVLM_CHECK(!has(path), "'", file_, "': group '", full, "' already exists");
  const std::string at = str("'", file_, "': group '", full, "'");
  create_parent_groups(id(), path, at);
  hid_t g = check(H5Gcreate2(id(), path.c_str(), H5P_DEFAULT, group_create_plist(at)->id(), H5P_DEFAULT), at, "create");
  return Group(share(g, H5Gclose), file_, full, "group");
}

Group Group::require_group(const std::string& path) {
  Guard guard;
  return has(path) ? group(path) : create_group(path);
}

Dataset Group::dataset(const std::string& path) const {
  Guard guard;
  std::string full = join(path_, path);
  PATHVLM_CHECK(has(path), "'", file_, "': no dataset '", full, "'");
  PATHVLM_CHECK(has_dataset(path), "'", file_, "': '", full, "' is not a dataset");
  hid_t d = check(H5Dopen2(id(), path.c_str(), H5P_DEFAULT), str("'", file_, "': dataset '", full, "'"), "open");
  return Dataset(share(d, H5Dclose), file_, full, "dataset");
}

namespace {
Dataset create_dataset(const Group& group, hid_t loc, const std::string& path, hid_t type, const Layout& layout,
                       const std::string& file, const std::string& full) {
  const std::string at = str("'", file, "': dataset '", full, "'");
  PATHVLM_CHECK(!group.has(path), at, ": already exists");
  create_parent_groups(loc, path, at);
  hid_t d = check(H5Dcreate2(loc, path.c_str(), type, layout.space->id(), H5P_DEFAULT, layout.dcpl->id(), H5P_DEFAULT),
                  at, "create");
  return Dataset(share(d, H5Dclose), file, full, "dataset");
}
}  // namespace

Dataset Group::write(const std::string& path, const torch::Tensor& values, const DatasetOptions& options) {
  Guard guard;
  std::string full = join(path_, path);
  const std::string at = str("'", file_, "': dataset '", full, "'");
  PATHVLM_CHECK(values.defined(), at, ": cannot write an undefined tensor");
  torch::Tensor data = values.detach().to(torch::kCPU).contiguous();
  Owned type = type_for(data.scalar_type(), at);
  int64_t row_bytes = data.dim() > 0 && data.size(0) > 0 ? data.numel() / data.size(0) * data.element_size() : 0;
  Layout layout = make_layout(data.sizes().vec(), row_bytes, false, options, at);
  Dataset ds = create_dataset(*this, id(), path, type->id(), layout, file_, full);
  if (data.numel() > 0)
    check(H5Dwrite(ds.id(), type->id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data_ptr()), at, "write");
  return ds;
}

Dataset Group::write_strings(const std::string& path, const std::vector<std::string>& values,
                             const DatasetOptions& options) {
  Guard guard;
  std::string full = join(path_, path);
  const std::string at = str("'", file_, "': dataset '", full, "'");
  Owned type = string_type(at);
  Layout layout = make_layout({static_cast<int64_t>(values.size())}, 16, false, options, at);
  Dataset ds = create_dataset(*this, id(), path, type->id(), layout, file_, full);
  if (!values.empty()) write_string_rows(ds.id(), H5S_ALL, H5S_ALL, values, at);
  return ds;
}

Dataset Group::write_blobs(const std::string& path, const std::vector<Blob>& values, const DatasetOptions& options) {
  Guard guard;
  std::string full = join(path_, path);
  const std::string at = str("'", file_, "': dataset '", full, "'");
  Owned type = blob_type(at);
  Layout layout = make_layout({static_cast<int64_t>(values.size())}, 16, false, options, at);
  Dataset ds = create_dataset(*this, id(), path, type->id(), layout, file_, full);
  if (!values.empty()) write_blob_rows(ds.id(), H5S_ALL, H5S_ALL, values, at);
  return ds;
}

Dataset Group::create(const std::string& path, torch::ScalarType dtype, const std::vector<int64_t>& row_shape,
                      const DatasetOptions& options) {
  Guard guard;
  std::string full = join(path_, path);
  const std::string at = str("'", file_, "': dataset '", full, "'");
  Owned type = type_for(dtype, at);
  std::vector<int64_t> dims = {0};
  int64_t row_bytes = c10::elementSize(dtype);
  for (int64_t d : row_shape) {
    dims.push_back(d);
    row_bytes *= d;
  }
  Layout layout = make_layout(dims, row_bytes, true, options, at);
  return create_dataset(*this, id(), path, type->id(), layout, file_, full);
}

Dataset Group::create_contiguous(const std::string& path, torch::ScalarType dtype,
                                 const std::vector<int64_t>& shape) {
  Guard guard;
  std::string full = join(path_, path);
  const std::string at = str("'", file_, "': dataset '", full, "'");
  Owned type = type_for(dtype, at);
  Layout layout = make_layout(shape, 0, false, {}, at);
  check(H5Pset_alloc_time(layout.dcpl->id(), H5D_ALLOC_TIME_EARLY), at, "H5Pset_alloc_time");
  check(H5Pset_fill_time(layout.dcpl->id(), H5D_FILL_TIME_NEVER), at, "H5Pset_fill_time");
  return create_dataset(*this, id(), path, type->id(), layout, file_, full);
}

Dataset Group::create_strings(const std::string& path, const DatasetOptions& options) {
  Guard guard;
  std::string full = join(path_, path);
  const std::string at = str("'", file_, "': dataset '", full, "'");
  Owned type = string_type(at);
  DatasetOptions opt = options;
  if (opt.chunk.empty()) opt.chunk = {1024};
  Layout layout = make_layout({0}, 16, true, opt, at);
  return create_dataset(*this, id(), path, type->id(), layout, file_, full);
}

Dataset Group::create_blobs(const std::string& path, const DatasetOptions& options) {
  Guard guard;
  std::string full = join(path_, path);
  const std::string at = str("'", file_, "': dataset '", full, "'");
  Owned type = blob_type(at);
  DatasetOptions opt = options;
  if (opt.chunk.empty()) opt.chunk = {1024};
  Layout layout = make_layout({0}, 16, true, opt, at);
  return create_dataset(*this, id(), path, type->id(), layout, file_, full);
}

// ---- File ------------------------------------------------------------------------------------------------------

namespace {
void require_hdf5_file(const std::string& path) {
  std::error_code ec;
  PATHVLM_CHECK(std::filesystem::is_regular_file(path, ec), "'", path, "': no such file");
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    take_error_detail();
    throw Error(str("'", path, "': not an HDF5 file (no HDF5 signature)"));
  }
}
}  // namespace

File File::open(const std::string& path) {
  Guard guard;
  require_hdf5_file(path);
  hid_t f = check(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), str("'", path, "'"),
                  "open (truncated or damaged?)");
  return File(share(f, H5Fclose), path, "/", "file");
}

File File::open_rw(const std::string& path) {
  Guard guard;
  require_hdf5_file(path);
  hid_t f = check(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), str("'", path, "'"),
                  "open for writing (is it an HDF5 file? open elsewhere?)");
  return File(share(f, H5Fclose), path, "/", "file");
}

File File::create(const std::string& path) { return create(path, 0); }

File File::create(const std::string& path, int64_t userblock_bytes) {
  Guard guard;
  const std::string at = str("'", path, "'");
  Owned fcpl = own(check(H5Pcreate(H5P_FILE_CREATE), at, "H5Pcreate"), H5Pclose);
  // The root group takes its creation properties from here: no times, as for every object (HDF5 2.x writes
  // headers that store them).
  check(H5Pset_obj_track_times(fcpl->id(), 0), at, "H5Pset_obj_track_times");
  if (userblock_bytes > 0) {
    check(H5Pset_userblock(fcpl->id(), static_cast<hsize_t>(userblock_bytes)), at, "set user block");
  }
  hid_t f = check(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl->id(), H5P_DEFAULT), at, "create");
  return File(share(f, H5Fclose), path, "/", "file");
}

void File::flush() {
  Guard guard;
  check(H5Fflush(id(), H5F_SCOPE_GLOBAL), where(), "flush");
}

void File::close() {
  Guard guard;
  PATHVLM_CHECK(handle_.use_count() == 1, where(), ": cannot close: other copies of the file object exist");
  const ssize_t open = H5Fget_obj_count(id(), H5F_OBJ_DATASET | H5F_OBJ_GROUP | H5F_OBJ_DATATYPE | H5F_OBJ_ATTR);
  PATHVLM_CHECK(open == 0, where(), ": cannot close: ", open, " of its objects are still open");
  check(H5Fflush(id(), H5F_SCOPE_LOCAL), where(), "flush");
  if (handle_->close() < 0) throw Error(str(where(), ": close failed (disk full?)"));
}

int64_t open_object_count() {
  Guard guard;
  return H5Fget_obj_count(static_cast<hid_t>(H5F_OBJ_ALL), H5F_OBJ_ALL);
}

std::string dtype_name(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kUInt8: return "uint8";
    case torch::kInt8: return "int8";
    case torch::kInt16: return "int16";
    case torch::kInt32: return "int32";
    case torch::kInt64: return "int64";
    case torch::kFloat16: return "float16";
    case torch::kFloat32: return "float32";
    case torch::kFloat64: return "float64";
    case torch::kBFloat16: return "bfloat16";
    case torch::kBool: return "bool";
    default: return c10::toString(dtype);
  }
}

}  // namespace pathvlm::h5
