// The real TaskService over real unix sockets: a ttRPC client plays containerd, FakeRuntime
// plays the VM, and a fake event sink records what containerd would receive.
#include "kata/shim/task_service.hpp"

#include <unistd.h>

#include <csignal>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cgroups/v1/metrics.pb.h"
#include "containerd/task/v2/shim.ttrpc.pb.h"
#include "kata/shim/messages.hpp"
#include "mocks/fake_runtime.hpp"
#include "runtimeoptions/v1/api.pb.h"
#include "unit/shim/service_test_support.hpp"

namespace kata::shim {
namespace {

using namespace std::chrono_literals;
using containerd::task::v2::TaskClient;
using testing::FakeFactory;
using testing::FakeRuntime;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace v2 = containerd::task::v2;

constexpr std::int64_t go_zero_time = -62135596800;

template <class T>
Task<void> expect_error(Task<T> call, Errc code, std::string_view text = {}) {
  std::optional<Error> caught;
  try {
    co_await std::move(call);
  } catch (const Error& error) {
    caught.emplace(error);
  }
  if (!caught) {
    ADD_FAILURE() << "expected " << to_string(code) << ", the call succeeded";
    co_return;
  }
  EXPECT_EQ(caught->code(), code) << caught->what();
  if (!text.empty()) {
    EXPECT_THAT(caught->what(), HasSubstr(std::string(text)));
  }
}

v2::CreateTaskRequest create_request(const std::string& id) {
  v2::CreateTaskRequest request;
  request.set_id(id);
  request.set_bundle("/run/bundles/" + id);
  request.set_stdin("/fifo/" + id + "-in");
  request.set_stdout("/fifo/" + id + "-out");
  request.set_stderr("/fifo/" + id + "-err");
  auto* mount = request.add_rootfs();
  mount->set_type("overlay");
  mount->set_source("overlay");
  mount->add_options("lowerdir=/l");
  return request;
}

template <class Request>
Request request_for(const std::string& id, const std::string& exec_id = {}) {
  Request request;
  request.set_id(id);
  if constexpr (requires { request.set_exec_id(exec_id); }) request.set_exec_id(exec_id);
  return request;
}

v2::ExecProcessRequest exec_request(const std::string& id, const std::string& exec_id) {
  v2::ExecProcessRequest request;
  request.set_id(id);
  request.set_exec_id(exec_id);
  request.set_stdout("/fifo/" + exec_id);
  request.mutable_spec()->set_type_url("types.containerd.io/opencontainers/runtime-spec/1/Process");
  request.mutable_spec()->set_value(R"({"args":["sh"],"cwd":"/"})");
  return request;
}

v2::KillRequest kill_request(const std::string& id, const std::string& exec_id, int signal) {
  auto request = request_for<v2::KillRequest>(id, exec_id);
  request.set_signal(static_cast<std::uint32_t>(signal));
  return request;
}

class TaskServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FakeFactory::reset();
    sink_.emplace(io_.get_executor(), dir_.path() / "events.sock");
    EventPublisherOptions event_options;
    event_options.ttrpc_address = (dir_.path() / "events.sock").string();
    event_options.namespace_name = "k8s.io";
    event_options.initial_backoff = 1ms;
    event_options.max_backoff = 10ms;
    publisher_ = std::make_shared<EventPublisher>(io_.get_executor(), std::move(event_options));
    TaskServiceOptions options;
    options.sandbox_id = "sb";
    options.namespace_name = "k8s.io";
    options.default_config_path = "/from/start/stdin.toml";
    service_ = std::make_shared<TaskService<FakeFactory>>(io_.get_executor(), std::move(options), publisher_);
    server_.emplace(io_.get_executor());
    containerd::task::v2::register_service(*server_, service_);
    server_->listen_unix(socket());
  }

  void TearDown() override {
    test::run(io_, [this]() -> Task<void> {
      co_await service_->stop();
      co_await server_->shutdown(1s);
      co_await publisher_->close(1s);
      sink_->server.close();
    }());
    // The factory's records hold copies of this test's setups: drop them while the io_context
    // they refer to still exists.
    FakeFactory::reset();
  }

