#include "kata/config/annotations.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <functional>
#include <limits>
#include <regex>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "kata/core/error.hpp"
#include "validation.hpp"

namespace kata::config {

namespace {

/// Limits upstream puts on PCIe ports (IO space for 16 ports per root bus).
constexpr std::uint32_t max_pcie_ports = 16;

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

/// One annotation being applied: its key and trimmed value, for values and messages.
struct Annotation {
  std::string_view key;
  std::string_view value;

  [[noreturn]] void reject(std::string_view why) const {
    fail(Errc::invalid_argument, "annotation {} = \"{}\": {}", key, value, why);
  }

  bool as_bool() const {
    if (value == "true") return true;
    if (value == "false") return false;
    reject("expected true or false");
  }

  template <class T>
  T as_integer() const {
    T number{};
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), number);
    if (value.empty() || ec != std::errc() || ptr != value.data() + value.size()) {
      reject(fmt::format("expected an integer between {} and {}", std::numeric_limits<T>::min(),
                         std::numeric_limits<T>::max()));
    }
    return number;
  }

  double as_number() const {
    double number = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), number);
    if (value.empty() || ec != std::errc() || ptr != value.data() + value.size() || !std::isfinite(number)) {
      reject("expected a number");
    }
    return number;
  }

  std::string as_string() const { return std::string(value); }
};

std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    auto end = text.find(separator, start);
    parts.emplace_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return parts;
}

/// The key part of a kernel parameter ("console" of "console=ttyS0", "quiet" of "quiet").
std::string_view param_key(std::string_view param) { return param.substr(0, param.find('=')); }

/// Upstream replace_kernel_params: parameters of the annotation replace those with the same key,
/// the others are kept in order, the new ones go last.
void replace_kernel_params(std::string& kernel_params, std::string_view replacement) {
  std::vector<std::string> fresh;
  for (auto& part : split(replacement, ' ')) {
    if (!trim(part).empty()) fresh.emplace_back(trim(part));
  }
  if (fresh.empty()) return;
  std::string result;
  for (auto& part : split(kernel_params, ' ')) {
    auto param = trim(part);
    if (param.empty()) continue;
    bool replaced = std::any_of(fresh.begin(), fresh.end(), [&](const std::string& f) { return param_key(f) == param_key(param); });
    if (replaced) continue;
    if (!result.empty()) result += ' ';
    result += param;
  }
  for (const auto& param : fresh) {
    if (!result.empty()) result += ' ';
    result += param;
  }
  kernel_params = std::move(result);
}

std::string base64_decode(const Annotation& annotation) {
  static constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  std::size_t padding = 0;
  for (char c : annotation.value) {
    if (c == '=') {
      ++padding;
      continue;
    }
    auto index = alphabet.find(c);
    if (index == std::string_view::npos || padding > 0) annotation.reject("not standard base64");
    buffer = (buffer << 6) | static_cast<std::uint32_t>(index);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  if (padding > 2 || (annotation.value.size() % 4) != 0) annotation.reject("not standard base64");
  return out;
}

std::string gunzip(const std::string& compressed, const Annotation& annotation) {
  z_stream stream{};
  // 16 + MAX_WBITS: expect a gzip header.
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) fail(Errc::internal, "zlib inflateInit2 failed");
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  stream.avail_in = static_cast<uInt>(compressed.size());
  std::string out;
  std::array<char, 16384> chunk{};
  int status = Z_OK;
  while (status == Z_OK) {
    stream.next_out = reinterpret_cast<Bytef*>(chunk.data());
    stream.avail_out = static_cast<uInt>(chunk.size());
    status = inflate(&stream, Z_NO_FLUSH);
    out.append(chunk.data(), chunk.size() - stream.avail_out);
    if (status == Z_BUF_ERROR && stream.avail_in == 0) break;
  }
  inflateEnd(&stream);
  if (status != Z_STREAM_END) annotation.reject("not a gzip-compressed initdata document");
  return out;
}

