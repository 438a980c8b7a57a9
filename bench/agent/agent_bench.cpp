// Launch-to-agent-ready and agent RPC round trips over virtio-serial, under QEMU TCG.
//
// usage: agent_bench [--boots N] [--calls N] [--image DIR]
// Each boot: spawn QEMU (the test command line: q35, TCG, -smp 2, 512 MiB, virtio-serial
// channel), dial the chardev socket with SerialPortTransport and wait for the first answered
// Health.Check (KataAgent::connect, exactly what the shim does). Then, on the last boot, N
// sequential Health.Check calls (1 in flight) and N calls with 16 in flight.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "kata/agent/kata_agent.hpp"
#include "kata/agent/transport.hpp"
#include "kata/core/child_process.hpp"
#include "kata/core/error.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace agent = kata::agent;

template <class T>
T run_until_done(kata::asio::io_context& io, kata::Task<T> task) {
  bool done = false;
  std::exception_ptr error;
  std::optional<T> result;
  kata::asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    error = e;
    if (!e) result.emplace(std::move(value));
    done = true;
  });
  while (!done) io.run_one_for(100ms);
  if (error) std::rethrow_exception(error);
  return std::move(*result);
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<std::size_t>(p * static_cast<double>(values.size())))];
}

struct Vm {
  std::filesystem::path dir;
  kata::ChildProcess qemu;
  ~Vm() {
    qemu = kata::ChildProcess();
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
};

std::unique_ptr<Vm> launch(const std::filesystem::path& image) {
  auto vm = std::make_unique<Vm>();
  std::string pattern = "/tmp/kata-bench-agent-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) kata::fail_errno(errno, "mkdtemp");
  vm->dir = pattern;
  kata::SpawnOptions options;
  options.program = "/usr/bin/qemu-system-x86_64";
  options.arguments = {"-machine", "q35,accel=tcg", "-cpu", "max", "-smp", "2", "-m", "512M", "-nographic",
                       "-no-reboot", "-nodefaults", "-serial", "file:" + (vm->dir / "console.log").string(),
                       "-monitor", "none", "-device", "virtio-serial-pci,id=ser0",
                       "-chardev", "socket,path=" + (vm->dir / "agent.sock").string() + ",server=on,wait=off,id=agent",
                       "-device", "virtserialport,bus=ser0.0,chardev=agent,name=agent.channel.0",
                       "-kernel", (image / "vmlinux.container").string(),
                       "-initrd", (image / "kata-containers-initrd.img").string(),
                       "-append", "console=ttyS0 quiet panic=-1"};
  vm->qemu = kata::ChildProcess::spawn(options);
  return vm;
}

kata::Task<std::unique_ptr<agent::KataAgent>> connect(const std::filesystem::path& socket) {
  const kata::hypervisor::AgentAddress address = kata::hypervisor::SerialPortAddress{socket};
  const agent::AgentTimeouts timeouts;
  auto executor = co_await kata::asio::this_coro::executor;
  auto connected = co_await agent::KataAgent::connect<agent::SerialPortTransport>(executor, address, timeouts,
                                                                                 Clock::now() + 180s);
  co_return std::make_unique<agent::KataAgent>(std::move(connected));
}

kata::Task<std::vector<double>> sequential_checks(agent::KataAgent& client, int calls) {
  std::vector<double> latencies;
  latencies.reserve(static_cast<std::size_t>(calls));
  for (int i = 0; i < calls; ++i) {
    const auto start = Clock::now();
    (void)co_await client.check();
    latencies.push_back(ms(Clock::now() - start) * 1000.0);
  }
  co_return latencies;
}

kata::Task<int> concurrent_checks(kata::asio::io_context& io, agent::KataAgent& client, int calls, int in_flight) {
  int remaining = calls;
  int running = in_flight;
  for (int worker = 0; worker < in_flight; ++worker) {
    kata::asio::co_spawn(io, [&]() -> kata::Task<void> {
      while (remaining > 0) {
        --remaining;
        (void)co_await client.check();
      }
      --running;
    }, kata::asio::detached);
  }
  kata::asio::steady_timer timer(io);
  while (running > 0) {
    timer.expires_after(1ms);
    co_await timer.async_wait(kata::asio::use_awaitable);
  }
  co_return calls;
}

}  // namespace

int main(int argc, char** argv) {
  int boots = 3;
  int calls = 500;
  std::filesystem::path image = KATA_GUEST_IMAGE_DIR_DEFAULT;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--boots") boots = std::atoi(argv[i + 1]);
    else if (flag == "--calls") calls = std::atoi(argv[i + 1]);
    else if (flag == "--image") image = argv[i + 1];
    else {
      std::fprintf(stderr, "usage: agent_bench [--boots N] [--calls N] [--image DIR]\n");
      return 2;
    }
  }
  try {
    kata::asio::io_context io;
    std::vector<double> ready;
    for (int boot = 0; boot < boots; ++boot) {
      const auto start = Clock::now();
      auto vm = launch(image);
      auto client = run_until_done(io, connect(vm->dir / "agent.sock"));
      ready.push_back(ms(Clock::now() - start));
      std::printf("boot %d: launch to agent ready %.0f ms\n", boot + 1, ready.back());
      if (boot + 1 < boots) continue;

      (void)run_until_done(io, sequential_checks(*client, 20));  // warm up
      const auto latencies = run_until_done(io, sequential_checks(*client, calls));
      const double mean = std::accumulate(latencies.begin(), latencies.end(), 0.0) / static_cast<double>(latencies.size());
      std::printf("Health.Check, 1 in flight, %d calls: p50 %.0f us, p99 %.0f us, mean %.0f us\n", calls,
                  percentile(latencies, 0.5), percentile(latencies, 0.99), mean);
      const auto begin = Clock::now();
      const int done = run_until_done(io, concurrent_checks(io, *client, calls * 4, 16));
      const double seconds = ms(Clock::now() - begin) / 1000.0;
      std::printf("Health.Check, 16 in flight, %d calls: %.0f calls/s\n", done, done / seconds);
    }
    std::printf("launch to agent ready over %d boots: median %.0f ms, min %.0f ms, max %.0f ms\n", boots,
                percentile(ready, 0.5), *std::min_element(ready.begin(), ready.end()),
                *std::max_element(ready.begin(), ready.end()));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "agent_bench: %s\n", kata::describe(error).c_str());
    return 1;
  }
  return 0;
}
