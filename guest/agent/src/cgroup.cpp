#include "kata/agent_guest/cgroup.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <thread>

#include "kata/core/error.hpp"

namespace kata::agent_guest {
namespace {

constexpr const char* wanted_controllers[] = {"cpu", "cpuset", "memory", "pids", "hugetlb"};

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) fail(Errc::not_found, "read {}: cannot open", file.string());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<std::string> read_optional(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_text(const std::filesystem::path& file, std::string_view value) {
  UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) fail_errno(errno, "open {}", file.string());
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    fail_errno(errno, "write '{}' to {}", value, file.string());
  }
}

std::vector<std::string> words(std::string_view text) {
  std::vector<std::string> out;
  std::istringstream in{std::string(text)};
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::optional<std::uint64_t> parse_u64(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  std::uint64_t value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

// "key value" lines (cpu.stat, memory.stat, memory.events) -> value of `key`.
std::uint64_t keyed(std::string_view text, std::string_view key) {
  std::istringstream in{std::string(text)};
  for (std::string k, v; in >> k >> v;) {
    if (k == key) return parse_u64(v).value_or(0);
  }
  return 0;
}

std::string limit_text(std::int64_t value) { return value < 0 ? "max" : std::to_string(value); }

}  // namespace

void enable_cgroup_controllers(const std::filesystem::path& dir) {
  const auto available = words(read_text(dir / "cgroup.controllers"));
  const auto enabled = words(read_text(dir / "cgroup.subtree_control"));
  for (const char* controller : wanted_controllers) {
    if (std::find(available.begin(), available.end(), controller) == available.end()) continue;
    if (std::find(enabled.begin(), enabled.end(), controller) != enabled.end()) continue;
    write_text(dir / "cgroup.subtree_control", std::string("+") + controller);
  }
}

namespace {

bool wait_events_frozen(const std::filesystem::path& dir, bool want, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if ((keyed(read_text(dir / "cgroup.events"), "frozen") == 1) == want) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

std::uint64_t cpu_shares_to_weight(std::uint64_t shares) noexcept {
  if (shares == 0) return 100;  // unset in OCI: the kernel's default weight
  shares = std::clamp<std::uint64_t>(shares, 2, 262144);
  return 1 + ((shares - 2) * 9999) / 262142;
}

std::optional<std::filesystem::path> find_cgroup2_mount() {
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    // "<id> <parent> <maj:min> <root> <mount point> <options> <optional...> - <fstype> ..."
    const auto dash = line.find(" - ");
    if (dash == std::string::npos || line.compare(dash + 3, 8, "cgroup2 ") != 0) continue;
    const auto fields = words(line.substr(0, dash));
    if (fields.size() >= 5 && fields[3] == "/") return fields[4];
  }
  return std::nullopt;
}

Cgroup Cgroup::create(const std::filesystem::path& parent, const std::string& name) {
  if (name.empty() || name.find("..") != std::string::npos || name.front() == '/') {
    fail(Errc::invalid_argument, "cgroup name '{}' must be a relative path without '..'", name);
  }
  const std::filesystem::path path = parent / name;
  return with_context([&] { return fmt::format("create cgroup {}", path.string()); }, [&] {
    // Top-down: a child only sees what its parent's subtree_control offers.
    std::filesystem::path dir = parent;
    std::filesystem::path rest = std::filesystem::path(name);
    for (auto it = rest.begin(); it != rest.end(); ++it) {
      if (it != rest.begin()) enable_cgroup_controllers(dir);
      dir /= *it;
      const bool last = std::next(it) == rest.end();
      if (::mkdir(dir.c_str(), 0755) != 0) {
        if (errno != EEXIST || last) fail_errno(errno, "mkdir {}", dir.string());
      }
    }
    return Cgroup(path);
  });
}

Cgroup& Cgroup::operator=(Cgroup&& other) noexcept {
  if (this != &other) {
    remove();
    path_ = std::exchange(other.path_, {});
  }
  return *this;
}

Cgroup::~Cgroup() { remove(); }

void Cgroup::remove() noexcept {
  if (path_.empty()) return;
  // cgroup.kill is asynchronous: rmdir succeeds once the last member has exited.
  if (std::filesystem::exists(path_ / "cgroup.kill")) {
    try {
      write_text(path_ / "cgroup.kill", "1");
    } catch (...) {
    }
  }
  for (int attempt = 0; attempt < 500; ++attempt) {
    if (::rmdir(path_.c_str()) == 0 || errno == ENOENT) break;
    if (errno != EBUSY) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  path_.clear();
}

void Cgroup::apply(const CgroupResources& r) const {
  with_context([&] { return fmt::format("set limits of cgroup {}", path_.string()); }, [&] {
    auto write_limit = [&](const char* controller, const char* file, const std::string& value) {
      if (!std::filesystem::exists(path_ / file)) {
        fail(Errc::not_supported, "{} needs the {} controller, which is not enabled in {}", file, controller,
             path_.string());
      }
      write_text(path_ / file, value);
    };
    // cpuset first: with an empty cpuset.cpus nothing can run, and later writes may move tasks.
    if (r.cpuset_cpus) write_limit("cpuset", "cpuset.cpus", *r.cpuset_cpus);
    if (r.cpuset_mems) write_limit("cpuset", "cpuset.mems", *r.cpuset_mems);
    if (r.cpu_shares) write_limit("cpu", "cpu.weight", std::to_string(cpu_shares_to_weight(*r.cpu_shares)));
    if (r.cpu_quota || r.cpu_period) {
      const std::string quota = r.cpu_quota && *r.cpu_quota > 0 ? std::to_string(*r.cpu_quota) : "max";
      write_limit("cpu", "cpu.max", fmt::format("{} {}", quota, r.cpu_period.value_or(100000)));
    }
    if (r.memory_reservation) write_limit("memory", "memory.low", limit_text(*r.memory_reservation));
    if (r.memory_limit) write_limit("memory", "memory.max", limit_text(*r.memory_limit));
    if (r.memory_swap) {
      // OCI gives memory+swap; v2 limits swap alone.
      std::int64_t swap = -1;
      if (*r.memory_swap >= 0 && r.memory_limit && *r.memory_limit >= 0) swap = *r.memory_swap - *r.memory_limit;
      if (swap < -1) fail(Errc::invalid_argument, "memory swap {} is below the memory limit", *r.memory_swap);
      if (std::filesystem::exists(path_ / "memory.swap.max")) write_text(path_ / "memory.swap.max", limit_text(swap));
    }
    if (r.pids_limit) write_limit("pids", "pids.max", limit_text(*r.pids_limit <= 0 ? -1 : *r.pids_limit));
  });
}

void Cgroup::add_process(pid_t pid) const { write_text(path_ / "cgroup.procs", std::to_string(pid)); }

std::vector<pid_t> Cgroup::processes() const {
  std::vector<pid_t> out;
  for (const auto& w : words(read_text(path_ / "cgroup.procs"))) {
    if (const auto v = parse_u64(w)) out.push_back(static_cast<pid_t>(*v));
  }
  return out;
}

void Cgroup::freeze(std::chrono::milliseconds timeout) const {
  write_text(path_ / "cgroup.freeze", "1");
  if (!wait_events_frozen(path_, true, timeout)) {
    fail(Errc::deadline_exceeded, "cgroup {} did not freeze within {} ms", path_.string(), timeout.count());
  }
}

void Cgroup::thaw(std::chrono::milliseconds timeout) const {
  write_text(path_ / "cgroup.freeze", "0");
  if (!wait_events_frozen(path_, false, timeout)) {
    fail(Errc::deadline_exceeded, "cgroup {} did not thaw within {} ms", path_.string(), timeout.count());
  }
}

bool Cgroup::frozen() const { return keyed(read_text(path_ / "cgroup.events"), "frozen") == 1; }

void Cgroup::kill() const { write_text(path_ / "cgroup.kill", "1"); }

CgroupStats Cgroup::stats() const {
  CgroupStats s;
  if (const auto cpu = read_optional(path_ / "cpu.stat")) {
    s.cpu_usage_usec = keyed(*cpu, "usage_usec");
    s.cpu_user_usec = keyed(*cpu, "user_usec");
    s.cpu_system_usec = keyed(*cpu, "system_usec");
    s.cpu_throttled_periods = keyed(*cpu, "nr_throttled");
    s.cpu_throttled_usec = keyed(*cpu, "throttled_usec");
  }
  if (const auto v = read_optional(path_ / "memory.current")) s.memory_usage = parse_u64(*v);
  if (const auto v = read_optional(path_ / "memory.max")) s.memory_limit = parse_u64(*v);
  if (const auto v = read_optional(path_ / "memory.peak")) s.memory_max_usage = parse_u64(*v);
  if (const auto v = read_optional(path_ / "memory.stat")) {
    s.memory_anon = keyed(*v, "anon");
    s.memory_file = keyed(*v, "file");
  }
  if (const auto v = read_optional(path_ / "memory.events")) s.oom_events = keyed(*v, "oom_kill");
  if (const auto v = read_optional(path_ / "pids.current")) s.pids_current = parse_u64(*v);
  if (const auto v = read_optional(path_ / "pids.max")) s.pids_limit = parse_u64(*v);
  return s;
}

UniqueFd Cgroup::watch_memory_events() const {
  UniqueFd fd(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (!fd) fail_errno(errno, "inotify_init1");
  const auto file = path_ / "memory.events";
  if (::inotify_add_watch(fd.get(), file.c_str(), IN_MODIFY) < 0) fail_errno(errno, "watch {}", file.string());
  return fd;
}

}  // namespace kata::agent_guest