std::vector<SharedMount> parse_shared_mounts(const Annotation& annotation) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(annotation.value);
  } catch (const nlohmann::json::exception& error) {
    annotation.reject(fmt::format("not JSON: {}", error.what()));
  }
  if (!json.is_array()) annotation.reject("expected a JSON array of {name, src_ctr, src_path, dst_ctr, dst_path}");
  std::vector<SharedMount> mounts;
  for (const auto& item : json) {
    if (!item.is_object()) annotation.reject("every shared mount must be a JSON object");
    SharedMount mount;
    for (const auto& [field, value] : item.items()) {
      std::string* target = field == "name"       ? &mount.name
                            : field == "src_ctr"  ? &mount.src_ctr
                            : field == "src_path" ? &mount.src_path
                            : field == "dst_ctr"  ? &mount.dst_ctr
                            : field == "dst_path" ? &mount.dst_path
                                                  : nullptr;
      if (target == nullptr) annotation.reject(fmt::format("unknown shared mount field \"{}\"", field));
      if (!value.is_string()) annotation.reject(fmt::format("shared mount field \"{}\" must be a string", field));
      *target = value.get<std::string>();
    }
    mounts.push_back(std::move(mount));
  }
  return mounts;
}

struct HypervisorContext {
  HypervisorConfig& hv;
  const HypervisorPlugin& plugin;
  const LoadOptions& options;
};

void require_glob(const Annotation& annotation, const std::vector<std::string>& globs, std::string_view list_key) {
  if (!detail::matches_any_glob(globs, std::string(annotation.value))) {
    annotation.reject(fmt::format("path is not permitted by {} [{}]", list_key, fmt::join(globs, ", ")));
  }
}

void require_existing(const Annotation& annotation, const LoadOptions& options) {
  if (options.path_check == PathCheck::lexical) return;
  std::error_code ec;
  if (!std::filesystem::exists(std::string(annotation.value), ec)) annotation.reject("no such file");
}

using HypervisorSetter = std::function<void(HypervisorContext&, const Annotation&)>;

template <class T>
HypervisorSetter set_bool(T HypervisorConfig::*group, bool T::*member) {
  return [=](HypervisorContext& c, const Annotation& a) { (c.hv.*group).*member = a.as_bool(); };
}

template <class T, class N>
HypervisorSetter set_int(T HypervisorConfig::*group, N T::*member) {
  return [=](HypervisorContext& c, const Annotation& a) { (c.hv.*group).*member = a.template as_integer<N>(); };
}

template <class T>
HypervisorSetter set_string(T HypervisorConfig::*group, std::string T::*member) {
  return [=](HypervisorContext& c, const Annotation& a) { (c.hv.*group).*member = a.as_string(); };
}

HypervisorSetter set_sector_size(std::uint32_t BlockDeviceInfo::*member) {
  return [=](HypervisorContext& c, const Annotation& a) {
    auto size = a.as_integer<std::uint32_t>();
    if (!detail::valid_sector_size(size)) a.reject("must be 0 or a power of two between 512 and 65536");
    c.hv.block_device.*member = size;
  };
}

HypervisorSetter set_existing_boot_path(std::string BootInfo::*member) {
  return [=](HypervisorContext& c, const Annotation& a) {
    require_existing(a, c.options);
    c.hv.boot.*member = a.as_string();
  };
}

HypervisorSetter set_pcie_ports(std::uint32_t DeviceInfo::*member) {
  return [=](HypervisorContext& c, const Annotation& a) {
    auto ports = a.as_integer<std::uint32_t>();
    if (ports > max_pcie_ports) a.reject(fmt::format("at most {} ports", max_pcie_ports));
    c.hv.device.*member = ports;
  };
}

