// StopStrings: the earliest occurrence of any stop string.
#include <gtest/gtest.h>

#include "generate/stop.h"
#include "test_util.h"

using namespace pathvlm;
using pathvlm::testing::error_of;

TEST(StopStrings, FindsTheEarliestOfAny) {
  generate::StopStrings stops({"###", "\nHuman:"});
  EXPECT_EQ(stops.find("no stop here"), std::string::npos);
  EXPECT_EQ(stops.find("a tumour.###Human: next"), 9u);
  EXPECT_EQ(stops.find("a\nHuman: x ###"), 1u);
  EXPECT_EQ(stops.find("##"), std::string::npos);
}

TEST(StopStrings, NoneNeverStops) {
  generate::StopStrings none;
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.find("###"), std::string::npos);
}

TEST(StopStrings, RefusesAnEmptyString) {
  EXPECT_NE(error_of([] { generate::StopStrings({"###", ""}); }).find("empty"), std::string::npos);
}
