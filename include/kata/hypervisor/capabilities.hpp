// What a hypervisor backend can do, as a compile-time fact about its type.
//
// Upstream checks capability bits at run time (and shipped `todo!()` bodies for operations a
// backend could not do). Here each backend declares a Hana set of capability tag types; sandbox
// code asks `supports<H, capability::cpu_hotplug>` in `if constexpr`, so an unsupported path is not
// even compiled into that variant's binary, and kata-ctl can still list them at run time.
#pragma once

#include <string_view>
#include <vector>

#include <boost/hana/contains.hpp>
#include <boost/hana/core/is_a.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/set.hpp>
#include <boost/hana/type.hpp>

namespace kata::hypervisor {

namespace capability {
// Each tag names itself so that run-time listings need no separate table.
struct block_device { static constexpr std::string_view name = "block_device"; };
struct block_device_hotplug { static constexpr std::string_view name = "block_device_hotplug"; };
struct block_discard { static constexpr std::string_view name = "block_discard"; };
struct multi_queue { static constexpr std::string_view name = "multi_queue"; };
struct fs_sharing { static constexpr std::string_view name = "fs_sharing"; };
struct hybrid_vsock { static constexpr std::string_view name = "hybrid_vsock"; };
struct network_hotplug { static constexpr std::string_view name = "network_hotplug"; };
struct cpu_hotplug { static constexpr std::string_view name = "cpu_hotplug"; };
struct memory_hotplug { static constexpr std::string_view name = "memory_hotplug"; };
struct pause_resume { static constexpr std::string_view name = "pause_resume"; };
struct guest_memory_probe { static constexpr std::string_view name = "guest_memory_probe"; };
}  // namespace capability

/// The set a backend declares: `static constexpr auto capabilities = capability_set<...>;`
template <class... Capabilities>
inline constexpr auto capability_set = boost::hana::make_set(boost::hana::type_c<Capabilities>...);

/// True when `capabilities` is a Hana set (what the Hypervisor concept requires of the member).
template <class Set>
inline constexpr bool is_capability_set = boost::hana::is_a<boost::hana::set_tag, Set>;

/// Whether backend H declares Capability. A constant expression usable in `if constexpr`.
template <class H, class Capability>
inline constexpr bool supports =
    decltype(boost::hana::contains(H::capabilities, boost::hana::type_c<Capability>))::value;

/// Names of the capabilities of H, for kata-ctl and logs.
template <class H>
std::vector<std::string_view> capability_names() {
  std::vector<std::string_view> names;
  boost::hana::for_each(H::capabilities, [&](auto type) { names.push_back(decltype(type)::type::name); });
  return names;
}

}  // namespace kata::hypervisor