  [[nodiscard]] std::filesystem::path socket() const { return dir_.path() / "shim.sock"; }
  [[nodiscard]] FakeRuntime& runtime() const { return *service_->runtime(); }
  [[nodiscard]] test::RecordingEvents& events() const { return *sink_->events; }

  Task<void> wait_for_events(std::size_t count) {
    co_await test::wait_until([&] { return events().received.size() >= count; }, "events");
  }

  test::TempDir dir_;
  asio::io_context io_;
  std::optional<test::EventSink> sink_;
  std::shared_ptr<EventPublisher> publisher_;
  std::shared_ptr<TaskService<FakeFactory>> service_;
  std::optional<ttrpc::Server> server_;
};

TEST_F(TaskServiceTest, EveryRpcReachesTheRuntimeAndAnswers) {
  test::run(io_, [this]() -> Task<void> {
    auto client = co_await ttrpc::Client::connect_unix(io_.get_executor(), socket());
    TaskClient task(client);

    auto create = create_request("sb");
    runtimeoptions::v1::Options runtime_options;
    runtime_options.set_config_path("/etc/kata/custom.toml");
    create.mutable_options()->set_type_url("runtimeoptions.v1.Options");
    create.mutable_options()->set_value(runtime_options.SerializeAsString());
    const auto created = co_await task.create(create);
    EXPECT_EQ(created.pid(), 4242u);
    const auto& setups = FakeFactory::control().setups;
    EXPECT_EQ(setups.size(), 1u);
    EXPECT_EQ(setups.at(0).sandbox_id, "sb");
    EXPECT_EQ(setups.at(0).namespace_name, "k8s.io");
    EXPECT_EQ(setups.at(0).bundle, "/run/bundles/sb");
    EXPECT_EQ(setups.at(0).config_path, "/etc/kata/custom.toml");

    const auto state_request = request_for<v2::StateRequest>("sb");
    auto state = co_await task.state(state_request);
    EXPECT_EQ(state.id(), "sb");
    EXPECT_EQ(state.bundle(), "/run/bundles/sb");
    EXPECT_EQ(state.status(), containerd::v1::types::CREATED);
    EXPECT_EQ(state.stdout(), "/fifo/sb-out");
    EXPECT_EQ(state.pid(), 1000u);
    EXPECT_EQ(state.exited_at().seconds(), go_zero_time);

    const auto start_request = request_for<v2::StartRequest>("sb");
    EXPECT_EQ((co_await task.start(start_request)).pid(), 1000u);
    EXPECT_EQ((co_await task.state(state_request)).status(), containerd::v1::types::RUNNING);

    const auto pids_request = request_for<v2::PidsRequest>("sb");
    const auto pids = co_await task.pids(pids_request);
    EXPECT_EQ(pids.processes_size(), 1);
    EXPECT_EQ(pids.processes(0).pid(), 4242u);

    const auto exec = exec_request("sb", "e1");
    co_await task.exec(exec);
    co_await expect_error(task.exec(exec), Errc::already_exists, "already exists");
    const auto start_exec = request_for<v2::StartRequest>("sb", "e1");
    EXPECT_EQ((co_await task.start(start_exec)).pid(), 1001u);
    const auto exec_state_request = request_for<v2::StateRequest>("sb", "e1");
    const auto exec_state = co_await task.state(exec_state_request);
    EXPECT_EQ(exec_state.id(), "e1");
    EXPECT_EQ(exec_state.exec_id(), "e1");
    EXPECT_EQ(exec_state.stdout(), "/fifo/e1");

    auto resize = request_for<v2::ResizePtyRequest>("sb", "e1");
    resize.set_width(80);
    resize.set_height(24);
    co_await task.resize_pty(resize);
    EXPECT_THAT(runtime().resizes, ElementsAre(std::pair<std::uint32_t, std::uint32_t>(80, 24)));

    auto close_io = request_for<v2::CloseIORequest>("sb", "e1");
    close_io.set_stdin(true);
    co_await task.close_io(close_io);
    EXPECT_EQ(runtime().closed_stdin.size(), 1u);

    auto update = request_for<v2::UpdateTaskRequest>("sb");
    update.mutable_resources()->set_type_url("types.containerd.io/opencontainers/runtime-spec/1/LinuxResources");
    update.mutable_resources()->set_value(R"({"cpu":{"shares":512}})");
    co_await task.update(update);
    EXPECT_EQ(runtime().updates.at(0).second, R"({"cpu":{"shares":512}})");

    const auto stats_request = request_for<v2::StatsRequest>("sb");
    const auto stats = co_await task.stats(stats_request);
    EXPECT_EQ(stats.stats().type_url(), "io.containerd.cgroups.v1.Metrics");
    io::containerd::cgroups::v1::Metrics metrics;
    EXPECT_TRUE(metrics.ParseFromString(stats.stats().value()));
    EXPECT_EQ(metrics.pids().current(), 2u);

    const auto pause = request_for<v2::PauseRequest>("sb");
    co_await task.pause(pause);
    EXPECT_EQ((co_await task.state(state_request)).status(), containerd::v1::types::PAUSED);
    const auto resume = request_for<v2::ResumeRequest>("sb");
    co_await task.resume(resume);
    EXPECT_EQ((co_await task.state(state_request)).status(), containerd::v1::types::RUNNING);

    const auto kill_exec = kill_request("sb", "e1", SIGKILL);
    co_await task.kill(kill_exec);
    const auto wait_exec = request_for<v2::WaitRequest>("sb", "e1");
    EXPECT_EQ((co_await task.wait(wait_exec)).exit_status(), 137u);
    const auto delete_exec = request_for<v2::DeleteRequest>("sb", "e1");
    const auto exec_deleted = co_await task.delete_(delete_exec);
    EXPECT_EQ(exec_deleted.exit_status(), 137u);
    EXPECT_EQ(exec_deleted.pid(), 1001u);
    EXPECT_GT(exec_deleted.exited_at().seconds(), 0);

    const auto connect_request = request_for<v2::ConnectRequest>("sb");
    const auto connected = co_await task.connect(connect_request);
    EXPECT_EQ(connected.shim_pid(), static_cast<std::uint32_t>(::getpid()));
    EXPECT_EQ(connected.task_pid(), 4242u);

    const auto checkpoint = request_for<v2::CheckpointTaskRequest>("sb");
    co_await expect_error(task.checkpoint(checkpoint), Errc::not_supported, "not supported");

    const auto polite_shutdown = request_for<v2::ShutdownRequest>("sb");
    co_await task.shutdown(polite_shutdown);
    co_await test::settle();
    EXPECT_FALSE(service_->shutdown_requested()) << "a shim with containers must stay";

    const auto kill_init = kill_request("sb", "", SIGTERM);
    co_await task.kill(kill_init);
    const auto wait_init = request_for<v2::WaitRequest>("sb");
    const auto waited = co_await task.wait(wait_init);
    EXPECT_EQ(waited.exit_status(), 143u);
    EXPECT_GT(waited.exited_at().seconds(), 0);
    const auto delete_init = request_for<v2::DeleteRequest>("sb");
    EXPECT_EQ((co_await task.delete_(delete_init)).exit_status(), 143u);
    co_await expect_error(task.state(state_request), Errc::not_found);
    EXPECT_EQ(service_->container_count(), 0u);

    co_await task.shutdown(polite_shutdown);
    co_await service_->wait_for_shutdown_request();
    EXPECT_TRUE(service_->shutdown_requested());
  }());
  EXPECT_THAT(runtime().calls, ::testing::Contains("pause sb"));
  EXPECT_THAT(runtime().calls, ::testing::Contains("resume sb"));
}

