#include "kata/resource/network/netns.hpp"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <exception>
#include <thread>

#include "kata/core/error.hpp"

namespace kata::resource::network {

NetworkNamespace NetworkNamespace::open(std::filesystem::path path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) fail_errno(errno, "open network namespace {}", path.string());
  // NS_GET_NSTYPE (Linux 4.11) answers only for nsfs files; anything else is not a namespace.
  const int type = ::ioctl(fd.get(), NS_GET_NSTYPE);
  if (type != CLONE_NEWNET) {
    fail(Errc::invalid_argument, "{} is not a network namespace{}", path.string(),
         type < 0 ? "" : " (it is another kind of namespace)");
  }
  return NetworkNamespace(std::move(path), std::move(fd));
}

void NetworkNamespace::run_erased(const std::function<void()>& work) const {
  std::exception_ptr failure;
  // A new thread per call: it joins the namespace and ends there, so no thread ever carries the
  // pod's namespace back into the shim's own work.
  std::thread worker([&] {
    try {
      if (::setns(fd_.get(), CLONE_NEWNET) != 0) fail_errno(errno, "enter network namespace {}", path_.string());
      work();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  worker.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace kata::resource::network
