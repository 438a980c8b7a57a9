// Byte-exact checks of the containerd-facing messages against vectors derived by hand from the
// upstream field numbers, and against bytes captured from a real containerd 1.6 (host-lab §1c).
#include "unit/protocols/wire_bytes.hpp"

#include "cgroups/v1/metrics.pb.h"
#include "containerd/events/task.pb.h"
#include "containerd/services/events/ttrpc/v1/events.pb.h"
#include "containerd/task/v2/shim.pb.h"
#include "runtimeoptions/v1/api.pb.h"

#include <gtest/gtest.h>

namespace kata::protocols::test {
namespace {

namespace task = containerd::task::v2;

// `containerd-shim-runc-v2 delete` output captured by containerd: pid 10894, exit status 137,
// exited_at {seconds 1795356608, nanos 562060720}.
const std::string delete_response_capture = hex("08 8e55  10 8901  1a0c (08 c0ef8bd806  10 b0bb818c02)");

TEST(ShimMessages, DeleteResponseEncodesLikeContainerdsCapture) {
  task::DeleteResponse response;
  response.set_pid(10894);
  response.set_exit_status(137);
  response.mutable_exited_at()->set_seconds(1795356608);
  response.mutable_exited_at()->set_nanos(562060720);

  EXPECT_EQ(to_hex(response.SerializeAsString()), to_hex(delete_response_capture));
}

TEST(ShimMessages, DeleteResponseCaptureDecodes) {
  task::DeleteResponse response;
  ASSERT_TRUE(response.ParseFromString(delete_response_capture));
  EXPECT_EQ(response.pid(), 10894u);
  EXPECT_EQ(response.exit_status(), 137u);
  EXPECT_EQ(response.exited_at().seconds(), 1795356608);
  EXPECT_EQ(response.exited_at().nanos(), 562060720);
}

// Go's gogo code emits a non-nullable Timestamp even when it is zero; an explicitly set empty
// Timestamp must therefore produce the empty submessage, not vanish.
TEST(ShimMessages, ExplicitZeroTimestampIsEncoded) {
  task::WaitResponse response;
  response.mutable_exited_at();
  EXPECT_EQ(to_hex(response.SerializeAsString()), "1200");
}

// What CRI's `ConfigPath` puts on `start`'s stdin and into CreateTaskRequest.options:
// Any{type_url "runtimeoptions.v1.Options" (no type.googleapis.com/ prefix), value Options{config_path}}.
const std::string config_path = "/tmp/lab1/kata/configuration.toml";  // 33 bytes
const std::string runtime_options_any =
    hex("0a19") + "runtimeoptions.v1.Options" + hex("12 23 (12 21") + config_path;

TEST(ShimMessages, RuntimeOptionsAnyMatchesCriCapture) {
  ASSERT_EQ(config_path.size(), 0x21u);
  runtimeoptions::v1::Options options;
  options.set_config_path(config_path);
  google::protobuf::Any any;
  any.set_type_url("runtimeoptions.v1.Options");
  any.set_value(options.SerializeAsString());

  EXPECT_EQ(to_hex(any.SerializeAsString()), to_hex(runtime_options_any));
}

TEST(ShimMessages, CreateTaskOptionsDecodeToConfigPath) {
  task::CreateTaskRequest request;
  ASSERT_TRUE(request.ParseFromString(hex("0a02") + "k3" + hex("5240") + runtime_options_any));
  EXPECT_EQ(request.id(), "k3");
  ASSERT_TRUE(request.has_options());
  EXPECT_EQ(request.options().type_url(), "runtimeoptions.v1.Options");

  runtimeoptions::v1::Options options;
  ASSERT_TRUE(options.ParseFromString(request.options().value()));
  EXPECT_EQ(options.config_path(), config_path);
  EXPECT_TRUE(options.type_url().empty());
  EXPECT_TRUE(options.config_body().empty());
}

TEST(ShimMessages, CreateTaskRequestRootfsAndStdio) {
  task::CreateTaskRequest request;
  request.set_id("c1");
  request.set_bundle("/b");
  auto* mount = request.add_rootfs();
  mount->set_type("overlay");
  mount->set_source("overlay");
  mount->add_options("ro");
  request.set_terminal(true);
  request.set_stdout("/f");

  // rootfs is field 3 (Mount{type 1, source 2, options 4}); terminal field 4; stdout field 6.
  EXPECT_EQ(to_hex(request.SerializeAsString()),
            to_hex(hex("0a02") + "c1" + hex("1202") + "/b" + hex("1a16 (0a07") + "overlay" + hex("1207") +
                   "overlay" + hex("2202") + "ro" + hex("2001") + hex("3202") + "/f"));
}

TEST(ShimMessages, StateResponseStatusEnum) {
  task::StateResponse response;
  response.set_id("c1");
  response.set_pid(42);
  response.set_status(containerd::v1::types::STOPPED);
  response.set_exit_status(1);
  response.set_exec_id("e1");

  EXPECT_EQ(to_hex(response.SerializeAsString()),
            to_hex(hex("0a02") + "c1" + hex("182a 2003 4801 5a02") + "e1"));
}

TEST(ShimMessages, ConnectAndPidsResponses) {
  task::ConnectResponse connect;
  connect.set_shim_pid(300);
  connect.set_task_pid(301);
  EXPECT_EQ(to_hex(connect.SerializeAsString()), "08ac0210ad02");

  task::PidsResponse pids;
  pids.add_processes()->set_pid(301);
  EXPECT_EQ(to_hex(pids.SerializeAsString()), "0a0308ad02");
}

// StatsResponse.stats carries cgroup v1 Metrics; MemoryStat.usage is field 33, whose tag
// ((33 << 3) | 2 = 266) needs two bytes.
TEST(ShimMessages, StatsResponseWithCgroupMetrics) {
  io::containerd::cgroups::v1::Metrics metrics;
  metrics.mutable_pids()->set_current(3);
  metrics.mutable_pids()->set_limit(100);
  metrics.mutable_memory()->mutable_usage()->set_usage(1048576);
  const std::string metrics_bytes = hex("12 04 (0803 1064)  22 07 (8a02 04 (10 808040))");
  ASSERT_EQ(to_hex(metrics.SerializeAsString()), to_hex(metrics_bytes));

  task::StatsResponse response;
  response.mutable_stats()->set_type_url("io.containerd.cgroups.v1.Metrics");
  response.mutable_stats()->set_value(metrics.SerializeAsString());
  EXPECT_EQ(to_hex(response.SerializeAsString()),
            to_hex(hex("0a33 (0a20") + "io.containerd.cgroups.v1.Metrics" + hex("120f") + metrics_bytes));
}

// The event a shim forwards to containerd's ttRPC Events service when a process exits.
TEST(EventMessages, ForwardRequestWithTaskExit) {
  containerd::events::TaskExit exit;
  exit.set_container_id("c1");
  exit.set_id("c1");
  exit.set_pid(42);
  exit.set_exit_status(137);
  exit.mutable_exited_at()->set_seconds(1700000000);
  const std::string exit_bytes = hex("0a02") + "c1" + hex("1202") + "c1" + hex("182a 208901 2a06 (08 80e2cfaa06)");
  ASSERT_EQ(to_hex(exit.SerializeAsString()), to_hex(exit_bytes));

  containerd::services::events::ttrpc::v1::ForwardRequest request;
  auto* envelope = request.mutable_envelope();
  envelope->mutable_timestamp()->set_seconds(1700000000);
  envelope->mutable_timestamp()->set_nanos(5);
  envelope->set_namespace_("default");
  envelope->set_topic("/tasks/exit");
  envelope->mutable_event()->set_type_url("containerd.events.TaskExit");
  envelope->mutable_event()->set_value(exit.SerializeAsString());

  EXPECT_EQ(to_hex(request.SerializeAsString()),
            to_hex(hex("0a55 (0a08 (08 80e2cfaa06 1005) 1207") + "default" + hex("1a0b") + "/tasks/exit" +
                   hex("2233 (0a1a") + "containerd.events.TaskExit" + hex("1215") + exit_bytes));
}

TEST(EventMessages, TaskCreateCarriesIoAndPid) {
  containerd::events::TaskCreate create;
  create.set_container_id("c1");
  create.mutable_io()->set_stdout("/o");
  create.mutable_io()->set_terminal(true);
  create.set_pid(7);
  EXPECT_EQ(to_hex(create.SerializeAsString()),
            to_hex(hex("0a02") + "c1" + hex("2206 (1202") + "/o" + hex("2001) 3007")));
}

// A newer containerd may send fields we do not know; the lite runtime keeps them, so a message
// that is decoded and re-encoded (e.g. forwarded) loses nothing.
TEST(ShimMessages, UnknownFieldsSurviveRoundTrip) {
  const std::string with_unknown = delete_response_capture + hex("a206 03") + "new";  // field 100, bytes
  task::DeleteResponse response;
  ASSERT_TRUE(response.ParseFromString(with_unknown));
  EXPECT_EQ(response.pid(), 10894u);
  EXPECT_EQ(to_hex(response.SerializeAsString()), to_hex(with_unknown));
}

TEST(ShimMessages, TruncatedInputIsRejected) {
  task::DeleteResponse response;
  EXPECT_FALSE(response.ParseFromString(delete_response_capture.substr(0, delete_response_capture.size() - 1)));
}

}  // namespace
}  // namespace kata::protocols::test
