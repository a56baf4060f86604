// Helpers every test group shares (tests/ is on each test program's include path).
#pragma once
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"

namespace pathvlm::testing {

// The message of the pathvlm::Error `f` throws ("" and a test failure when it does not throw).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const pathvlm::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a pathvlm::Error";
  return "";
}

}  // namespace pathvlm::testing
