#include <gtest/gtest.h>

#include "cli/args.h"
#include "core/error.h"

using pathvlm::cli::ArgParser;

TEST(ArgParser, OptionsListsFlagsAndPositionals) {
  ArgParser p("pathvlm x", "test");
  p.option("model", "model dir", true);
  p.option("context", "context length", false, "77");
  p.list("images", "image files");
  p.flag("normalize", "normalise");
  p.positional("out", "output file");
  ASSERT_TRUE(p.parse({"--model", "m", "--images", "a.png", "b.png", "--normalize", "o.st"}));
  EXPECT_EQ(p.get("model"), "m");
  EXPECT_EQ(p.get_int("context"), 77);
  EXPECT_EQ(p.get_list("images"), (std::vector<std::string>{"a.png", "b.png"}));
  EXPECT_TRUE(p.get_flag("normalize"));
  EXPECT_EQ(p.positionals(), std::vector<std::string>{"o.st"});
}

TEST(ArgParser, ErrorsNameTheOption) {
  ArgParser p("pathvlm x", "test");
  p.option("model", "model dir", true);
  try {
    p.parse({"--modle", "m"});
    FAIL();
  } catch (const pathvlm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("--modle"), std::string::npos);
  }
  ArgParser q("pathvlm x", "test");
  q.option("model", "model dir", true);
  EXPECT_THROW(q.parse({}), pathvlm::Error);
}
