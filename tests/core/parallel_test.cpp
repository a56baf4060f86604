// for_each_index: every index exactly once whatever the thread count, and the first failure stops what has not
// started and reaches the caller after every thread has ended.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/parallel.h"

using namespace pathvlm;

TEST(ForEachIndex, EveryIndexOnceOnAnyThreadCount) {
  for (int threads : {0, 1, 2, 7, 100}) {
    for (size_t count : {size_t(0), size_t(1), size_t(5), size_t(1000)}) {
      std::vector<std::atomic<int>> seen(count);
      for_each_index(count, threads, [&](size_t i) { seen[i]++; });
      for (size_t i = 0; i < count; ++i) ASSERT_EQ(seen[i].load(), 1) << "index " << i << ", threads " << threads;
    }
  }
}

TEST(ForEachIndex, RunsOnSeveralThreads) {
  std::atomic<int> inside{0}, most{0};
  for_each_index(8, 4, [&](size_t) {
    const int now = ++inside;
    for (int seen = most.load(); now > seen && !most.compare_exchange_weak(seen, now);) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    --inside;
  });
  EXPECT_GT(most.load(), 1);
}

TEST(ForEachIndex, FirstFailureStopsTheRestAndReachesTheCaller) {
  std::atomic<int> done{0};
  try {
    for_each_index(10000, 2, [&](size_t i) {
      if (i == 3) throw std::runtime_error("index 3 failed");
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      ++done;
    });
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "index 3 failed");
  }
  EXPECT_LT(done.load(), 100) << "indices kept starting after the failure";
}
