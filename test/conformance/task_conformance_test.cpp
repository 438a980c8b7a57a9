// Our generated containerd stubs against containerd 1.6's own generated Go code:
//   - containerd's Go task client (taskpeer check-task) drives a C++ containerd.task.v2.Task
//     served through the generated register_service(); the fake checks every request field and
//     answers the script both files agree on;
//   - our generated EventsClient forwards TaskCreate/Start/Exit/Delete/OOM envelopes to
//     containerd's Go events service (taskpeer serve-events), which decodes them.
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cgroups/v1/metrics.pb.h"
#include "conformance/go_peer.hpp"
#include "containerd/events/task.pb.h"
#include "containerd/services/events/ttrpc/v1/events.ttrpc.pb.h"
#include "containerd/task/v2/shim.ttrpc.pb.h"
#include "kata/core/error.hpp"
#include "kata/ttrpc/client.hpp"
#include "kata/ttrpc/server.hpp"
#include "runtimeoptions/v1/api.pb.h"

namespace kata::conformance {
namespace {

namespace task = containerd::task::v2;
using ttrpc::CallContext;

constexpr std::uint32_t shim_pid = 4242;
constexpr std::uint32_t task_pid = 4343;
constexpr std::int64_t exited_seconds = 1700000000;
constexpr std::int32_t exited_nanos = 5;
constexpr std::string_view bundle = "/run/containerd/io.containerd.runtime.v2.task/default/c1";

/// Refuses a request that is not exactly what the Go script sends, naming the field.
void require(bool condition, std::string_view what) {
  if (!condition) fail(Errc::invalid_argument, "unexpected {}", what);
}

void set_exited_at(google::protobuf::Timestamp* timestamp) {
  timestamp->set_seconds(exited_seconds);
  timestamp->set_nanos(exited_nanos);
}

// The shim side of the exchange in go/src/katatest/taskpeer (checkTask).
class ScriptedTask final : public task::Task {
 public:
  std::vector<std::string> calls;

  kata::Task<task::StateResponse> state(const task::StateRequest& request, const CallContext& context) override {
    record("State", context);
    if (request.id() != "c1") fail(Errc::not_found, "container {}: not found", request.id());
    task::StateResponse response;
    response.set_id("c1");
    response.set_bundle(std::string(bundle));
    response.set_pid(task_pid);
    response.set_status(containerd::v1::types::RUNNING);
    response.set_stdin("/run/containerd/fifo/1/c1-stdin");
    response.set_stdout("/run/containerd/fifo/1/c1-stdout");
    response.set_terminal(true);
    response.mutable_exited_at();  // gogo's non-nullable timestamp: always present
    co_return response;
  }

  kata::Task<task::CreateTaskResponse> create(const task::CreateTaskRequest& request,
                                              const CallContext& context) override {
    record("Create", context);
    require(request.id() == "c1", "id");
    require(request.bundle() == bundle, "bundle");
    require(request.rootfs_size() == 1, "rootfs count");
    const auto& mount = request.rootfs(0);
    require(mount.type() == "overlay" && mount.source() == "overlay" && mount.target().empty(), "rootfs mount");
    require(mount.options_size() == 2 && mount.options(0) == "lowerdir=/l" && mount.options(1) == "upperdir=/u",
            "rootfs options");
    require(request.terminal(), "terminal");
    require(request.stdin() == "/run/containerd/fifo/1/c1-stdin", "stdin");
    require(request.stdout() == "/run/containerd/fifo/1/c1-stdout", "stdout");
    require(request.stderr().empty() && request.checkpoint().empty(), "stderr/checkpoint");
    require(request.options().type_url() == "runtimeoptions.v1.Options", "options type_url");
    runtimeoptions::v1::Options options;
    require(options.ParseFromString(request.options().value()), "options encoding");
    require(options.config_path() == "/etc/kata-containers/configuration.toml", "config_path");
    task::CreateTaskResponse response;
    response.set_pid(task_pid);
    co_return response;
  }

  kata::Task<task::StartResponse> start(const task::StartRequest& request, const CallContext& context) override {
    record("Start", context);
    require(request.id() == "c1" && request.exec_id().empty(), "start target");
    task::StartResponse response;
    response.set_pid(task_pid);
    co_return response;
  }

  kata::Task<task::DeleteResponse> delete_(const task::DeleteRequest& request, const CallContext& context) override {
    record("Delete", context);
    require(request.id() == "c1", "delete target");
    task::DeleteResponse response;
    response.set_pid(task_pid);
    response.set_exit_status(137);
    set_exited_at(response.mutable_exited_at());
    co_return response;
  }

  kata::Task<task::PidsResponse> pids(const task::PidsRequest& request, const CallContext& context) override {
    record("Pids", context);
    require(request.id() == "c1", "pids target");
    task::PidsResponse response;
    response.add_processes()->set_pid(task_pid);
    co_return response;
  }