TEST_F(TaskServiceTest, MalformedRequestsAreAnsweredAndServingGoesOn) {
  test::run(io_, [this]() -> Task<void> {
    auto client = co_await ttrpc::Client::connect_unix(io_.get_executor(), socket());
    TaskClient task(client);

    // Before any Create: unknown ids are NotFound, Connect answers.
    const auto unknown = request_for<v2::StateRequest>("nope");
    co_await expect_error(task.state(unknown), Errc::not_found, "nope");
    const auto empty_id = request_for<v2::StateRequest>("");
    co_await expect_error(task.state(empty_id), Errc::invalid_argument, "id must not be empty");
    auto no_bundle = create_request("sb");
    no_bundle.clear_bundle();
    co_await expect_error(task.create(no_bundle), Errc::invalid_argument, "bundle");
    auto bad_options = create_request("sb");
    bad_options.mutable_options()->set_type_url("runtimeoptions.v1.Options");
    bad_options.mutable_options()->set_value("\xff\xff\xff");
    co_await expect_error(task.create(bad_options), Errc::invalid_argument, "do not parse");
    EXPECT_TRUE(FakeFactory::control().setups.empty()) << "a rejected request must not build a runtime";

    const auto create = create_request("sb");
    co_await task.create(create);
    co_await expect_error(task.create(create), Errc::already_exists, "already exists");

    auto no_spec = exec_request("sb", "e1");
    no_spec.clear_spec();
    co_await expect_error(task.exec(no_spec), Errc::invalid_argument, "no process spec");
    auto empty_spec = exec_request("sb", "e1");
    empty_spec.mutable_spec()->clear_value();
    co_await expect_error(task.exec(empty_spec), Errc::invalid_argument, "no process spec");
    auto no_exec_id = exec_request("sb", "");
    co_await expect_error(task.exec(no_exec_id), Errc::invalid_argument, "exec_id");
    auto not_json = exec_request("sb", "e2");
    not_json.mutable_spec()->set_value("{");
    co_await expect_error(task.exec(not_json), Errc::invalid_argument);
    const auto start_unknown_exec = request_for<v2::StartRequest>("sb", "ghost");
    co_await expect_error(task.start(start_unknown_exec), Errc::not_found);
    const auto update_without_resources = request_for<v2::UpdateTaskRequest>("sb");
    co_await expect_error(task.update(update_without_resources), Errc::invalid_argument, "no resources");
    const auto delete_running = request_for<v2::StartRequest>("sb");
    co_await task.start(delete_running);
    co_await expect_error(task.start(delete_running), Errc::failed_precondition, "already started");
    const auto delete_request = request_for<v2::DeleteRequest>("sb");
    co_await expect_error(task.delete_(delete_request), Errc::failed_precondition, "running");

    // Bytes that are not a request at all.
    co_await expect_error(client.call("containerd.task.v2.Task", "State", std::string("\x0a\xff", 2)),
                          Errc::invalid_argument);

    const auto connect = request_for<v2::ConnectRequest>("sb");
    EXPECT_EQ((co_await task.connect(connect)).task_pid(), 4242u);
    const auto state = request_for<v2::StateRequest>("sb");
    EXPECT_EQ((co_await task.state(state)).status(), containerd::v1::types::RUNNING);
  }());
}

