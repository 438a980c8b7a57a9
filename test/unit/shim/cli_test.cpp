#include "kata/shim/cli.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kata/core/error.hpp"
#include "kata/persist/file.hpp"

namespace kata::shim {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

Arguments parse(std::vector<std::string_view> words) { return parse_arguments(words); }

std::string parse_error(std::vector<std::string_view> words) {
  try {
    (void)parse(words);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
    return describe(e);
  }
  return "no error";
}

TEST(ShimArguments, WhatContainerdPassesAtStart) {
  const Arguments a = parse({"-namespace", "default", "-address", "/run/containerd/containerd.sock", "-publish-binary",
                             "/usr/bin/containerd", "-id", "k3", "-debug", "start"});
  EXPECT_EQ(a.namespace_name, "default");
  EXPECT_EQ(a.address, "/run/containerd/containerd.sock");
  EXPECT_EQ(a.publish_binary, "/usr/bin/containerd");
  EXPECT_EQ(a.id, "k3");
  EXPECT_TRUE(a.debug);
  EXPECT_EQ(a.action, Action::start);
  EXPECT_TRUE(a.bundle.empty());
}

TEST(ShimArguments, WhatContainerdPassesAtDelete) {
  const Arguments a = parse({"-namespace", "k8s.io", "-address", "/run/containerd/containerd.sock", "-publish-binary",
                             "/usr/bin/containerd", "-id", "k3", "-bundle", "/run/containerd/io.containerd.runtime.v2.task/k8s.io/k3",
                             "delete"});
  EXPECT_EQ(a.action, Action::delete_);
  EXPECT_EQ(a.bundle, "/run/containerd/io.containerd.runtime.v2.task/k8s.io/k3");
  EXPECT_FALSE(a.debug);
}

TEST(ShimArguments, AllGoFlagSpellings) {
  const Arguments a = parse({"--namespace=ns1", "-id=abc", "--address", "/a.sock", "-publish-binary=/bin/ctd",
                             "--debug=false", "-info"});
  EXPECT_EQ(a.namespace_name, "ns1");
  EXPECT_EQ(a.id, "abc");
  EXPECT_EQ(a.address, "/a.sock");
  EXPECT_EQ(a.publish_binary, "/bin/ctd");
  EXPECT_FALSE(a.debug);
  EXPECT_TRUE(a.info);
  EXPECT_EQ(a.action, Action::serve);
  EXPECT_TRUE(parse({"-v"}).version);
  EXPECT_TRUE(parse({"--version"}).version);
  EXPECT_TRUE(parse({"-debug=1"}).debug);
  EXPECT_TRUE(parse({"-debug=True"}).debug);
  EXPECT_EQ(parse({"-address="}).address, "");
  EXPECT_EQ(parse({"-id", "x1", "--", "delete"}).action, Action::delete_);
  EXPECT_EQ(parse({"-address", "-weird-but-a-value"}).address, "-weird-but-a-value");
}

TEST(ShimArguments, BadCommandLinesNameTheFlag) {
  EXPECT_EQ(parse_error({"-socket", "x"}), "flag provided but not defined: -socket");
  EXPECT_EQ(parse_error({"-id"}), "flag needs an argument: -id");
  EXPECT_EQ(parse_error({"-debug=maybe"}), "invalid boolean value \"maybe\" for -debug");
  EXPECT_EQ(parse_error({"-id", "a1", "stop"}), "unknown action \"stop\": expected start or delete");
  EXPECT_EQ(parse_error({"-id", "a1", "start", "now"}), "unexpected argument \"now\" after start");
  EXPECT_EQ(parse_error({"---id", "x"}), "bad flag syntax: ---id");
  EXPECT_EQ(parse_error({"-=x"}), "bad flag syntax: -=x");
}

class ShimValidate : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "kata-test-shim-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    good_.id = "default_id";
    good_.namespace_name = "default_namespace";
    good_.address = "/run/containerd/containerd.sock";
    good_.publish_binary = "containerd";
    good_.bundle = dir_.string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string error(Arguments a, bool require_bundle) {
    try {
      validate(a, require_bundle);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Errc::invalid_argument);
      return describe(e);
    }
    return "no error";
  }

  fs::path dir_;
  Arguments good_;
};

