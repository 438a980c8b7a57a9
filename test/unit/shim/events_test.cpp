// EventPublisher against a fake containerd event sink that comes and goes.
#include "kata/shim/events.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kata/shim/messages.hpp"
#include "unit/shim/service_test_support.hpp"

namespace kata::shim {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;

EventPublisherOptions fast_options(const std::filesystem::path& socket) {
  EventPublisherOptions options;
  options.ttrpc_address = "unix://" + socket.string();
  options.namespace_name = "default";
  options.initial_backoff = 1ms;
  options.max_backoff = 5ms;
  return options;
}

std::vector<std::string> oom_ids(const test::RecordingEvents& events) {
  std::vector<std::string> ids;
  for (const auto& r : events.received) {
    containerd::events::TaskOOM oom;
    EXPECT_TRUE(oom.ParseFromString(r.value));
    ids.push_back(oom.container_id());
  }
  return ids;
}

TEST(EventPublisher, KeepsEventsInOrderUntilContainerdComesBack) {
  test::TempDir dir;
  const auto socket = dir.path() / "containerd.sock.ttrpc";
  asio::io_context io;
  EventPublisher publisher(io.get_executor(), fast_options(socket));
  test::run(io, [&]() -> Task<void> {
    for (const char* id : {"c1", "c2", "c3"}) publisher.publish(topic::task_oom, task_oom_event(id));
    co_await test::wait_until([&] { return publisher.queued() == 3; }, "queued events");
    co_await test::sleep_for(20ms);  // several failed attempts
    EXPECT_EQ(publisher.delivered(), 0u);
    EXPECT_EQ(publisher.queued(), 3u);

    {
      test::EventSink sink(io.get_executor(), socket);
      co_await test::wait_until([&] { return sink.events->received.size() == 3; }, "first delivery");
      EXPECT_THAT(oom_ids(*sink.events), ElementsAre("c1", "c2", "c3"));
      EXPECT_EQ(sink.events->received[0].metadata_namespace, "default");
      EXPECT_EQ(sink.events->received[0].envelope_namespace, "default");
      EXPECT_EQ(sink.events->received[0].topic, "/tasks/oom");
      EXPECT_EQ(sink.events->received[0].type_url, "containerd.events.TaskOOM");
      sink.server.close();  // containerd restarts
    }
    for (const char* id : {"c4", "c5"}) publisher.publish(topic::task_oom, task_oom_event(id));
    co_await test::sleep_for(10ms);
    test::EventSink restarted(io.get_executor(), socket);
    co_await test::wait_until([&] { return restarted.events->received.size() == 2; }, "delivery after restart");
    EXPECT_THAT(oom_ids(*restarted.events), ElementsAre("c4", "c5"));
    // The sink has the event when the request arrives; the publisher counts it when the answer
    // comes back, a turn of the loop later.
    co_await test::wait_until([&] { return publisher.delivered() >= 5; }, "the answer to the last event");
    EXPECT_EQ(publisher.delivered(), 5u);
    EXPECT_EQ(publisher.dropped(), 0u);
    co_await publisher.close(1s);
    restarted.server.close();
  }());
}

TEST(EventPublisher, AFullQueueDropsNewEventsOnly) {
  test::TempDir dir;
  const auto socket = dir.path() / "events.sock";
  asio::io_context io;
  auto options = fast_options(socket);
  options.queue_capacity = 2;
  EventPublisher publisher(io.get_executor(), options);
  test::run(io, [&]() -> Task<void> {
    for (const char* id : {"c1", "c2", "c3", "c4"}) publisher.publish(topic::task_oom, task_oom_event(id));
    co_await test::wait_until([&] { return publisher.dropped() == 2; }, "drops");
    EXPECT_EQ(publisher.queued(), 2u);
    test::EventSink sink(io.get_executor(), socket);
    co_await test::wait_until([&] { return sink.events->received.size() == 2; }, "delivery");
    EXPECT_THAT(oom_ids(*sink.events), ElementsAre("c1", "c2"));
    co_await publisher.close(1s);
    sink.server.close();
  }());
}

TEST(EventPublisher, AnEventContainerdRejectsIsDroppedAfterRetries) {
  test::TempDir dir;
  const auto socket = dir.path() / "events.sock";
  asio::io_context io;
  EventPublisher publisher(io.get_executor(), fast_options(socket));
  test::run(io, [&]() -> Task<void> {
    test::EventSink sink(io.get_executor(), socket);
    sink.events->reject = Errc::invalid_argument;
    publisher.publish(topic::task_oom, task_oom_event("bad"));
    co_await test::wait_until([&] { return publisher.dropped() == 1; }, "the rejected event to be dropped");
    sink.events->reject.reset();
    publisher.publish(topic::task_oom, task_oom_event("good"));
    co_await test::wait_until([&] { return publisher.delivered() == 1; }, "the next event");
    EXPECT_THAT(oom_ids(*sink.events), ElementsAre("good"));
    co_await publisher.close(1s);
    sink.server.close();
  }());
}

TEST(EventPublisher, CloseDeliversWhatIsQueued) {
  test::TempDir dir;
  const auto socket = dir.path() / "events.sock";
  asio::io_context io;
  EventPublisher publisher(io.get_executor(), fast_options(socket));
  test::run(io, [&]() -> Task<void> {
    test::EventSink sink(io.get_executor(), socket);
    for (const char* id : {"c1", "c2", "c3"}) publisher.publish(topic::task_oom, task_oom_event(id));
    co_await publisher.close(5s);
    EXPECT_EQ(sink.events->received.size(), 3u);
    publisher.publish(topic::task_oom, task_oom_event("late"));
    co_await test::settle();
    EXPECT_EQ(publisher.dropped(), 1u);
    sink.server.close();
  }());
}

TEST(EventPublisher, CloseGivesUpOnAnUnreachableContainerd) {
  test::TempDir dir;
  asio::io_context io;
  EventPublisher publisher(io.get_executor(), fast_options(dir.path() / "nobody.sock"));
  test::run(io, [&]() -> Task<void> {
    publisher.publish(topic::task_oom, task_oom_event("c1"));
    co_await publisher.close(20ms);
    EXPECT_EQ(publisher.queued(), 0u);
    EXPECT_EQ(publisher.dropped(), 1u);
  }());
}

TEST(EventPublisher, WithoutAnAddressEventsAreOnlyLogged) {
  asio::io_context io;
  EventPublisherOptions options;
  options.namespace_name = "default";
  EventPublisher publisher(io.get_executor(), options);
  test::run(io, [&]() -> Task<void> {
    publisher.publish(topic::task_oom, task_oom_event("c1"));
    co_await test::settle();
    EXPECT_EQ(publisher.queued(), 0u);
    EXPECT_EQ(publisher.dropped(), 0u);
    co_await publisher.close(1s);
  }());
}

TEST(Messages, ForwardRequestCarriesTheEnvelope) {
  const auto request = make_forward_request(topic::task_exit, "k8s.io",
                                            task_exit_event({.container_id = "c", .exec_id = "e"},
                                                            {.pid = 7, .exit_status = 2, .exited_at = {}}));
  EXPECT_EQ(request.envelope().topic(), "/tasks/exit");
  EXPECT_EQ(request.envelope().namespace_(), "k8s.io");
  EXPECT_EQ(request.envelope().event().type_url(), "containerd.events.TaskExit");
  EXPECT_GT(request.envelope().timestamp().seconds(), 0);
  containerd::events::TaskExit exit;
  ASSERT_TRUE(exit.ParseFromString(request.envelope().event().value()));
  EXPECT_EQ(exit.id(), "e");
  EXPECT_EQ(exit.pid(), 7u);
}

TEST(Messages, RuntimeOptionsFromStartStdin) {
  // The bytes containerd 1.6 writes on start's stdin (host-lab §1c): Any{type_url, Options{config_path}}.
  const std::string path = "/lab/kata/configuration.toml";
  std::string options = std::string("\x12") + static_cast<char>(path.size()) + path;
  std::string any = std::string("\x0a\x19") + "runtimeoptions.v1.Options" + "\x12" + static_cast<char>(options.size()) + options;
  EXPECT_EQ(config_path_from_any_bytes(any), path);
  EXPECT_EQ(config_path_from_any_bytes(""), std::nullopt);
  google::protobuf::Any other;
  other.set_type_url("containerd.runc.v1.Options");
  other.set_value("x");
  EXPECT_EQ(config_path_from_options(other), std::nullopt);
  EXPECT_THROW((void)config_path_from_any_bytes("\xff\xff"), Error);
}

TEST(Messages, TimestampsRoundTripAndAbsentTimeIsGoZero) {
  google::protobuf::Timestamp timestamp;
  set_timestamp(timestamp, std::nullopt);
  EXPECT_EQ(timestamp.seconds(), -62135596800);
  EXPECT_EQ(from_timestamp(timestamp), std::nullopt);
  const auto now = std::chrono::system_clock::now();
  set_timestamp(timestamp, now);
  EXPECT_EQ(from_timestamp(timestamp), std::chrono::time_point_cast<std::chrono::system_clock::duration>(now));
}

}  // namespace
}  // namespace kata::shim
