#include "kata/persist/id.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kata/core/error.hpp"

namespace kata::persist {
namespace {

// Upstream's table (kata-sys-util validate.rs) plus a few of our own.
TEST(VerifyId, RejectsWhatCouldEscapeOrHide) {
  for (const char* id : {"", " ", ".", "-", "_", " a", ".a", "-a", "_a", "..", "a", "Z", "0", "-1", "/", "a/",
                         "a/../", "../a", "../../a", "foo/../bar", "foo bar", "hello/../world", "/a/b/c", "a/b/c",
                         "foo/../../../etc/passwd", "/etc/passwd", ".#cdscd.", "..3", "a\tb", "a\nb", "caf\xc3\xa9"}) {
    EXPECT_FALSE(is_valid_id(id)) << '"' << id << '"';
    EXPECT_THROW(verify_id(id), Error) << '"' << id << '"';
  }
}

TEST(VerifyId, AcceptsContainerdIds) {
  for (const char* id : {"a.", "a..", "aa", "aa.", "hello..world", "aAzZ0123456789_.-", "k8s.io",
                         "0123456789abcdefghijklmnopqrstuvwxyz.-_",
                         "4a8d3c1b2e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"}) {
    EXPECT_TRUE(is_valid_id(id)) << id;
    EXPECT_NO_THROW(verify_id(id)) << id;
  }
}

TEST(VerifyId, ErrorNamesTheIdAndTheRule) {
  try {
    verify_id("../x");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
    EXPECT_THAT(e.what(), ::testing::HasSubstr("\"../x\""));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("[a-zA-Z0-9_.-]"));
  }
}

}  // namespace
}  // namespace kata::persist