const std::map<std::string, HypervisorSetter, std::less<>>& hypervisor_setters() {
  using H = HypervisorConfig;
  static const std::map<std::string, HypervisorSetter, std::less<>> setters{
      {"path",
       [](HypervisorContext& c, const Annotation& a) {
         require_glob(a, c.hv.valid_hypervisor_paths, "valid_hypervisor_paths");
         c.hv.path = a.as_string();
       }},
      {"jailer_path",
       [](HypervisorContext& c, const Annotation& a) {
         require_glob(a, c.hv.valid_jailer_paths, "valid_jailer_paths");
         c.hv.jailer_path = a.as_string();
       }},
      {"enable_iothreads", [](HypervisorContext& c, const Annotation& a) { c.hv.enable_iothreads = a.as_bool(); }},
      {"indep_iothreads",
       [](HypervisorContext& c, const Annotation& a) { c.hv.indep_iothreads = a.as_integer<std::uint32_t>(); }},
      {"block_device_driver", set_string(&H::block_device, &BlockDeviceInfo::block_device_driver)},
      {"disable_block_device_use", set_bool(&H::block_device, &BlockDeviceInfo::disable_block_device_use)},
      {"block_device_cache_set", set_bool(&H::block_device, &BlockDeviceInfo::block_device_cache_set)},
      {"block_device_cache_direct", set_bool(&H::block_device, &BlockDeviceInfo::block_device_cache_direct)},
      {"block_device_cache_noflush", set_bool(&H::block_device, &BlockDeviceInfo::block_device_cache_noflush)},
      {"disable_image_nvdimm", set_bool(&H::block_device, &BlockDeviceInfo::disable_image_nvdimm)},
      {"memory_offset", set_int(&H::block_device, &BlockDeviceInfo::memory_offset)},
      {"enable_vhost_user_store", set_bool(&H::block_device, &BlockDeviceInfo::enable_vhost_user_store)},
      {"vhost_user_store_path",
       [](HypervisorContext& c, const Annotation& a) {
         require_glob(a, c.hv.block_device.valid_vhost_user_store_paths, "valid_vhost_user_store_paths");
         c.hv.block_device.vhost_user_store_path = a.as_string();
       }},
      {"blk_logical_sector_size", set_sector_size(&BlockDeviceInfo::block_device_logical_sector_size)},
      {"blk_physical_sector_size", set_sector_size(&BlockDeviceInfo::block_device_physical_sector_size)},
      {"block_device_num_queues", set_int(&H::block_device, &BlockDeviceInfo::num_queues)},
      {"block_device_queue_size", set_int(&H::block_device, &BlockDeviceInfo::queue_size)},
      {"kernel", set_existing_boot_path(&BootInfo::kernel)},
      {"image", set_existing_boot_path(&BootInfo::image)},
      {"initrd", set_existing_boot_path(&BootInfo::initrd)},
      {"firmware", set_existing_boot_path(&BootInfo::firmware)},
      {"kernel_params",
       [](HypervisorContext& c, const Annotation& a) { replace_kernel_params(c.hv.boot.kernel_params, a.value); }},
      {"kernel_verity_params",
       [](HypervisorContext& c, const Annotation& a) {
         if (a.value.empty()) return;
         try {
           detail::check_kernel_verity_params(a.value);
         } catch (const Error& error) {
           a.reject(error.what());
         }
         c.hv.boot.kernel_verity_params = a.as_string();
       }},
      {"cpu_features", set_string(&H::cpu, &CpuInfo::cpu_features)},
      {"default_vcpus",
       [](HypervisorContext& c, const Annotation& a) {
         const double vcpus = a.as_number();
         if (vcpus > c.plugin.max_vcpus) {
           a.reject(fmt::format("{} supports at most {} vCPUs", c.plugin.name, c.plugin.max_vcpus));
         }
         c.hv.cpu.default_vcpus = vcpus;
       }},
      {"default_max_vcpus", set_int(&H::cpu, &CpuInfo::default_maxvcpus)},
      {"pcie_root_port", set_pcie_ports(&DeviceInfo::pcie_root_port)},
      {"pcie_switch_port", set_pcie_ports(&DeviceInfo::pcie_switch_port)},
      {"enable_iommu", set_bool(&H::device, &DeviceInfo::enable_iommu)},
      {"enable_iommu_platform", set_bool(&H::device, &DeviceInfo::enable_iommu_platform)},
      {"machine_type", set_string(&H::machine, &MachineInfo::machine_type)},
      {"machine_accelerators", set_string(&H::machine, &MachineInfo::machine_accelerators)},
      {"entropy_source",
       [](HypervisorContext& c, const Annotation& a) {
         require_glob(a, c.hv.machine.valid_entropy_sources, "valid_entropy_sources");
         c.hv.machine.entropy_source = a.as_string();
       }},
      {"prefetch_files.list", [](HypervisorContext& c, const Annotation& a) { c.hv.prefetch_list_path = a.as_string(); }},
      {"default_memory",
       [](HypervisorContext& c, const Annotation& a) {
         std::uint32_t mib = 0;
         try {
           mib = parse_memory_mib(a.value);
         } catch (const Error& error) {
           a.reject(error.what());
         }
         if (mib < c.plugin.min_memory_mib) {
           a.reject(fmt::format("{} needs at least {} MiB", c.plugin.name, c.plugin.min_memory_mib));
         }
         c.hv.memory.default_memory = mib;
       }},
      {"memory_slots", set_int(&H::memory, &MemoryInfo::memory_slots)},
      {"enable_mem_prealloc", set_bool(&H::memory, &MemoryInfo::enable_mem_prealloc)},
      {"enable_hugepages", set_bool(&H::memory, &MemoryInfo::enable_hugepages)},
      {"hugepage_type",
       [](HypervisorContext& c, const Annotation& a) {
         if (a.value != "hugetlbfs" && a.value != "thp") a.reject("expected hugetlbfs or thp");
         c.hv.memory.hugepage_type = a.as_string();
       }},
      {"enable_virtio_mem", set_bool(&H::memory, &MemoryInfo::enable_virtio_mem)},
      {"enable_guest_swap", set_bool(&H::memory, &MemoryInfo::enable_guest_swap)},
      {"disable_vhost_net", set_bool(&H::network, &NetworkInfo::disable_vhost_net)},
      {"rx_rate_limiter_max_rate", set_int(&H::network, &NetworkInfo::rx_rate_limiter_max_rate)},
      {"tx_rate_limiter_max_rate", set_int(&H::network, &NetworkInfo::tx_rate_limiter_max_rate)},
      {"network_queues", set_int(&H::network, &NetworkInfo::network_queues)},
      {"guest_hook_path",
       [](HypervisorContext& c, const Annotation& a) {
         require_existing(a, c.options);
         c.hv.security.guest_hook_path = a.as_string();
       }},
      {"rootless", set_bool(&H::security, &SecurityInfo::rootless)},
      {"cc_init_data",
       [](HypervisorContext& c, const Annotation& a) {
         c.hv.security.initdata = a.value.empty() ? std::string() : gunzip(base64_decode(a), a);
       }},
      {"default_gpus", set_int(&H::remote, &RemoteInfo::default_gpus)},
      {"default_gpu_model", set_string(&H::remote, &RemoteInfo::default_gpu_model)},
      {"shared_fs", [](HypervisorContext& c, const Annotation& a) { c.hv.shared_fs.shared_fs = a.as_string(); }},
      {"virtio_fs_daemon",
       [](HypervisorContext& c, const Annotation& a) {
         require_glob(a, c.hv.shared_fs.valid_virtio_fs_daemon_paths, "valid_virtio_fs_daemon_paths");
         c.hv.shared_fs.virtio_fs_daemon = a.as_string();
       }},
      {"virtio_fs_cache", set_string(&H::shared_fs, &SharedFsInfo::virtio_fs_cache)},
      {"virtio_fs_cache_size", set_int(&H::shared_fs, &SharedFsInfo::virtio_fs_cache_size)},
      {"virtio_fs_extra_args",
       [](HypervisorContext& c, const Annotation& a) {
         for (auto& arg : split(a.value, ',')) c.hv.shared_fs.virtio_fs_extra_args.push_back(std::move(arg));
       }},
  };
  return setters;
}

