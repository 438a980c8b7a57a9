// `containerd-shim-<runtime> start` until it has printed its address, ours next to a reference
// shim (containerd-shim-runc-v2) in the same run (docs/performance.md; target: ≤ 10 ms).
//
// usage: start_bench --shim PATH [--reference PATH] [--runs N]      (root: sockets in /run)
//
// Each run does what containerd does: starts the binary with `-namespace -address -publish-binary
// -id ... start` in a bundle directory holding config.json, with /dev/null on stdin, and reads its
// stdout to EOF (containerd takes stdout as the address). Measured: wall time from spawn to EOF and
// exit, and the `start` process's own CPU time (user + system, from wait4). The serving shim each
// run leaves behind is then SIGKILLed by the pid it wrote to shim.pid, and its socket removed.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

struct Sample {
  double wall_ms;
  double cpu_ms;
};

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

double max_of(const std::vector<double>& values) { return *std::max_element(values.begin(), values.end()); }

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// One `start` (`shim` is absolute: the child changes directory first); the serving shim it
// leaves behind is named by bundle/shim.pid.
Sample run_start(const std::string& shim, const std::filesystem::path& bundle, const std::string& id,
                 std::string& address) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, out[1], 2);
  posix_spawn_file_actions_addchdir_np(&actions, bundle.c_str());
  std::vector<std::string> args = {shim, "-namespace", "startbench", "-address", "/run/startbench-no-containerd.sock",
                                   "-publish-binary", "/bin/true", "-id", id, "start"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const auto begin = Clock::now();
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, shim.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (spawned != 0) throw std::runtime_error("spawn " + shim + ": " + std::strerror(spawned));
  address.clear();
  char buffer[512];
  ssize_t got;
  while ((got = ::read(out[0], buffer, sizeof buffer)) > 0) address.append(buffer, static_cast<std::size_t>(got));
  ::close(out[0]);
  int status = 0;
  rusage usage{};
  ::wait4(pid, &status, 0, &usage);
  const auto end = Clock::now();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error(shim + " start failed: " + address);
  const auto cpu_us = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000L + usage.ru_utime.tv_usec +
                      usage.ru_stime.tv_usec;
  return {std::chrono::duration<double, std::milli>(end - begin).count(), static_cast<double>(cpu_us) / 1000.0};
}

void stop_server(const std::filesystem::path& bundle, const std::string& address) {
  const std::string pid_text = read_file(bundle / "shim.pid");
  const pid_t pid = static_cast<pid_t>(std::atoi(pid_text.c_str()));
  if (pid > 1) {
    ::kill(pid, SIGKILL);
    for (int i = 0; i < 200 && ::kill(pid, 0) == 0; ++i) ::usleep(5000);
  }
  std::string path = address;
  if (path.rfind("unix://", 0) == 0) path = path.substr(7);
  while (!path.empty() && (path.back() == '\n' || path.back() == ' ')) path.pop_back();
  std::error_code ignored;
  if (!path.empty() && path.front() == '/') std::filesystem::remove(path, ignored);
  std::filesystem::remove(bundle / "shim.pid", ignored);
  std::filesystem::remove(bundle / "address", ignored);
}

void measure(const std::string& label, const std::string& shim, int runs) {
  char pattern[] = "/run/kata-start-bench-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp");
  const std::filesystem::path bundle = pattern;
  std::filesystem::create_directory(bundle / "rootfs");
  std::ofstream(bundle / "config.json")
      << R"({"ociVersion":"1.0.2","process":{"args":["true"],"cwd":"/"},"root":{"path":"rootfs"},)"
         R"("linux":{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"network"}]}})";
  std::vector<double> wall, cpu;
  for (int i = 0; i < runs + 1; ++i) {
    std::string address;
    const Sample sample = run_start(shim, bundle, "startbench-" + std::to_string(::getpid()) + "-" + std::to_string(i),
                                    address);
    stop_server(bundle, address);
    if (i == 0) continue;  // the first run warms the page cache
    wall.push_back(sample.wall_ms);
    cpu.push_back(sample.cpu_ms);
  }
  std::filesystem::remove_all(bundle);
  std::printf("| %s | %.1f | %.1f | %.1f | %.1f |\n", label.c_str(), median(wall), max_of(wall), median(cpu),
              max_of(cpu));
}

}  // namespace

int main(int argc, char** argv) {
  std::string shim, reference;
  int runs = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--shim") shim = std::filesystem::absolute(argv[i + 1]).string();
    else if (flag == "--reference") reference = std::filesystem::absolute(argv[i + 1]).string();
    else if (flag == "--runs") runs = std::max(1, std::atoi(argv[i + 1]));
    else {
      std::fprintf(stderr, "usage: start_bench --shim PATH [--reference PATH] [--runs N]\n");
      return 2;
    }
  }
  if (shim.empty()) {
    std::fprintf(stderr, "usage: start_bench --shim PATH [--reference PATH] [--runs N]\n");
    return 2;
  }
  try {
    std::printf("| `start` → address printed, %d runs | wall p50 (ms) | wall max | CPU p50 (ms) | CPU max |\n", runs);
    std::printf("|---|---:|---:|---:|---:|\n");
    measure(std::filesystem::path(shim).filename().string() + " (ours)", shim, runs);
    if (!reference.empty()) measure(std::filesystem::path(reference).filename().string(), reference, runs);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "start_bench: %s\n", error.what());
    return 1;
  }
  return 0;
}
