// shim-ctl's command line: --rootfs-mount hands the runtime the mounts a snapshotter would give.
#include "kata/shim/detail/ctl.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

namespace kata::shim::detail {
namespace {

std::optional<CtlOptions> parse(std::vector<std::string> words, int& exit_code) {
  std::vector<char*> argv;
  for (auto& word : words) argv.push_back(word.data());
  return parse_ctl_options(static_cast<int>(argv.size()), argv.data(), exit_code);
}

TEST(CtlOptions, RootfsMountsAreTypeSourceAndOptions) {
  const std::string bundle = std::filesystem::temp_directory_path().string();
  int exit_code = -1;
  auto options = parse({"shim-ctl", "--bundle", bundle, "--rootfs-mount", "ext4,/dev/loop3,rw,nouuid",
                        "--rootfs-mount", "xfs,/images/root.img"},
                       exit_code);
  ASSERT_TRUE(options.has_value());
  ASSERT_EQ(options->rootfs.size(), 2U);
  EXPECT_EQ(options->rootfs[0].type, "ext4");
  EXPECT_EQ(options->rootfs[0].source, "/dev/loop3");
  EXPECT_EQ(options->rootfs[0].options, (std::vector<std::string>{"rw", "nouuid"}));
  EXPECT_EQ(options->rootfs[1].type, "xfs");
  EXPECT_TRUE(options->rootfs[1].options.empty());

  EXPECT_TRUE(parse({"shim-ctl", "--bundle", bundle}, exit_code)->rootfs.empty());
  for (const char* bad : {"ext4", "ext4,", ",/dev/loop3", ""}) {
    exit_code = 0;
    EXPECT_FALSE(parse({"shim-ctl", "--bundle", bundle, "--rootfs-mount", bad}, exit_code).has_value()) << bad;
    EXPECT_NE(exit_code, 0) << bad;
  }
}

}  // namespace
}  // namespace kata::shim::detail