std::vector<std::regex> compile_enabled(const HypervisorConfig& hv, std::string_view hypervisor_name) {
  std::vector<std::regex> patterns;
  for (const auto& pattern : hv.security.enable_annotations) {
    try {
      patterns.emplace_back(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& error) {
      fail(Errc::invalid_argument, "[hypervisor.{}] enable_annotations: \"{}\" is not a valid regular expression: {}",
           hypervisor_name, pattern, error.what());
    }
  }
  return patterns;
}

/// Agent and runtime annotations; false when `key` is none of them.
bool apply_agent_or_runtime(Config& config, AgentConfig& agent, const Annotation& a) {
  const std::string_view key = a.key;
  if (key.starts_with(annotation_agent_prefix)) {
    const auto name = key.substr(annotation_agent_prefix.size());
    if (name == "kernel_modules") {
      for (auto& module : split(a.value, ';')) agent.kernel_modules.push_back(std::move(module));
    } else if (name == "enable_tracing") {
      agent.enable_tracing = a.as_bool();
    } else if (name == "container_pipe_size") {
      agent.container_pipe_size = a.as_integer<std::uint32_t>();
    } else if (name == "cdh_api_timeout_ms") {
      agent.cdh_api_timeout_ms = a.as_integer<std::uint32_t>();
    } else {
      return false;
    }
    return true;
  }
  if (!key.starts_with(annotation_runtime_prefix)) return false;
  const auto name = key.substr(annotation_runtime_prefix.size());
  RuntimeConfig& runtime = config.runtime;
  if (name == "create_container_timeout") {
    const auto seconds = a.as_integer<std::uint32_t>();
    agent.request_timeout_ms = seconds > UINT32_MAX / 1000 ? UINT32_MAX : seconds * 1000;
  } else if (name == "name") {
    constexpr std::array<std::string_view, 3> runtimes{"virt-container", "linux-container", "wasm-container"};
    if (std::find(runtimes.begin(), runtimes.end(), a.value) == runtimes.end()) {
      a.reject("expected one of virt-container, linux-container, wasm-container");
    }
    runtime.name = a.as_string();
  } else if (name == "disable_guest_seccomp") {
    runtime.disable_guest_seccomp = a.as_bool();
  } else if (name == "enable_pprof") {
    runtime.enable_pprof = a.as_bool();
  } else if (name == "experimental") {
    for (auto& feature : split(a.value, ',')) runtime.experimental.push_back(std::move(feature));
  } else if (name == "internetworking_model") {
    runtime.internetworking_model = a.as_string();
  } else if (name == "sandbox_cgroup_only") {
    runtime.sandbox_cgroup_only = a.as_bool();
  } else if (name == "enable_vcpus_pinning") {
    runtime.enable_vcpus_pinning = a.as_bool();
  } else if (name == "disable_new_netns") {
    runtime.disable_new_netns = a.as_bool();
  } else if (name == "vfio_mode") {
    runtime.vfio_mode = a.as_string();
  } else if (name == "shared_mounts") {
    runtime.shared_mounts = parse_shared_mounts(a);
  } else {
    return false;
  }
  return true;
}

}  // namespace

