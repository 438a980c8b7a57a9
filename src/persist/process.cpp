#include "kata/persist/process.hpp"

#include <charconv>

#include "kata/core/error.hpp"
#include "kata/persist/file.hpp"

namespace kata::persist {

namespace {

// /proc/<pid>/stat: "pid (comm) state ppid ...". Field 3 (state) is the first after ") ".
constexpr int start_time_field = 22;
constexpr int first_field_after_comm = 3;

}  // namespace

std::optional<std::uint64_t> process_start_time(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  std::optional<std::string> stat;
  try {
    stat = read_file_if_exists(path);
  } catch (const Error& e) {
    if (e.code() == Errc::not_found) return std::nullopt;  // ESRCH: exited while reading
    throw;
  }
  if (!stat) return std::nullopt;
  const std::size_t comm_end = stat->rfind(')');
  if (comm_end == std::string::npos) fail(Errc::data_loss, "{}: no ')' after the command name", path);
  std::size_t position = comm_end + 1;
  for (int field = first_field_after_comm; field <= start_time_field; ++field) {
    position = stat->find_first_not_of(' ', position);
    if (position == std::string::npos) break;
    const std::size_t end = std::min(stat->find(' ', position), stat->size());
    if (field == start_time_field) {
      std::uint64_t value = 0;
      const auto [ptr, ec] = std::from_chars(stat->data() + position, stat->data() + end, value);
      if (ec != std::errc() || ptr != stat->data() + end) break;
      return value;
    }
    position = end;
  }
  fail(Errc::data_loss, "{}: cannot read field {} (start time)", path, start_time_field);
}

ProcessRecord record_process(std::string role, pid_t pid) {
  const auto start_time = process_start_time(pid);
  if (!start_time) fail(Errc::not_found, "process {} ({}) does not exist", pid, role);
  return ProcessRecord{std::move(role), pid, *start_time};
}

bool is_same_process(const ProcessRecord& record) {
  const auto start_time = process_start_time(record.pid);
  return start_time && *start_time == record.start_time;
}

}  // namespace kata::persist