TEST_F(TaskServiceTest, EventsFollowContainerdsOrderWithExactlyOneExitPerProcess) {
  test::run(io_, [this]() -> Task<void> {
    auto client = co_await ttrpc::Client::connect_unix(io_.get_executor(), socket());
    TaskClient task(client);
    const auto create = create_request("sb");
    co_await task.create(create);
    const auto start = request_for<v2::StartRequest>("sb");
    co_await task.start(start);
    const auto exec = exec_request("sb", "e1");
    co_await task.exec(exec);
    const auto start_exec = request_for<v2::StartRequest>("sb", "e1");
    co_await task.start(start_exec);

    runtime().exit_process({.container_id = "sb", .exec_id = "e1"}, 3);
    // Two Waits for the same process: still one TaskExit.
    const auto wait_exec = request_for<v2::WaitRequest>("sb", "e1");
    EXPECT_EQ((co_await task.wait(wait_exec)).exit_status(), 3u);
    EXPECT_EQ((co_await task.wait(wait_exec)).exit_status(), 3u);
    const auto delete_exec = request_for<v2::DeleteRequest>("sb", "e1");
    co_await task.delete_(delete_exec);

    runtime().exit_process({.container_id = "sb", .exec_id = ""}, 0);
    // Delete right away, without Wait: TaskDelete must still come after TaskExit.
    const auto delete_init = request_for<v2::DeleteRequest>("sb");
    co_await task.delete_(delete_init);
    co_await wait_for_events(7);
    co_await test::settle();
  }());

  EXPECT_THAT(events().topics(), ElementsAre("/tasks/create", "/tasks/start", "/tasks/exec-added",
                                             "/tasks/exec-started", "/tasks/exit", "/tasks/exit", "/tasks/delete"));
  const auto& received = events().received;
  EXPECT_EQ(received[0].type_url, "containerd.events.TaskCreate");
  EXPECT_EQ(received[1].type_url, "containerd.events.TaskStart");
  EXPECT_EQ(received[2].type_url, "containerd.events.TaskExecAdded");
  EXPECT_EQ(received[3].type_url, "containerd.events.TaskExecStarted");
  EXPECT_EQ(received[4].type_url, "containerd.events.TaskExit");
  EXPECT_EQ(received[6].type_url, "containerd.events.TaskDelete");
  for (const auto& event : received) {
    EXPECT_EQ(event.envelope_namespace, "k8s.io");
    EXPECT_EQ(event.metadata_namespace, "k8s.io");
  }

  containerd::events::TaskCreate created;
  ASSERT_TRUE(created.ParseFromString(received[0].value));
  EXPECT_EQ(created.container_id(), "sb");
  EXPECT_EQ(created.bundle(), "/run/bundles/sb");
  EXPECT_EQ(created.pid(), 4242u);
  EXPECT_EQ(created.io().stdout(), "/fifo/sb-out");
  EXPECT_EQ(created.rootfs_size(), 1);

  containerd::events::TaskExecStarted exec_started;
  ASSERT_TRUE(exec_started.ParseFromString(received[3].value));
  EXPECT_EQ(exec_started.exec_id(), "e1");
  EXPECT_EQ(exec_started.pid(), 1001u);

  const auto exits = events().exits();
  ASSERT_EQ(exits.size(), 2u);
  EXPECT_EQ(exits[0].container_id(), "sb");
  EXPECT_EQ(exits[0].id(), "e1");
  EXPECT_EQ(exits[0].pid(), 1001u);
  EXPECT_EQ(exits[0].exit_status(), 3u);
  EXPECT_EQ(exits[1].id(), "sb");
  EXPECT_EQ(exits[1].pid(), 1000u);
  EXPECT_EQ(exits[1].exit_status(), 0u);
  EXPECT_GT(exits[1].exited_at().seconds(), 0);

  containerd::events::TaskDelete deleted;
  ASSERT_TRUE(deleted.ParseFromString(received[6].value));
  EXPECT_EQ(deleted.container_id(), "sb");
  EXPECT_EQ(deleted.pid(), 1000u);
  EXPECT_EQ(deleted.exit_status(), 0u);
}

