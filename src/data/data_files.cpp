#include "data/data_files.h"

#include <glob.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"

namespace pathvlm::data {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> glob_matches(const std::string& pattern) {
  glob_t g{};
  const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  std::vector<std::string> out;
  if (rc == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  ::globfree(&g);
  std::sort(out.begin(), out.end());
  return out;
}

// ".jsonl or .txt", ".json, .jsonl or .txt"
std::string either(const std::vector<std::string>& extensions) {
  std::string out;
  for (size_t i = 0; i < extensions.size(); ++i) {
    out += (i == 0 ? "" : i + 1 == extensions.size() ? " or " : ", ") + extensions[i];
  }
  return out;
}

class FileLister {
 public:
  FileLister(const std::vector<std::string>& extensions, const std::string& what)
      : extensions_(extensions), what_(what) {}

  void add(const std::string& path, std::vector<std::string>& files) const {
    if (fs::is_directory(path)) {
      std::vector<std::string> found;
      for (const auto& e : fs::recursive_directory_iterator(path))
        if (e.is_regular_file() && accepted(e.path())) found.push_back(e.path().string());
      PATHVLM_CHECK(!found.empty(), what_, ": directory '", path, "' holds no ", either(extensions_), " file");
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
      return;
    }
    if (fs::exists(path)) {
      PATHVLM_CHECK(accepted(path), what_, ": '", path, "' is ", extensions_.size() == 2 ? "neither " : "not ",
                    extensions_.size() == 2 ? extensions_[0] + " nor " + extensions_[1] : either(extensions_));
      files.push_back(path);
      return;
    }
    const auto matches = glob_matches(path);
    PATHVLM_CHECK(!matches.empty(), what_, ": '", path, "' does not exist and matches no file");
    for (const auto& m : matches) add(m, files);
  }

 private:
  bool accepted(const fs::path& p) const {
    return std::find(extensions_.begin(), extensions_.end(), p.extension().string()) != extensions_.end();
  }

  const std::vector<std::string>& extensions_;
  const std::string& what_;
};

}  // namespace

std::vector<std::string> list_data_files(const std::vector<std::string>& paths,
                                         const std::vector<std::string>& extensions, const std::string& what) {
  FileLister lister(extensions, what);
  std::vector<std::string> files;
  for (const auto& p : paths) lister.add(p, files);
  return files;
}

std::vector<std::string> split_sources(const std::string& list, const std::string& what) {
  std::vector<std::string> out;
  for (size_t from = 0;;) {
    const size_t sep = list.find("::", from);
    out.push_back(list.substr(from, sep == std::string::npos ? std::string::npos : sep - from));
    PATHVLM_CHECK(!out.back().empty(), what, " '", list, "': an empty source (around a '::')");
    if (sep == std::string::npos) return out;
    from = sep + 2;
  }
}

}  // namespace pathvlm::data
