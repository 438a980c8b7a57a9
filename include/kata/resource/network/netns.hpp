// A handle on a pod's network namespace, and the one way this code works inside it.
//
// A network namespace is a property of a thread. The shim's io_context thread never changes
// namespace: work that must see the pod's links (netlink dumps, /dev/net/tun, ethtool ioctls)
// runs on a short-lived thread that joins the namespace with setns(2) and ends when the work is
// done, so no thread ever has to find its way back.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

#include "kata/core/unique_fd.hpp"

namespace kata::resource::network {

/// An open network namespace. Holding the descriptor keeps the namespace alive and pins it: a
/// path that is unmounted or re-used later cannot redirect work to another namespace.
///
/// Move-only; the descriptor is closed on destruction.
class NetworkNamespace {
 public:
  /// Opens `path` (a bind mount such as /var/run/netns/cni-..., or /proc/<pid>/ns/net).
  /// Errors: the open(2) error naming the path (not_found for a missing path);
  /// invalid_argument when the path is not a network namespace.
  [[nodiscard]] static NetworkNamespace open(std::filesystem::path path);

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }

  /// Runs `work` on a new thread that has joined this namespace and returns what it returns, or
  /// rethrows what it throws. Blocks the calling thread until `work` has finished (use it for
  /// short work: netlink requests are answered by the kernel at once). Errors: the setns(2) or
  /// thread creation error, naming the path; otherwise whatever `work` throws.
  template <class Work>
  std::invoke_result_t<Work&> run(Work&& work) const {
    using Result = std::invoke_result_t<Work&>;
    if constexpr (std::is_void_v<Result>) {
      run_erased([&] { work(); });
    } else {
      std::optional<Result> result;
      run_erased([&] { result.emplace(work()); });
      return std::move(*result);
    }
  }

 private:
  NetworkNamespace(std::filesystem::path path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  void run_erased(const std::function<void()>& work) const;

  std::filesystem::path path_;
  UniqueFd fd_;
};

}  // namespace kata::resource::network