TEST_F(TaskServiceTest, AnInitExitIsPublishedAfterItsExecsExits) {
  test::run(io_, [this]() -> Task<void> {
    auto client = co_await ttrpc::Client::connect_unix(io_.get_executor(), socket());
    TaskClient task(client);
    const auto create = create_request("sb");
    co_await task.create(create);
    const auto start = request_for<v2::StartRequest>("sb");
    co_await task.start(start);
    const auto exec = exec_request("sb", "e1");
    co_await task.exec(exec);
    const auto start_exec = request_for<v2::StartRequest>("sb", "e1");
    co_await task.start(start_exec);
    co_await wait_for_events(4);

    runtime().exit_process({.container_id = "sb", .exec_id = ""}, 1);
    co_await test::settle();
    EXPECT_TRUE(events().exits().empty()) << "the init exit waits for the running exec";
    runtime().exit_process({.container_id = "sb", .exec_id = "e1"}, 137);
    co_await wait_for_events(6);
  }());
  const auto exits = events().exits();
  ASSERT_EQ(exits.size(), 2u);
  EXPECT_EQ(exits[0].id(), "e1");
  EXPECT_EQ(exits[1].id(), "sb");
}

TEST_F(TaskServiceTest, OomIsPublishedBeforeTheExit) {
  test::run(io_, [this]() -> Task<void> {
    auto client = co_await ttrpc::Client::connect_unix(io_.get_executor(), socket());
    TaskClient task(client);
    const auto create = create_request("sb");
    co_await task.create(create);
    const auto start = request_for<v2::StartRequest>("sb");
    co_await task.start(start);
    runtime().oom_kill("sb");
    co_await wait_for_events(4);
  }());
  EXPECT_THAT(events().topics(), ElementsAre("/tasks/create", "/tasks/start", "/tasks/oom", "/tasks/exit"));
  containerd::events::TaskOOM oom;
  ASSERT_TRUE(oom.ParseFromString(events().received[2].value));
  EXPECT_EQ(oom.container_id(), "sb");
  EXPECT_EQ(events().received[2].type_url, "containerd.events.TaskOOM");
  EXPECT_EQ(events().exits().at(0).exit_status(), 137u);
}

