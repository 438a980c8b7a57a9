// Memory growth of a serving shim per exec: drives N exec cycles (Exec, Start, Wait, Delete of
// `/bin/true`) into a running container through the shim's own task API, the calls containerd
// makes for `ctr task exec`, and samples the shim's anonymous memory and PSS as it goes
// (docs/performance.md; target: no growth after 10k cycles).
//
// usage: exec_cycles --address ADDRESS --id CONTAINER --pid SHIM_PID [--cycles N] [--every K]
//   ADDRESS is the shim's socket as containerd knows it (the bundle's `address` file).
// The first sample is taken after a warm-up of K cycles (pools and caches reach their size);
// growth per exec is (anonymous at the end - at the first sample) / cycles between them.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "containerd/task/v2/shim.ttrpc.pb.h"
#include "kata/core/asio.hpp"
#include "kata/core/error.hpp"
#include "kata/shim/cli.hpp"
#include "kata/ttrpc/client.hpp"

namespace {

namespace v2 = containerd::task::v2;
using Clock = std::chrono::steady_clock;

struct Memory {
  long anonymous_kib = 0;
  long pss_kib = 0;
};

Memory memory_of(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  if (!in) kata::fail(kata::Errc::not_found, "shim pid {} is gone", pid);
  Memory memory;
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string key;
    long value = 0;
    fields >> key >> value;
    if (key == "Anonymous:") memory.anonymous_kib = value;
    if (key == "Pss:") memory.pss_kib = value;
  }
  return memory;
}

struct Options {
  std::string address;
  std::string id;
  int pid = 0;
  int cycles = 10000;
  int every = 1000;
};

google::protobuf::Any true_process() {
  google::protobuf::Any spec;
  spec.set_type_url("types.containerd.io/opencontainers/runtime-spec/1/Process");
  spec.set_value(R"({"args":["/bin/true"],"cwd":"/","env":["PATH=/bin:/usr/bin"],"user":{"uid":0,"gid":0}})");
  return spec;
}

kata::Task<void> one_cycle(v2::TaskClient& task, const Options& options, int cycle) {
  const std::string exec_id = "cycle-" + std::to_string(cycle);
  v2::ExecProcessRequest exec;
  exec.set_id(options.id);
  exec.set_exec_id(exec_id);
  *exec.mutable_spec() = true_process();
  co_await task.exec(exec);
  v2::StartRequest start;
  start.set_id(options.id);
  start.set_exec_id(exec_id);
  co_await task.start(start);
  v2::WaitRequest wait;
  wait.set_id(options.id);
  wait.set_exec_id(exec_id);
  const auto waited = co_await task.wait(wait);
  if (waited.exit_status() != 0) kata::fail(kata::Errc::internal, "exec {} exited {}", exec_id, waited.exit_status());
  v2::DeleteRequest remove;
  remove.set_id(options.id);
  remove.set_exec_id(exec_id);
  co_await task.delete_(remove);
}

kata::Task<void> run(const Options& options) {
  auto executor = co_await kata::asio::this_coro::executor;
  auto client = co_await kata::ttrpc::Client::connect_unix(executor, kata::shim::socket_path_of(options.address));
  v2::TaskClient task(client);
  std::printf("| cycles | anonymous (KiB) | PSS (KiB) | cycles/s |\n|---:|---:|---:|---:|\n");
  Memory first{};
  int first_cycle = 0;
  int last_sample = 0;
  auto since = Clock::now();
  for (int cycle = 1; cycle <= options.cycles; ++cycle) {
    co_await one_cycle(task, options, cycle);
    if (cycle % options.every != 0 && cycle != options.cycles) continue;
    const Memory now = memory_of(options.pid);
    const double seconds = std::chrono::duration<double>(Clock::now() - since).count();
    std::printf("| %d | %ld | %ld | %.0f |\n", cycle, now.anonymous_kib, now.pss_kib, (cycle - last_sample) / seconds);
    std::fflush(stdout);
    since = Clock::now();
    last_sample = cycle;
    if (first_cycle == 0) {
      first = now;
      first_cycle = cycle;
    } else if (cycle == options.cycles) {
      const double per_exec = static_cast<double>(now.anonymous_kib - first.anonymous_kib) * 1024.0 / (cycle - first_cycle);
      std::printf("\nanonymous memory growth after warm-up: %ld KiB over %d cycles = %.1f bytes per exec\n",
                  now.anonymous_kib - first.anonymous_kib, cycle - first_cycle, per_exec);
    }
  }
  client.close();
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--address") options.address = argv[i + 1];
    else if (flag == "--id") options.id = argv[i + 1];
    else if (flag == "--pid") options.pid = std::atoi(argv[i + 1]);
    else if (flag == "--cycles") options.cycles = std::atoi(argv[i + 1]);
    else if (flag == "--every") options.every = std::atoi(argv[i + 1]);
  }
  if (options.address.empty() || options.id.empty() || options.pid <= 0 || options.cycles <= 0 || options.every <= 0) {
    std::fprintf(stderr, "usage: exec_cycles --address ADDRESS --id CONTAINER --pid SHIM_PID [--cycles N] [--every K]\n");
    return 2;
  }
  try {
    kata::asio::io_context io;
    std::exception_ptr failure;
    kata::asio::co_spawn(io, run(options), [&](std::exception_ptr error) { failure = error; });
    io.run();
    if (failure) std::rethrow_exception(failure);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "exec_cycles: %s\n", kata::describe(error).c_str());
    return 1;
  }
  return 0;
}