TEST_F(ShimValidate, UpstreamTable) {
  EXPECT_EQ(error(good_, false), "no error");
  EXPECT_EQ(error(good_, true), "no error");
  auto with = [&](auto change) {
    Arguments a = good_;
    change(a);
    return a;
  };
  EXPECT_EQ(error(with([](Arguments& a) { a.namespace_name.clear(); }), false), "-namespace is required");
  EXPECT_EQ(error(with([](Arguments& a) { a.id.clear(); }), false), "-id is required");
  EXPECT_EQ(error(with([](Arguments& a) { a.publish_binary.clear(); }), false), "-publish-binary is required");
  EXPECT_EQ(error(with([](Arguments& a) { a.address.clear(); }), true), "no error");  // allowed upstream
  EXPECT_EQ(error(with([](Arguments& a) { a.bundle.clear(); }), false), "no error");
  EXPECT_EQ(error(with([](Arguments& a) { a.bundle.clear(); }), true), "-bundle is required for delete");
  EXPECT_THAT(error(with([](Arguments& a) { a.namespace_name = "id1/id2"; }), true),
              HasSubstr("-namespace: invalid ID \"id1/id2\""));
  EXPECT_THAT(error(with([](Arguments& a) { a.namespace_name = "ns id2"; }), true), HasSubstr("-namespace: invalid ID"));
  EXPECT_THAT(error(with([](Arguments& a) { a.namespace_name = "ns\tid2"; }), true), HasSubstr("-namespace: invalid ID"));
  EXPECT_THAT(error(with([](Arguments& a) { a.id = "../etc"; }), false), HasSubstr("-id: invalid ID \"../etc\""));
}

TEST_F(ShimValidate, BundleMustBeAnExistingDirectoryAndIsCanonicalised) {
  fs::create_directory(dir_ / "real");
  fs::create_directory_symlink(dir_ / "real", dir_ / "link");
  Arguments a = good_;
  a.bundle = (dir_ / "link" / ".").string();
  validate(a, true);
  EXPECT_EQ(a.bundle, fs::canonical(dir_ / "real").string());

  std::ofstream(dir_ / "file") << "x";
  a.bundle = (dir_ / "file").string();
  EXPECT_EQ(error(a, true), "-bundle " + a.bundle + ": not a directory");
  a.bundle = (dir_ / "missing").string();
  EXPECT_THAT(error(a, true), HasSubstr("-bundle " + a.bundle + ": No such file or directory"));
}

// An independent SHA-256: coreutils' sha256sum.
std::string sha256sum(const std::string& text) {
  char file[] = "/tmp/kata-test-sha-XXXXXX";
  const int fd = ::mkstemp(file);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
  std::string command = std::string("sha256sum ") + file;
  FILE* pipe = ::popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  char out[65] = {};
  EXPECT_EQ(std::fread(out, 1, 64, pipe), 64U);
  ::pclose(pipe);
  ::unlink(file);
  return std::string(out, 64);
}

TEST(ShimAddress, Sha256KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ShimAddress, MatchesAnIndependentComputation) {
  const std::string containerd = "/run/containerd/containerd.sock";
  const std::string expected = "unix:///run/containerd/s/" + sha256sum(containerd + "/k8s.io/sandbox-1");
  EXPECT_EQ(socket_address(containerd, "k8s.io", "sandbox-1"), expected);
  EXPECT_EQ(socket_path_of(expected), fs::path("/run/containerd/s") / sha256sum(containerd + "/k8s.io/sandbox-1"));
}

TEST(ShimAddress, DependsOnEveryPartAndHonoursTheSocketDir) {
  const auto base = socket_address("/a.sock", "ns", "id1");
  EXPECT_NE(socket_address("/b.sock", "ns", "id1"), base);
  EXPECT_NE(socket_address("/a.sock", "ns2", "id1"), base);
  EXPECT_NE(socket_address("/a.sock", "ns", "id2"), base);
  EXPECT_EQ(socket_address("/a.sock", "ns", "id1"), base);
  const fs::path custom = socket_path("/a.sock", "ns", "id1", "/tmp/kata-test-s");
  EXPECT_EQ(custom.parent_path(), "/tmp/kata-test-s");
  EXPECT_EQ(custom.filename().string().size(), 64U);
  EXPECT_LT(socket_path("/run/containerd/containerd.sock", "k8s.io", std::string(64, 'f')).string().size(), 108U);
  EXPECT_THROW((void)socket_path_of("ttrpc+vsock://3:1024"), Error);
  EXPECT_THROW((void)socket_path_of("unix://"), Error);
}

TEST_F(ShimValidate, BundleFilesAreWrittenWhole) {
  const std::string address = socket_address("/run/containerd/containerd.sock", "default", "k3");
  write_address_file(dir_, address);
  write_pid_file(dir_, 20883);
  EXPECT_EQ(persist::read_file_if_exists(dir_ / "address"), address);
  EXPECT_EQ(persist::read_file_if_exists(dir_ / "shim.pid"), "20883");
  EXPECT_EQ(read_pid_file(dir_), 20883);
  write_pid_file(dir_, 42);  // replaced, not appended
  EXPECT_EQ(read_pid_file(dir_), 42);
  fs::remove(dir_ / "shim.pid");
  EXPECT_EQ(read_pid_file(dir_), 0);
  std::ofstream(dir_ / "shim.pid") << "12abc";
  EXPECT_THROW((void)read_pid_file(dir_), Error);
  EXPECT_THROW(write_address_file(dir_ / "missing", address), Error);
}

}  // namespace
}  // namespace kata::shim
