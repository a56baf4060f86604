// HDF5 wrappers: round trips of every supported type, appends and hyperslabs, attributes, clear errors, no leaks.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <atomic>
#include <thread>

#include "io/hdf5.h"
#include "io_test_util.h"

using pathvlm::testing::ScratchDir;
using pathvlm::testing::write_bytes;
namespace h5 = pathvlm::h5;

TEST(Hdf5, NumericRoundTripEveryDtype) {
  ScratchDir dir;
  torch::manual_seed(1);
  std::vector<std::pair<std::string, torch::Tensor>> arrays = {
      {"u8", torch::randint(0, 255, {2, 3, 4, 3}, torch::kUInt8)},
      {"i8", torch::randint(-128, 127, {5}, torch::kInt8)},
      {"i16", torch::randint(-3000, 3000, {4, 2}, torch::kInt16)},
      {"i32", torch::randint(-100000, 100000, {6}, torch::kInt32)},
      {"i64", torch::tensor(std::vector<int64_t>{int64_t(1) << 40, -3, 7})},
      {"f16", torch::randn({3, 4, 5}).to(torch::kFloat16)},
      {"f32", torch::randn({8, 2})},
      {"f64", torch::randn({2, 2}, torch::kFloat64)},
      {"scalar", torch::tensor(42, torch::kInt64)},
      {"empty", torch::zeros({0, 4})},
      {"strided", torch::randn({4, 3}).t()},
  };
  {
    auto f = h5::File::create(dir / "n.h5");
    for (const auto& [name, t] : arrays) f.write(name, t);
  }
  auto f = h5::File::open(dir / "n.h5");
  for (const auto& [name, t] : arrays) {
    SCOPED_TRACE(name);
    h5::Dataset ds = f.dataset(name);
    EXPECT_EQ(ds.kind(), h5::Dataset::Kind::Numeric);
    EXPECT_EQ(ds.dtype(), t.scalar_type());
    EXPECT_EQ(ds.shape(), t.sizes().vec());
    torch::Tensor got = ds.read();
    EXPECT_EQ(got.scalar_type(), t.scalar_type());
    EXPECT_TRUE(torch::equal(got, t));
    EXPECT_TRUE(ds.chunk().empty());
    EXPECT_FALSE(ds.extendable());
  }
  EXPECT_EQ(f.dataset("f16").dtype_name(), "float16");
  EXPECT_EQ(f.dataset("scalar").rows(), 1);
}

TEST(Hdf5, ChunkingAndCompression) {
  ScratchDir dir;
  torch::Tensor x = torch::arange(0, 4096, torch::kFloat32).reshape({256, 16});
  h5::DatasetOptions opt;
  opt.chunk = {32, 16};
  opt.gzip = 6;
  opt.shuffle = true;
  {
    auto f = h5::File::create(dir / "c.h5");
    f.write("x", x, opt);
    h5::DatasetOptions gzip_only;
    gzip_only.gzip = 1;
    EXPECT_EQ(f.write("auto", x, gzip_only).chunk(), (std::vector<int64_t>{256, 16}));  // capped at the rows
    EXPECT_EQ(f.create("rows", torch::kInt32, {}).chunk(), std::vector<int64_t>{8192});
    h5::DatasetOptions bad;
    bad.gzip = 12;
    EXPECT_ERROR_HAS(f.write("y", x, bad), "c.h5", "'/y'", "gzip level 12");
    bad = {};
    bad.chunk = {4};
    EXPECT_ERROR_HAS(f.write("z", x, bad), "'/z'", "chunk has rank 1");
    bad.gzip = 1;
    bad.chunk = {};
    EXPECT_ERROR_HAS(f.write("s", torch::tensor(1.0), bad), "scalar dataset cannot be chunked");
  }
  auto f = h5::File::open(dir / "c.h5");
  h5::Dataset ds = f.dataset("x");
  EXPECT_EQ(ds.chunk(), (std::vector<int64_t>{32, 16}));
  EXPECT_EQ(ds.gzip_level(), 6);
  EXPECT_TRUE(ds.extendable());
  EXPECT_TRUE(torch::equal(ds.read(), x));
  EXPECT_TRUE(torch::equal(ds.read_rows(100, 40), x.slice(0, 100, 140)));
  EXPECT_LT(std::filesystem::file_size(dir / "c.h5"), x.numel() * 4u);  // compressed
}

