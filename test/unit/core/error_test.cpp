#include "kata/core/error.hpp"

#include <gtest/gtest.h>

#include <system_error>

namespace kata {
namespace {

TEST(Error, ChainReadsOuterToInner) {
  try {
    with_context("start sandbox abc", [] {
      with_context("launch qemu", [] { fail_errno(ENOENT, "exec {}", "/usr/bin/qemu-system-x86_64"); });
    });
    FAIL() << "expected a throw";
  } catch (const std::exception& e) {
    EXPECT_EQ(describe(e), "start sandbox abc: launch qemu: exec /usr/bin/qemu-system-x86_64: No such file or directory");
    EXPECT_EQ(code_of(e), Errc::not_found);
  }
}

TEST(Error, ContextIsLazy) {
  bool built = false;
  const int value = with_context([&] { built = true; return std::string("x"); }, [] { return 42; });
  EXPECT_EQ(value, 42);
  EXPECT_FALSE(built);
}

TEST(Error, InnermostCodeWins) {
  auto ptr = [] {
    try {
      with_context("outer", [] { fail(Errc::already_exists, "container {} already exists", "c1"); });
    } catch (...) {
      return std::current_exception();
    }
    return std::exception_ptr{};
  }();
  EXPECT_EQ(code_of(ptr), Errc::already_exists);
  EXPECT_EQ(describe(ptr), "outer: container c1 already exists");
}

TEST(Error, SystemErrorMapsErrno) {
  try {
    with_context("bind", [] { throw std::system_error(EACCES, std::generic_category(), "socket"); });
  } catch (const std::exception& e) {
    EXPECT_EQ(code_of(e), Errc::permission_denied);
    EXPECT_NE(describe(e).find("bind: socket"), std::string::npos);
  }
}

TEST(Error, ForeignExceptionIsUnknown) {
  try {
    with_context("parse", [] { throw std::runtime_error("boom"); });
  } catch (const std::exception& e) {
    EXPECT_EQ(code_of(e), Errc::unknown);
    EXPECT_EQ(describe(e), "parse: boom");
  }
}

}  // namespace
}  // namespace kata
