// Recording a host process so that a later, different shim (`delete` after a crash) can kill it
// without ever hitting an unrelated process that reused the pid.
//
// A pid alone is not an identity: pids are recycled. (pid, start time) is: the kernel's start
// time of a process (field 22 of /proc/<pid>/stat, clock ticks since boot) never changes while
// it lives and a new process with the same pid starts later.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace kata::persist {

/// A process the sandbox started (VMM, virtiofsd, ...).
struct ProcessRecord {
  std::string role;              ///< what it is, for logs: "vmm", "virtiofsd", ...
  pid_t pid = 0;
  std::uint64_t start_time = 0;  ///< /proc/<pid>/stat field 22
  friend bool operator==(const ProcessRecord&, const ProcessRecord&) = default;
};

/// Field 22 of /proc/<pid>/stat, or nullopt when there is no such process. Parses after the
/// last ')' so a command name containing spaces or parentheses cannot shift the fields. Throws
/// kata::Error(data_loss) if the file exists but cannot be parsed.
[[nodiscard]] std::optional<std::uint64_t> process_start_time(pid_t pid);

/// Records a live process. Throws kata::Error(not_found) "process <pid> (<role>) does not exist".
[[nodiscard]] ProcessRecord record_process(std::string role, pid_t pid);

/// True when `record.pid` is alive (or a zombie) and is still the process that was recorded.
[[nodiscard]] bool is_same_process(const ProcessRecord& record);

}  // namespace kata::persist