TEST(Hdf5, StringsUtf8) {
  ScratchDir dir;
  std::vector<std::string> captions = {"H&E, 20x, 0.5 µm/px", "", "日本語のキャプション", "tumour – stroma"};
  {
    auto f = h5::File::create(dir / "s.h5");
    f.write_strings("captions", captions);
    auto ids = f.create_strings("ids");
    ids.append_strings({"a", "b"});
    ids.append_strings({"c"});
    ids.append_strings({});
    EXPECT_ERROR_HAS(f.write_strings("nul", {std::string("a\0b", 3)}), "'/nul'", "string 0 contains a NUL");
  }
  auto f = h5::File::open(dir / "s.h5");
  EXPECT_EQ(f.read_strings("captions"), captions);
  EXPECT_EQ(f.dataset("captions").read_string(2), captions[2]);
  EXPECT_EQ(f.dataset("captions").read_strings(1, 2), (std::vector<std::string>{"", captions[2]}));
  EXPECT_EQ(f.dataset("captions").kind(), h5::Dataset::Kind::String);
  EXPECT_EQ(f.dataset("captions").dtype_name(), "vlen utf-8 string");
  EXPECT_EQ(f.read_strings("ids"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_ERROR_HAS(f.dataset("ids").read_string(3), "s.h5", "'/ids'", "rows [3, 4)", "3 rows");
  EXPECT_ERROR_HAS(f.dataset("ids").read(), "'/ids'", "holds strings");
}

// Files written by other tools (h5py with numpy bytes) use fixed-length strings; they read the same way.
TEST(Hdf5, FixedLengthStringsFromOtherWriters) {
  ScratchDir dir;
  const std::string path = dir / "fixed.h5";
  {
    hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, 8);
    H5Tset_strpad(type, H5T_STR_NULLPAD);
    hsize_t n = 2;
    hid_t space = H5Screate_simple(1, &n, nullptr);
    hid_t ds = H5Dcreate2(file, "names", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const char data[16] = {'s', 'l', 'i', 'd', 'e', '_', '1', 0, 'x', 0, 0, 0, 0, 0, 0, 0};
    H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    hid_t scalar = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(file, "encoder", type, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr, type, "uni_v1\0\0");
    H5Aclose(attr);
    H5Sclose(scalar);
    H5Dclose(ds);
    H5Sclose(space);
    H5Tclose(type);
    H5Fclose(file);
  }
  auto f = h5::File::open(path);
  EXPECT_EQ(f.read_strings("names"), (std::vector<std::string>{"slide_1", "x"}));
  EXPECT_EQ(f.dataset("names").dtype_name(), "fixed string[8]");
  EXPECT_EQ(f.attr_string("encoder"), "uni_v1");
}

TEST(Hdf5, BlobsWriteAppendRead) {
  ScratchDir dir;
  std::vector<h5::Blob> blobs = {{0xFF, 0xD8, 0xFF, 0xE0, 1, 2}, {}, h5::Blob(100000, 7)};
  {
    auto f = h5::File::create(dir / "b.h5");
    f.write_blobs("fixed", blobs);
    auto images = f.create_blobs("images");
    images.append_blobs({blobs[0]});
    images.append_blobs({blobs[1], blobs[2]});
    EXPECT_ERROR_HAS(f.dataset("fixed").append_blobs({blobs[0]}), "'/fixed'", "fixed size");
  }
  auto f = h5::File::open(dir / "b.h5");
  for (const char* name : {"fixed", "images"}) {
    h5::Dataset ds = f.dataset(name);
    EXPECT_EQ(ds.kind(), h5::Dataset::Kind::Blob);
    EXPECT_EQ(ds.dtype(), torch::kUInt8);
    EXPECT_EQ(ds.rows(), 3);
    EXPECT_EQ(ds.read_blob(0), blobs[0]);
    EXPECT_EQ(ds.read_blob(1), blobs[1]);
    EXPECT_EQ(ds.read_blobs(1, 2), (std::vector<h5::Blob>{blobs[1], blobs[2]}));
  }
  EXPECT_TRUE(f.dataset("images").extendable());
  EXPECT_ERROR_HAS(f.dataset("images").read_strings(), "'/images'", "expected strings");
}

TEST(Hdf5, ExtendableRowsAppendAndHyperslabs) {
  ScratchDir dir;
  torch::Tensor a = torch::arange(0, 30, torch::kInt32).reshape({3, 10});
  torch::Tensor b = torch::arange(30, 70, torch::kInt32).reshape({4, 10});
  {
    auto f = h5::File::create(dir / "e.h5");
    h5::DatasetOptions opt;
    opt.gzip = 1;
    auto tokens = f.create("tokens", torch::kInt32, {10}, opt);
    EXPECT_EQ(tokens.shape(), (std::vector<int64_t>{0, 10}));
    tokens.append(a);
    tokens.append(b);
    tokens.append(torch::zeros({0, 10}, torch::kInt32));
    EXPECT_ERROR_HAS(tokens.append(torch::zeros({2, 10}, torch::kInt64)), "'/tokens'", "cannot append int64",
                     "int32 dataset");
    EXPECT_ERROR_HAS(tokens.append(torch::zeros({2, 9}, torch::kInt32)), "'/tokens'", "shape [2, 9]");
    auto fixed = f.write("fixed", torch::zeros({2, 10}, torch::kInt32));
    EXPECT_ERROR_HAS(fixed.append(a), "'/fixed'", "fixed size");
    f.flush();
  }
  auto f = h5::File::open(dir / "e.h5");
  h5::Dataset tokens = f.dataset("tokens");
  EXPECT_EQ(tokens.rows(), 7);
  EXPECT_TRUE(torch::equal(tokens.read(), torch::cat({a, b})));
  EXPECT_TRUE(torch::equal(tokens.read_rows(2, 3), torch::cat({a, b}).slice(0, 2, 5)));
  EXPECT_EQ(tokens.read_rows(7, 0).size(0), 0);
  torch::Tensor out = torch::empty({2, 10}, torch::kInt32);
  tokens.read_rows_into(5, out);
  EXPECT_TRUE(torch::equal(out, b.slice(0, 2, 4)));
  torch::Tensor wrong = torch::empty({2, 10}, torch::kInt64);
  EXPECT_ERROR_HAS(tokens.read_rows_into(0, wrong), "'/tokens'", "contiguous CPU int32");
  EXPECT_ERROR_HAS(tokens.read_rows(6, 2), "e.h5", "'/tokens'", "rows [6, 8)", "7 rows");
  EXPECT_ERROR_HAS(tokens.read_rows(-1, 1), "rows [-1, 0)");
}

TEST(Hdf5, RowListReadsOnlyTheListedRows) {
  ScratchDir dir;
  torch::manual_seed(4);
  torch::Tensor values = torch::randn({50, 6}).to(torch::kHalf);
  torch::Tensor coords = torch::arange(0, 100, torch::kInt64).reshape({50, 2});
  {
    auto f = h5::File::create(dir / "r.h5");
    h5::DatasetOptions one_row;  // TRIDENT's (1, D) chunks
    one_row.chunk = {1, 6};
    f.write("features", values, one_row);
    f.write("coords", coords);  // contiguous
    f.write("empty", torch::zeros({0, 3}));
    f.write("scalar", torch::tensor(1.5));
  }
  auto f = h5::File::open(dir / "r.h5");
  // Runs of several rows, single rows, the first and the last row.
  const std::vector<int64_t> rows = {0, 1, 2, 7, 20, 21, 33, 48, 49};
  auto index = torch::tensor(rows);
  torch::Tensor got = f.dataset("features").read_row_list(rows);
  EXPECT_EQ(got.scalar_type(), torch::kHalf);
  EXPECT_TRUE(torch::equal(got, values.index_select(0, index)));
  EXPECT_TRUE(torch::equal(f.dataset("coords").read_row_list(rows), coords.index_select(0, index)));
  EXPECT_TRUE(torch::equal(f.dataset("coords").read_row_list({17}), coords.slice(0, 17, 18)));
  std::vector<int64_t> all(50);
  for (int64_t i = 0; i < 50; ++i) all[i] = i;
  EXPECT_TRUE(torch::equal(f.dataset("features").read_row_list(all), values));
  EXPECT_EQ(f.dataset("features").read_row_list({}).sizes(), (c10::IntArrayRef{0, 6}));
  EXPECT_EQ(f.dataset("empty").read_row_list({}).sizes(), (c10::IntArrayRef{0, 3}));

  EXPECT_ERROR_HAS(f.dataset("features").read_row_list({3, 2}), "r.h5", "'/features'", "strictly increasing",
                   "3 then 2");
  EXPECT_ERROR_HAS(f.dataset("features").read_row_list({4, 4}), "strictly increasing");
  EXPECT_ERROR_HAS(f.dataset("features").read_row_list({49, 50}), "'/features'", "row 50", "50 rows");
  EXPECT_ERROR_HAS(f.dataset("features").read_row_list({-1}), "row -1");
  EXPECT_ERROR_HAS(f.dataset("scalar").read_row_list({0}), "'/scalar'", "scalar dataset has no rows");
}

TEST(Hdf5, Attributes) {
  ScratchDir dir;
  {
    auto f = h5::File::create(dir / "a.h5");
    f.set_attr("pathvlm_schema", "tiles/1");
    f.set_attr("count", 12);
    auto g = f.create_group("slides/s1");
    g.set_attr("mpp", 0.25);
    g.set_attr("encoder", std::string("conch_v1"));
    g.set_attr("patch_size", int64_t(256));
    g.set_attr("patch_size", int64_t(512));  // replaces
    auto ds = g.write("coords", torch::zeros({2, 2}, torch::kInt64));
    ds.set_attr("note", "level-0 x,y");
  }
  auto f = h5::File::open(dir / "a.h5");
  EXPECT_EQ(f.attr_string("pathvlm_schema"), "tiles/1");
  EXPECT_EQ(f.attr_int("count"), 12);
  EXPECT_DOUBLE_EQ(f.attr_double("count"), 12.0);
  auto g = f.group("slides/s1");
  EXPECT_DOUBLE_EQ(g.attr_double("mpp"), 0.25);
  EXPECT_EQ(g.attr_int("patch_size"), 512);
  EXPECT_EQ(g.attr_string("encoder"), "conch_v1");
  EXPECT_EQ(g.attr_names(), (std::vector<std::string>{"encoder", "mpp", "patch_size"}));
  EXPECT_TRUE(g.has_attr("mpp"));
  EXPECT_FALSE(g.has_attr("magnification"));
  EXPECT_EQ(g.dataset("coords").attr_string("note"), "level-0 x,y");
  EXPECT_ERROR_HAS(g.attr_double("magnification"), "a.h5", "group '/slides/s1'", "no attribute 'magnification'");
  EXPECT_ERROR_HAS(g.attr_int("mpp"), "attribute 'mpp' is not an integer");
  EXPECT_ERROR_HAS(g.attr_string("mpp"), "attribute 'mpp' is not a string");
  EXPECT_ERROR_HAS(f.attr_double("pathvlm_schema"), "'pathvlm_schema' is not a number");
}

TEST(Hdf5, GroupsAndPaths) {
  ScratchDir dir;
  auto f = h5::File::create(dir / "g.h5");
  auto s = f.create_group("slides/b");
  f.require_group("slides/a");
  f.require_group("slides/a");
  s.write("features", torch::zeros({3, 4}));
  f.write("reports/text/deep", torch::zeros({1}));  // intermediate groups are created
  EXPECT_TRUE(f.has("slides/b/features"));
  EXPECT_TRUE(f.has("/slides/b/features"));
  EXPECT_FALSE(f.has("slides/c/features"));
  EXPECT_FALSE(f.has("slides/b/features/x"));
  EXPECT_TRUE(f.has_group("slides"));
  EXPECT_FALSE(f.has_group("slides/b/features"));
  EXPECT_TRUE(f.has_dataset("slides/b/features"));
  EXPECT_FALSE(f.has_dataset("slides"));
  EXPECT_EQ(f.group("slides").children(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(f.children(), (std::vector<std::string>{"reports", "slides"}));
  EXPECT_EQ(s.dataset("features").path(), "/slides/b/features");
  EXPECT_EQ(f.group("slides").group("a").path(), "/slides/a");
  EXPECT_ERROR_HAS(f.create_group("slides/a"), "g.h5", "group '/slides/a' already exists");
  EXPECT_ERROR_HAS(f.write("slides/b/features", torch::zeros(1)), "'/slides/b/features'", "already exists");
  EXPECT_ERROR_HAS(f.group("nope"), "g.h5", "no group '/nope'");
  EXPECT_ERROR_HAS(f.group("slides/b/features"), "'/slides/b/features' is not a group");
}

// Resumable jobs compare and skip finished files, and users checksum them: the same content must give the same
// bytes whenever it is written. HDF5 keeps object times to the second unless told not to, per object kind.
TEST(Hdf5, SameContentWrittenAtAnotherTimeHasTheSameBytes) {
  ScratchDir dir;
  // Each object kind is told on its own (the root group through the file's creation properties), groups made on
  // the way too. HDF5 before 2.0 writes headers without room for times, so there only the properties show it
  // (asked of the writer's handles: a reader, and H5Gget_create_plist, are told the default).
  auto tracks_times = [](hid_t plist) {
    hbool_t track = 1;
    EXPECT_GE(H5Pget_obj_track_times(plist, &track), 0);
    H5Pclose(plist);
    return track != 0;
  };
  auto write = [&](const std::string& name) {
    auto f = h5::File::create(dir / name);
    f.set_attr("schema", "test/1");
    auto g = f.create_group("slides/s1");
    auto coords = g.write("coords", torch::arange(8, torch::kInt64).reshape({4, 2}));
    auto features = g.create("features", torch::kFloat32, {3}, {.chunk = {2, 3}});
    features.append(torch::ones({5, 3}));
    g.write_strings("ids", {"a", "b"});
    f.write("reports/text/deep", torch::zeros({1}));
    EXPECT_FALSE(tracks_times(H5Fget_create_plist(static_cast<hid_t>(f.id()))));
    EXPECT_FALSE(tracks_times(H5Dget_create_plist(static_cast<hid_t>(coords.id()))));
    EXPECT_FALSE(tracks_times(H5Dget_create_plist(static_cast<hid_t>(features.id()))));
  };
  write("first.h5");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // HDF5 keeps times to the second
  write("second.h5");
  EXPECT_TRUE(pathvlm::testing::read_bytes(dir / "first.h5") == pathvlm::testing::read_bytes(dir / "second.h5"));
}

TEST(Hdf5, MissingDatasetAndWrongDtypeNameFileAndPath) {
  ScratchDir dir;
  {
    auto f = h5::File::create(dir / "x.h5");
    f.write("features", torch::zeros({2, 3}, torch::kInt32));
  }
  auto f = h5::File::open(dir / "x.h5");
  EXPECT_ERROR_HAS(f.dataset("captions"), "x.h5", "no dataset '/captions'");
  EXPECT_ERROR_HAS(f.read("features", torch::kFloat16), "x.h5", "dataset '/features'", "dtype int32",
                   "expected float16");
  EXPECT_ERROR_HAS(f.write("new", torch::zeros(1)), "x.h5", "'/new'", "create failed");  // read-only file
  EXPECT_ERROR_HAS(h5::File::open(dir / "absent.h5"), "absent.h5", "no such file");
  write_bytes(dir / "text.h5", "not hdf5 at all");
  EXPECT_ERROR_HAS(h5::File::open(dir / "text.h5"), "text.h5", "not an HDF5 file");
  std::string bytes = pathvlm::testing::read_bytes(dir / "x.h5");
  write_bytes(dir / "cut.h5", bytes.substr(0, bytes.size() / 3));
  EXPECT_ERROR_HAS(
      {
        auto cut = h5::File::open(dir / "cut.h5");
        cut.read("features");
      },
      "cut.h5");
  EXPECT_ERROR_HAS(h5::File::create(dir / "no/such/dir/y.h5"), "y.h5", "create failed");
}

// Every identifier is closed when its last owner goes away, on success and on error paths alike.
TEST(Hdf5, NoHandleLeaks) {
  ScratchDir dir;
  EXPECT_EQ(h5::open_object_count(), 0);
  {
    auto f = h5::File::create(dir / "l.h5");
    auto g = f.create_group("g");
    auto ds = g.write("x", torch::ones({4, 4}));
    auto strings = f.create_strings("s");
    strings.append_strings({"a", "b"});
    auto blobs = f.create_blobs("b");
    blobs.append_blobs({{1, 2, 3}});
    f.set_attr("k", "v");
    EXPECT_GE(h5::open_object_count(), 5);  // file, group, 3 datasets
    EXPECT_THROW(f.dataset("nope"), pathvlm::Error);
    EXPECT_THROW(ds.read_rows(3, 5), pathvlm::Error);
    EXPECT_THROW(f.attr_int("k"), pathvlm::Error);
  }
  EXPECT_EQ(h5::open_object_count(), 0);
  {
    auto f = h5::File::open(dir / "l.h5");
    f.group("g").dataset("x").read();
    f.dataset("s").read_strings();
    f.dataset("b").read_blob(0);
    f.attr_string("k");
    f.attr_names();
    f.children();
    f.dataset("g/x").chunk();
    f.dataset("g/x").gzip_level();
    EXPECT_THROW(f.group("g").dataset("x").read(torch::kInt64), pathvlm::Error);
    EXPECT_THROW(h5::File::open(dir / "missing.h5"), pathvlm::Error);
  }
  EXPECT_EQ(h5::open_object_count(), 0);
}

TEST(Hdf5, ConcurrentReadersAreSafe) {
  ScratchDir dir;
  torch::Tensor x = torch::randn({64, 32});
  {
    auto f = h5::File::create(dir / "t.h5");
    f.write("x", x);
    f.write_strings("ids", std::vector<std::string>(64, "tile"));
  }
  auto f = h5::File::open(dir / "t.h5");
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        int64_t row = (t * 50 + i) % 60;
        if (!torch::equal(f.dataset("x").read_rows(row, 4), x.slice(0, row, row + 4))) ++mismatches;
        if (f.dataset("ids").read_string(row) != "tile") ++mismatches;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}
