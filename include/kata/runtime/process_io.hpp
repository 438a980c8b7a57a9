// A container process's stdio: containerd's FIFOs on the host, the agent's Read/Write RPCs in the
// guest, and the copies between them.
//
// Output: ReadStdout/ReadStderr long polls until the guest process closes its end (an empty
// reply or an error ends the stream), each chunk written to the FIFO. If containerd's reader goes
// away, the guest output is still drained so the process never blocks on a full pipe.
// Input: the FIFO is read and forwarded with WriteStdin until its writer is gone (end-of-file, as
// containerd's own shims see it) or containerd's CloseIO; then CloseStdin reaches the guest.
// Logging drivers: a binary:// URI (ctr run --log-uri, or a CRI logging plugin) names a program
// that gets the output as pipes, started and reaped here as containerd's own shims do.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/posix/stream_descriptor.hpp>

#include "kata/agent/kata_agent.hpp"
#include "kata/core/async_event.hpp"
#include "kata/core/asio.hpp"
#include "kata/core/child_process.hpp"
#include "kata/core/gate.hpp"
#include "kata/core/unique_fd.hpp"
#include "kata/runtime/task_runtime.hpp"

namespace kata::runtime {

/// Shared ownership: each copy coroutine holds the object, so it outlives them whatever happens to
/// the process record; abort() cancels blocked host I/O so the copies end promptly.
class ProcessIo : public std::enable_shared_from_this<ProcessIo> {
 public:
  /// Opens the host ends: FIFOs, files for file:// URIs, or a logger for binary:// URIs
  /// (binary:///path?key=value: started with stdout on fd 3, stderr on fd 4 and a pipe on fd 5
  /// that it closes once ready, which is waited for; `key value` arguments from the query;
  /// CONTAINER_ID and CONTAINER_NAMESPACE=`namespace_name` in its environment). Throws
  /// kata::Error naming the path or logger and what failed.
  static std::shared_ptr<ProcessIo> open(Executor executor, agent::KataAgent& agent, ProcessId process, const Stdio& stdio,
                                         const std::string& namespace_name);

  ProcessIo(Executor executor, agent::KataAgent& agent, ProcessId process, const Stdio& stdio,
            const std::string& namespace_name);
  ProcessIo(const ProcessIo&) = delete;
  ProcessIo& operator=(const ProcessIo&) = delete;
  ~ProcessIo();

  /// Starts the copies inside `gate`. Call once, after the process started in the guest.
  void start(Gate& gate);

  /// Completes when stdout and stderr reached end-of-stream and everything was written.
  Task<void> wait_output_done();

  /// containerd's CloseIO(stdin): the stdin copy forwards what the FIFO holds now and ends, after
  /// which the guest's stdin is closed (end-of-file of the FIFO does the same). Idempotent.
  void close_stdin() noexcept;

  /// Drops the host ends at once (the VM is gone, or shutdown): pending host I/O is cancelled,
  /// copies end, output counts as done. Copies blocked in an agent call end when the agent
  /// connection is closed, which the caller does first.
  void abort() noexcept;

 private:
  using Descriptor = asio::posix::stream_descriptor;
  static Task<void> copy_output(std::shared_ptr<ProcessIo> self, bool is_stderr);
  static Task<void> copy_input(std::shared_ptr<ProcessIo> self);
  // After the output ended: closes the logger's pipes so it sees end-of-file, then reaps it.
  static Task<void> finish_logger(std::shared_ptr<ProcessIo> self);
  void start_logger(const std::string& uri, const std::string& namespace_name);
  void output_finished() noexcept;

  Executor executor_;
  agent::KataAgent& agent_;
  ProcessId process_;
  std::optional<Descriptor> stdin_;
  bool stdin_close_requested_ = false;
  std::optional<Descriptor> stdout_;
  std::optional<Descriptor> stderr_;
  // Output FIFOs whose reader was not there yet at open: the copy opens them (retrying).
  std::string stdout_deferred_;
  std::string stderr_deferred_;
  std::optional<ChildProcess> logger_;
  int outputs_running_ = 0;
  bool started_ = false;
  // A stream with no destination (an empty stdout/stderr path, as `ctr task exec` without a
  // terminal may send) is still read from the guest and discarded, like /dev/null: otherwise
  // the guest's pipe fills and blocks the process, and the agent keeps the exec's record and
  // descriptors until the container goes (found by bench/shim's exec cycles: EMFILE after 250).
  bool discard_stdout_ = false;
  bool discard_stderr_ = false;
  bool aborted_ = false;
  AsyncEvent output_done_;
};

}  // namespace kata::runtime