std::uint32_t parse_memory_mib(std::string_view text) {
  text = trim(text);
  double number = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (text.empty() || ec != std::errc() || number < 0 || !std::isfinite(number)) {
    fail(Errc::invalid_argument, "\"{}\" is not a memory size (e.g. 2048, 512Mi, 2 GiB)", text);
  }
  auto unit = trim(std::string_view(ptr, text.data() + text.size() - ptr));
  std::string lower;
  for (char c : unit) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  static const std::map<std::string, double, std::less<>> units{
      {"b", 1.0},          {"k", 1e3},          {"kb", 1e3},         {"m", 1e6},          {"mb", 1e6},
      {"g", 1e9},          {"gb", 1e9},         {"t", 1e12},         {"tb", 1e12},        {"ki", 1024.0},
      {"kib", 1024.0},     {"mi", 1048576.0},   {"mib", 1048576.0},  {"gi", 1073741824.0}, {"gib", 1073741824.0},
      {"ti", 1099511627776.0}, {"tib", 1099511627776.0},
  };
  double mib = number;
  if (!lower.empty()) {
    auto found = units.find(lower);
    if (found == units.end()) {
      fail(Errc::invalid_argument, "\"{}\" has an unknown unit \"{}\"; use B, K, M, G, T (1000) or Ki, Mi, Gi, Ti (1024)",
           text, unit);
    }
    mib = number * found->second / 1048576.0;
  }
  if (mib > std::numeric_limits<std::uint32_t>::max()) fail(Errc::invalid_argument, "\"{}\" is too large", text);
  return static_cast<std::uint32_t>(mib);
}

