#include <iostream>

#include <pathvlm/build_info.h>

#include "cli/args.h"
#include "cli/commands.h"

namespace pathvlm::cli {

int cmd_version(const Args& args) {
  ArgParser parser("pathvlm version", "Print the version and what this binary was built with.");
  if (!parser.parse(args)) return 0;
  auto yes_no = [](bool b) { return b ? "yes" : "no"; };
  std::cout << "pathvlm " << build::kVersion << " (" << build::kBuildType << ", " << build::kCompiler << ")\n"
            << "  libtorch   " << build::kTorchVersion << "\n"
            << "  cuda       " << yes_no(build::kHaveCuda) << "\n"
            << "  nccl       " << yes_no(build::kHaveNccl) << "\n"
            << "  openslide  " << yes_no(build::kHaveOpenSlide) << "\n"
            << "  opencv     " << yes_no(build::kHaveOpenCV) << "\n"
            << "  libtiff    " << yes_no(build::kHaveLibTiff) << "\n"
            << "  libwebp    " << yes_no(build::kHaveLibWebp) << "\n"
            << "  openjpeg   " << yes_no(build::kHaveOpenJpeg) << "\n";
  return 0;
}

}  // namespace pathvlm::cli