TEST_F(TaskServiceTest, PauseAndResumeArePublished) {
  test::run(io_, [this]() -> Task<void> {
    auto client = co_await ttrpc::Client::connect_unix(io_.get_executor(), socket());
    TaskClient task(client);
    const auto create = create_request("sb");
    co_await task.create(create);
    const auto pause = request_for<v2::PauseRequest>("sb");
    co_await task.pause(pause);
    const auto resume = request_for<v2::ResumeRequest>("sb");
    co_await task.resume(resume);
    co_await wait_for_events(3);
  }());
  EXPECT_THAT(events().topics(), ElementsAre("/tasks/create", "/tasks/paused", "/tasks/resumed"));
}

TEST_F(TaskServiceTest, ReadOnlyRpcsAnswerWhileACreateIsBlockedInTheRuntime) {
  auto gate = std::make_shared<AsyncEvent>(io_.get_executor());
  auto entered = std::make_shared<AsyncEvent>(io_.get_executor());
  FakeFactory::control().configure = [&](FakeRuntime& runtime) {
    runtime.create_gate = gate;
    runtime.create_entered = entered;
  };
  test::run(io_, [&]() -> Task<void> {
    auto client = co_await ttrpc::Client::connect_unix(io_.get_executor(), socket());
    TaskClient task(client);
    const auto create = create_request("sb");
    bool create_done = false;
    asio::co_spawn(
        io_,
        [&]() -> Task<void> {
          co_await task.create(create);
          create_done = true;
        },
        asio::detached);
    co_await entered->wait();

    const auto state = request_for<v2::StateRequest>("sb");
    co_await expect_error(task.state(state), Errc::not_found);
    const auto connect = request_for<v2::ConnectRequest>("sb");
    EXPECT_EQ((co_await task.connect(connect)).task_pid(), 4242u);
    const auto pids = request_for<v2::PidsRequest>("sb");
    co_await expect_error(task.pids(pids), Errc::not_found);
    const auto stats = request_for<v2::StatsRequest>("sb");
    co_await expect_error(task.stats(stats), Errc::not_found);
    EXPECT_FALSE(create_done) << "the Create is still inside the runtime";

    gate->set();
    co_await test::wait_until([&] { return create_done; }, "the blocked create");
    EXPECT_EQ((co_await task.state(state)).status(), containerd::v1::types::CREATED);
  }());
}

TEST_F(TaskServiceTest, AFailedFirstCreateRollsTheRuntimeBackAndTheIdCanBeReused) {
  FakeFactory::control().configure = [](FakeRuntime& runtime) { runtime.fail_create = Errc::unavailable; };
  test::run(io_, [this]() -> Task<void> {
    auto client = co_await ttrpc::Client::connect_unix(io_.get_executor(), socket());
    TaskClient task(client);
    const auto create = create_request("sb");
    co_await expect_error(task.create(create), Errc::unavailable, "injected failure");
    EXPECT_EQ(service_->runtime(), nullptr);
    EXPECT_EQ(FakeFactory::control().runtimes.size(), 1u);

    FakeFactory::control().configure = nullptr;
    EXPECT_EQ((co_await task.create(create)).pid(), 4242u);
    EXPECT_EQ(FakeFactory::control().runtimes.size(), 2u);
    EXPECT_EQ(service_->runtime(), FakeFactory::control().runtimes.back());
    co_await wait_for_events(1);
  }());
  EXPECT_THAT(events().topics(), ElementsAre("/tasks/create"));
}