  kata::Task<google::protobuf::Empty> pause(const task::PauseRequest& request, const CallContext& context) override {
    record("Pause", context);
    require(request.id() == "c1", "pause target");
    co_return google::protobuf::Empty();
  }

  kata::Task<google::protobuf::Empty> resume(const task::ResumeRequest& request, const CallContext& context) override {
    record("Resume", context);
    require(request.id() == "c1", "resume target");
    co_return google::protobuf::Empty();
  }

  kata::Task<google::protobuf::Empty> checkpoint(const task::CheckpointTaskRequest&, const CallContext& context) override {
    record("Checkpoint", context);
    fail(Errc::not_supported, "checkpoint is not supported");
    co_return google::protobuf::Empty();
  }

  kata::Task<google::protobuf::Empty> kill(const task::KillRequest& request, const CallContext& context) override {
    record("Kill", context);
    require(request.id() == "c1" && request.exec_id().empty(), "kill target");
    require(request.signal() == 9 && request.all(), "kill signal/all");
    co_return google::protobuf::Empty();
  }

  kata::Task<google::protobuf::Empty> exec(const task::ExecProcessRequest& request, const CallContext& context) override {
    record("Exec", context);
    require(request.id() == "c1" && request.exec_id() == "e1", "exec ids");
    require(!request.terminal() && request.stdout() == "/run/containerd/fifo/1/e1-stdout", "exec stdio");
    require(request.spec().type_url() == "types.containerd.io/opencontainers/runtime-spec/1/Process", "spec type_url");
    require(request.spec().value() == R"({"args":["ls","-l"],"cwd":"/"})", "spec value");
    co_return google::protobuf::Empty();
  }

  kata::Task<google::protobuf::Empty> resize_pty(const task::ResizePtyRequest& request,
                                                 const CallContext& context) override {
    record("ResizePty", context);
    require(request.exec_id() == "e1" && request.width() == 80 && request.height() == 24, "pty size");
    co_return google::protobuf::Empty();
  }

  kata::Task<google::protobuf::Empty> close_io(const task::CloseIORequest& request, const CallContext& context) override {
    record("CloseIO", context);
    require(request.exec_id() == "e1" && request.stdin(), "close_io");
    co_return google::protobuf::Empty();
  }

  kata::Task<google::protobuf::Empty> update(const task::UpdateTaskRequest& request, const CallContext& context) override {
    record("Update", context);
    require(request.resources().type_url() == "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
            "resources type_url");
    require(request.resources().value() == R"({"cpu":{"quota":50000}})", "resources value");
    require(request.annotations_size() == 1 && request.annotations().at("io.katacontainers.test") == "yes",
            "annotations");
    co_return google::protobuf::Empty();
  }

  kata::Task<task::WaitResponse> wait(const task::WaitRequest& request, const CallContext& context) override {
    record("Wait", context);
    require(request.id() == "c1", "wait target");
    task::WaitResponse response;
    response.set_exit_status(137);
    set_exited_at(response.mutable_exited_at());
    co_return response;
  }

  kata::Task<task::StatsResponse> stats(const task::StatsRequest& request, const CallContext& context) override {
    record("Stats", context);
    require(request.id() == "c1", "stats target");
    io::containerd::cgroups::v1::Metrics metrics;
    metrics.mutable_pids()->set_current(3);
    metrics.mutable_pids()->set_limit(100);
    metrics.mutable_memory()->mutable_usage()->set_usage(1048576);
    auto* cpu = metrics.mutable_cpu()->mutable_usage();
    cpu->set_total(123456789);
    cpu->add_per_cpu(100);
    cpu->add_per_cpu(200);
    task::StatsResponse response;
    response.mutable_stats()->set_type_url("io.containerd.cgroups.v1.Metrics");
    response.mutable_stats()->set_value(metrics.SerializeAsString());
    co_return response;
  }

  kata::Task<task::ConnectResponse> connect(const task::ConnectRequest& request, const CallContext& context) override {
    record("Connect", context);
    require(request.id() == "c1", "connect target");
    task::ConnectResponse response;
    response.set_shim_pid(shim_pid);
    response.set_task_pid(task_pid);
    response.set_version("kata-conformance");
    co_return response;
  }

  kata::Task<google::protobuf::Empty> shutdown(const task::ShutdownRequest& request, const CallContext& context) override {
    record("Shutdown", context);
    require(request.id() == "c1" && request.now(), "shutdown");
    co_return google::protobuf::Empty();
  }

