// Waiting for a descriptor with a deadline, without blocking the executor.
#pragma once

#include <chrono>

#include "kata/core/asio.hpp"

namespace kata {

enum class FdReadiness { readable, writable };

/// Completes when `fd` (not owned; left open) is ready or `deadline` passes; returns whether it
/// became ready. Both internal operations have finished when it returns, so nothing refers to
/// this frame afterwards. Errors on the descriptor count as ready (the next I/O call reports them).
Task<bool> wait_fd_until(Executor executor, int fd, FdReadiness readiness, std::chrono::steady_clock::time_point deadline);

}  // namespace kata
