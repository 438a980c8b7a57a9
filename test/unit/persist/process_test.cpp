#include "kata/persist/process.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "kata/core/error.hpp"

namespace kata::persist {
namespace {

TEST(ProcessIdentity, OwnProcessMatchesItsRecord) {
  const ProcessRecord self = record_process("test", ::getpid());
  EXPECT_GT(self.start_time, 0U);
  EXPECT_TRUE(is_same_process(self));
  ProcessRecord recycled = self;
  recycled.start_time += 1;  // same pid, a different life
  EXPECT_FALSE(is_same_process(recycled));
}

TEST(ProcessIdentity, ReapedProcessNoLongerMatches) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  const ProcessRecord record = record_process("sleeper", child);
  EXPECT_TRUE(is_same_process(record));
  ::kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_FALSE(is_same_process(record));
  EXPECT_EQ(process_start_time(child), std::nullopt);
  EXPECT_THROW((void)record_process("gone", child), Error);
}

TEST(ProcessIdentity, CommandNameWithParenthesesDoesNotShiftFields) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::prctl(PR_SET_NAME, "a) 1 2 3 4 5 6", 0, 0, 0);
    (void)!::write(ready[1], "x", 1);
    ::pause();
    ::_exit(0);
  }
  char byte;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  const ProcessRecord parent = record_process("parent", ::getpid());
  const ProcessRecord renamed = record_process("renamed", child);
  // The child started after us; a parser cut at the first ')' would read a small field instead.
  EXPECT_GE(renamed.start_time, parent.start_time);
  EXPECT_TRUE(is_same_process(renamed));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST(ProcessIdentity, NonPositivePidsAreNotProcesses) {
  EXPECT_EQ(process_start_time(0), std::nullopt);
  EXPECT_EQ(process_start_time(-1), std::nullopt);
}

}  // namespace
}  // namespace kata::persist