 private:
  // containerd puts its namespace on every call; the shim relies on it.
  void record(std::string method, const CallContext& context) {
    calls.push_back(method);
    require(ttrpc::find_metadata(context.metadata(), "containerd-namespace-ttrpc") == "default",
            "metadata on " + method);
  }
};

TEST(TaskConformance, ContainerdGoClientDrivesOurGeneratedTaskService) {
  TempDir dir;
  const auto socket = dir.path() / "shim.sock";
  asio::io_context io;
  ttrpc::Server server(io.get_executor());
  auto implementation = std::make_shared<ScriptedTask>();
  task::register_service(server, implementation);
  server.listen_unix(socket);

  std::vector<std::string> arguments{"check-task", socket.string()};
  auto result = run(io, [&]() -> kata::Task<GoClientResult> {
    auto client_result = co_await run_go_client(KATA_CONFORMANCE_TASKPEER, arguments, dir.path());
    server.close();
    co_return client_result;
  }());

  EXPECT_EQ(result.status, (ExitStatus{0, 0})) << result.output;
  EXPECT_EQ(result.output.find("FAIL"), std::string::npos) << result.output;
  EXPECT_EQ(implementation->calls,
            (std::vector<std::string>{"Connect", "Create", "Start", "State", "State", "Exec", "ResizePty", "CloseIO",
                                      "Pids", "Pause", "Resume", "Update", "Checkpoint", "Kill", "Wait", "Stats",
                                      "Delete", "Shutdown"}));
}

using containerd::services::events::ttrpc::v1::EventsClient;
using containerd::services::events::ttrpc::v1::ForwardRequest;

template <class Event>
ForwardRequest envelope(std::string_view topic, std::string_view type_url, const Event& event) {
  ForwardRequest request;
  auto* env = request.mutable_envelope();
  env->mutable_timestamp()->set_seconds(exited_seconds + 1);
  env->set_namespace_("default");
  env->set_topic(std::string(topic));
  env->mutable_event()->set_type_url(std::string(type_url));
  env->mutable_event()->set_value(event.SerializeAsString());
  return request;
}

TEST(TaskConformance, OurEventsDecodeInContainerdsGoEventService) {
  TempDir dir;
  const auto socket = dir.path() / "events.sock";
  GoServer sink(KATA_CONFORMANCE_TASKPEER, {"serve-events", socket.string()});

  containerd::events::TaskCreate create;
  create.set_container_id("c1");
  create.set_bundle(std::string(bundle));
  create.add_rootfs()->set_type("overlay");
  create.mutable_io()->set_stdout("/o");
  create.mutable_io()->set_terminal(true);
  create.set_pid(task_pid);
  containerd::events::TaskStart start;
  start.set_container_id("c1");
  start.set_pid(task_pid);
  containerd::events::TaskOOM oom;
  oom.set_container_id("c1");
  containerd::events::TaskExit exit;
  exit.set_container_id("c1");
  exit.set_id("c1");
  exit.set_pid(task_pid);
  exit.set_exit_status(137);
  set_exited_at(exit.mutable_exited_at());
  containerd::events::TaskDelete deleted;
  deleted.set_container_id("c1");
  deleted.set_pid(task_pid);
  deleted.set_exit_status(137);
  set_exited_at(deleted.mutable_exited_at());

  const std::vector<ForwardRequest> requests{
      envelope("/tasks/create", "containerd.events.TaskCreate", create),
      envelope("/tasks/start", "containerd.events.TaskStart", start),
      envelope("/tasks/oom", "containerd.events.TaskOOM", oom),
      envelope("/tasks/exit", "containerd.events.TaskExit", exit),
      envelope("/tasks/delete", "containerd.events.TaskDelete", deleted),
  };
  const std::string prefix = "forward namespace=default topic=";
  const std::string stamp = " timestamp=2023-11-14T22:13:21Z type=containerd.events.";
  const std::vector<std::string> expected{
      prefix + "/tasks/create" + stamp + "TaskCreate container_id=c1 bundle=" + std::string(bundle) +
          " rootfs=1 stdout=/o terminal=true pid=4343",
      prefix + "/tasks/start" + stamp + "TaskStart container_id=c1 pid=4343",
      prefix + "/tasks/oom" + stamp + "TaskOOM container_id=c1",
      prefix + "/tasks/exit" + stamp +
          "TaskExit container_id=c1 id=c1 pid=4343 exit_status=137 exited_at=2023-11-14T22:13:20.000000005Z",
      prefix + "/tasks/delete" + stamp +
          "TaskDelete container_id=c1 id= pid=4343 exit_status=137 exited_at=2023-11-14T22:13:20.000000005Z",
  };

  asio::io_context io;
  run(io, [&]() -> kata::Task<void> {
    ttrpc::Client connection = co_await ttrpc::Client::connect_unix(io.get_executor(), socket);
    EventsClient events(connection);
    for (const auto& request : requests) co_await events.forward(request);
  }());

  // Each Forward returned only after the sink printed its line, so every line is there.
  for (const auto& line : expected) {
    EXPECT_EQ(sink.read_line().value_or("<sink exited>"), line);
  }
}

}  // namespace
}  // namespace kata::conformance