TEST_F(TaskServiceTest, AFailingFactoryLeavesNoRuntime) {
  FakeFactory::control().fail_create_runtime = Errc::invalid_argument;
  test::run(io_, [this]() -> Task<void> {
    auto client = co_await ttrpc::Client::connect_unix(io_.get_executor(), socket());
    TaskClient task(client);
    const auto create = create_request("sb");
    co_await expect_error(task.create(create), Errc::invalid_argument, "create runtime: injected failure");
    EXPECT_EQ(service_->runtime(), nullptr);
    EXPECT_EQ(service_->container_count(), 0u);
    FakeFactory::control().fail_create_runtime.reset();
    co_await task.create(create);
    EXPECT_EQ(service_->container_count(), 1u);
  }());
}

TEST_F(TaskServiceTest, StopEndsLiveProcessesAndEveryOneGetsItsExit) {
  test::run(io_, [this]() -> Task<void> {
    auto client = co_await ttrpc::Client::connect_unix(io_.get_executor(), socket());
    TaskClient task(client);
    const auto create = create_request("sb");
    co_await task.create(create);
    const auto start = request_for<v2::StartRequest>("sb");
    co_await task.start(start);
    const auto exec = exec_request("sb", "e1");
    co_await task.exec(exec);
    const auto start_exec = request_for<v2::StartRequest>("sb", "e1");
    co_await task.start(start_exec);

    auto shutdown = request_for<v2::ShutdownRequest>("sb");
    shutdown.set_now(true);
    co_await task.shutdown(shutdown);
    co_await service_->wait_for_shutdown_request();
    co_await service_->stop();
    EXPECT_EQ(runtime().shutdown_calls, 1);
    const auto late = create_request("other");
    co_await expect_error(task.create(late), Errc::unavailable, "shutting down");
    co_await wait_for_events(6);
    co_await service_->stop();  // idempotent
  }());
  const auto exits = events().exits();
  ASSERT_EQ(exits.size(), 2u);
  EXPECT_EQ(exits[0].exit_status(), 137u);
  EXPECT_EQ(exits[1].exit_status(), 137u);
  EXPECT_EQ(exits[1].id(), "sb");
}

TEST_F(TaskServiceTest, AFailedWaitStillYieldsOneExit) {
  test::run(io_, [this]() -> Task<void> {
    auto client = co_await ttrpc::Client::connect_unix(io_.get_executor(), socket());
    TaskClient task(client);
    const auto create = create_request("sb");
    co_await task.create(create);
    runtime().failing_waits.push_back({.container_id = "sb", .exec_id = ""});
    const auto start = request_for<v2::StartRequest>("sb");
    co_await task.start(start);
    co_await wait_for_events(3);
  }());
  const auto exits = events().exits();
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0].exit_status(), 255u);
  EXPECT_EQ(exits[0].pid(), 1000u);
}

TEST_F(TaskServiceTest, ContainerdReconnectingIsServed) {
  test::run(io_, [this]() -> Task<void> {
    {
      auto client = co_await ttrpc::Client::connect_unix(io_.get_executor(), socket());
      TaskClient task(client);
      const auto create = create_request("sb");
      co_await task.create(create);
      client.close();  // containerd restarts
    }
    auto client = co_await ttrpc::Client::connect_unix(io_.get_executor(), socket());
    TaskClient task(client);
    const auto state = request_for<v2::StateRequest>("sb");
    EXPECT_EQ((co_await task.state(state)).status(), containerd::v1::types::CREATED);
  }());
}

}  // namespace
}  // namespace kata::shim
