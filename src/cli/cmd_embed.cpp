// `pathvlm embed`: tile features with a frozen encoder (CLIP image tower, ViT tile encoder or CONCH), of whole slides'
// tiles (--coords) or of the tiles in tiles shards (--tiles, an encoder's token features for the instruction trainer).
#include <chrono>
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "wsi/embed.h"
#include "wsi/embed_tiles.h"
#include "wsi/slide.h"

namespace pathvlm::cli {

int cmd_embed(const Args& args) {
  ArgParser p("pathvlm embed",
              "Encode the tiles listed by coords files (`pathvlm tile`, CLAM or TRIDENT) with a CLIP image tower, a "
              "ViT tile encoder, CONCH or CTransPath; writes <out>/features/<slide>.h5 (TRIDENT layout), "
              "<out>/shards/slides-*.h5 + manifest.json, optionally <out>/tokens/ (tile_features), and "
              "<out>/failures.csv. Resumable. With --tiles instead: the token features of every tile of tiles shards "
              "-> <out>/tokens/tiles-*.h5 + manifest.json.");
  p.option("coords", "folder of coords .h5 files (or a `pathvlm tile` output folder)");
  p.option("tiles", "tiles shards (manifest.json, its folder or one .h5) whose tiles to encode into <out>/tokens/");
  p.option("encoder", "CLIP model (HF directory, run checkpoint, export, open_clip .safetensors, or a preset: tiny, "
           "ViT-B-16, ... with fixed random weights) or ViT tile encoder as its hub directory holds it: timm's (UNI, "
           "UNI2-h, Virchow, Prov-GigaPath, H-optimus: config.json + model.safetensors) or transformers' (Phikon, "
           "Phikon-v2, Midnight: config.json + model.safetensors + preprocessor_config.json); CONCH v1 / v1.5 "
           "or CTransPath (model.safetensors converted from the published pickle)", true);
  p.option("out", "output folder", true);
  p.option("slides", "folder or CSV to find slides by id (default: the slide_path stored in each coords file)");
  p.option("reports", "CSV (slide_id, report) packed into the shards' /reports");
  p.option("config", "YAML with the embed settings (see --docs)");
  p.option("batch-size", "tiles per forward pass");
  p.option("readers", "tile reading threads");
  p.option("device", "auto, cpu, cuda or cuda:N");
  p.flag("tokens", "also write per-tile token features (tile_features shards)");
  p.standalone_flag("docs", "print every config key with its default and doc, then exit");
  p.positional("overrides", "key=value config overrides, e.g. features_dtype=float16", true, false);
  if (!p.parse(args)) return 0;
  if (p.get_flag("docs")) {
    std::cout << cfg::docs<EmbedConfig>();
    return 0;
  }
  PATHVLM_CHECK(p.has("coords") != p.has("tiles"), "pathvlm embed: give exactly one of --coords (tiles of slides) ",
                "and --tiles (tiles shards); ", p.has("coords") ? "both were given" : "neither was given");
  PATHVLM_CHECK(!p.has("tiles") || (!p.has("slides") && !p.has("reports")),
                "pathvlm embed: --slides and --reports go with --coords, not --tiles");
  PATHVLM_CHECK(p.has("tiles") || wsi::openslide_built_in(),
                "`pathvlm embed` reads tiles with OpenSlide, which this build lacks (install libopenslide-dev)");
  std::vector<std::string> overrides;
  if (p.has("batch-size")) overrides.push_back("batch_size=" + p.get("batch-size"));
  if (p.has("readers")) overrides.push_back("readers=" + p.get("readers"));
  if (p.has("device")) overrides.push_back("device=" + p.get("device"));
  if (p.get_flag("tokens")) overrides.push_back("tokens=true");
  for (const auto& o : p.positionals()) overrides.push_back(o);
  cfg::Document doc =
      p.has("config") ? cfg::Document::from_file(p.get("config")) : cfg::Document::from_string("", "<defaults>");
  doc.override_with(overrides);
  const EmbedConfig config = cfg::read<EmbedConfig>(doc);
  if (p.has("tiles")) {
    const auto encoder = wsi::load_tile_encoder(p.get("encoder"), config);
    std::cout << wsi::describe(encoder) << "\n";
    const auto report = wsi::embed_tiles({p.get("tiles"), p.get("out")}, config, encoder);
    std::cout << report.records << " tiles -> " << report.shards.size() << " tile_features shard(s), "
              << config.tokens_dtype << " tokens [" << encoder.token_shape[0] << "," << encoder.token_shape[1]
              << "] of hidden state " << encoder.token_layer << "; manifest " << report.manifest << "\n";
    return 0;
  }

  wsi::EmbedRequest request;
  request.coords = p.get("coords");
  request.out = p.get("out");
  request.slides = p.get("slides");
  request.reports = p.get("reports");
  const auto encoder = wsi::load_tile_encoder(p.get("encoder"), config);
  std::cout << wsi::describe(encoder) << "\n";

  const auto start = std::chrono::steady_clock::now();
  std::vector<wsi::SlideEntry> slides;
  auto outcomes = wsi::embed_slides(request, config, encoder, &slides);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << wsi::format_summary(slides, outcomes, seconds);
  size_t failed = 0;
  for (const auto& o : outcomes) failed += o.status == wsi::SlideOutcome::Status::Failed;
  if (failed) std::cout << failed << " slide(s) failed; reasons in " << request.out << "/failures.csv\n";
  return failed == slides.size() ? 1 : 0;
}

}  // namespace pathvlm::cli