void apply_annotations(Config& config, const std::map<std::string, std::string>& annotations,
                       const LoadOptions& options, std::vector<std::string>& warnings) {
  const std::string hypervisor_key = fmt::format("{}hypervisor_name", annotation_runtime_prefix);
  const std::string agent_key = fmt::format("{}agent_name", annotation_runtime_prefix);
  auto select = [&](const std::string& key, auto& sections, std::string& selected, std::string_view kind) {
    auto it = annotations.find(key);
    if (it == annotations.end()) return;
    const std::string name(trim(it->second));
    if (sections.contains(name)) {
      selected = name;
    } else {
      warnings.push_back(fmt::format("annotation {} = \"{}\" ignored: the configuration has no [{}.{}] section", key,
                                     it->second, kind, name));
    }
  };
  select(hypervisor_key, config.hypervisor, config.runtime.hypervisor_name, "hypervisor");
  select(agent_key, config.agent, config.runtime.agent_name, "agent");

  HypervisorConfig& hv = config.active_hypervisor();
  AgentConfig& agent = config.active_agent();
  const HypervisorPlugin* plugin = find_hypervisor_plugin(config.runtime.hypervisor_name);
  if (plugin == nullptr) {
    fail(Errc::invalid_argument, "[runtime] hypervisor_name = \"{}\" is not a known hypervisor; known hypervisors: {}",
         config.runtime.hypervisor_name, known_hypervisor_names());
  }
  const auto enabled = compile_enabled(hv, config.runtime.hypervisor_name);
  HypervisorContext context{hv, *plugin, options};

  for (const auto& [key, raw_value] : annotations) {
    if (key == hypervisor_key || key == agent_key) continue;
    const Annotation annotation{key, trim(raw_value)};
    if (key.starts_with(annotation_hypervisor_prefix)) {
      const std::string_view suffix = std::string_view(key).substr(annotation_hypervisor_prefix.size());
      const bool allowed = std::any_of(enabled.begin(), enabled.end(), [&](const std::regex& pattern) {
        return std::regex_search(suffix.begin(), suffix.end(), pattern);
      });
      if (!allowed) {
        warnings.push_back(fmt::format("annotation {} ignored: not enabled by [hypervisor.{}] enable_annotations", key,
                                       config.runtime.hypervisor_name));
        continue;
      }
      const auto& setters = hypervisor_setters();
      auto setter = setters.find(suffix);
      if (setter == setters.end()) {
        fail(Errc::invalid_argument, "annotation {} is enabled by [hypervisor.{}] enable_annotations but is not a "
             "hypervisor setting this runtime knows", key, config.runtime.hypervisor_name);
      }
      setter->second(context, annotation);
    } else if (key == fmt::format("{}sandbox_bind_mounts", annotation_runtime_prefix)) {
      warnings.push_back(fmt::format(
          "annotation {} refused: sandbox bind mounts are host paths and come only from the configuration file", key));
    } else if (!apply_agent_or_runtime(config, agent, annotation) && key.starts_with(annotation_config_prefix)) {
      warnings.push_back(fmt::format("annotation {} ignored: not a known configuration annotation", key));
    }
  }

  const auto& block = hv.block_device;
  if (block.block_device_logical_sector_size != 0 && block.block_device_physical_sector_size != 0 &&
      block.block_device_logical_sector_size > block.block_device_physical_sector_size) {
    fail(Errc::invalid_argument,
         "annotations: block device logical sector size {} is larger than the physical sector size {}",
         block.block_device_logical_sector_size, block.block_device_physical_sector_size);
  }
  adjust_config(config, options, warnings);
}

}  // namespace kata::config
