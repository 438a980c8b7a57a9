#include "kata/persist/state.hpp"

#include <algorithm>
#include <limits>

namespace kata::persist {

namespace {

using nlohmann::json;

// ---- writing ----------------------------------------------------------------------------

template <class T, class Write>
json optional_to_json(const std::optional<T>& value, Write write) {
  return value ? write(*value) : json(nullptr);
}

json link_endpoint_json(const LinkEndpointState& s) { return {{"if_name", s.if_name}, {"network_qos", s.network_qos}}; }

json endpoint_json(const EndpointState& e) {
  json out;
  out["physical_endpoint"] = optional_to_json(e.physical_endpoint, [](const PhysicalEndpointState& s) {
    return json{{"bdf", s.bdf},           {"driver", s.driver},         {"vendor_id", s.vendor_id},
                {"device_id", s.device_id}, {"hard_addr", s.hard_addr}, {"is_vfio", s.is_vfio},
                {"iface_name", s.iface_name}, {"bus_type", s.bus_type}};
  });
  out["veth_endpoint"] = optional_to_json(e.veth_endpoint, link_endpoint_json);
  out["ipvlan_endpoint"] = optional_to_json(e.ipvlan_endpoint, link_endpoint_json);
  out["macvlan_endpoint"] = optional_to_json(e.macvlan_endpoint, link_endpoint_json);
  out["vlan_endpoint"] = optional_to_json(e.vlan_endpoint, link_endpoint_json);
  out["tap_endpoint"] =
      optional_to_json(e.tap_endpoint, [](const TapEndpointState& s) { return json{{"if_name", s.if_name}}; });
  out["vhost_user_endpoint"] = optional_to_json(e.vhost_user_endpoint, [](const VhostUserEndpointState& s) {
    return json{{"if_name", s.if_name}, {"socket_path", s.socket_path}};
  });
  return out;
}

json hypervisor_json(const HypervisorState& h) {
  std::vector<std::string> devices = h.cached_block_devices;
  std::sort(devices.begin(), devices.end());
  devices.erase(std::unique(devices.begin(), devices.end()), devices.end());
  json out;
  out["hypervisor_type"] = h.hypervisor_type;
  out["pid"] = h.pid ? json(*h.pid) : json(nullptr);
  out["uuid"] = h.uuid;
  out["api_socket"] = h.api_socket;
  out["id"] = h.id;
  out["vm_path"] = h.vm_path;
  out["jailed"] = h.jailed;
  out["jailer_root"] = h.jailer_root;
  out["netns"] = h.netns ? json(*h.netns) : json(nullptr);
  out["config"] = h.config;
  out["run_dir"] = h.run_dir;
  out["cached_block_devices"] = devices;
  out["virtiofs_daemon_pid"] = h.virtiofs_daemon_pid;
  out["passfd_listener_port"] = h.passfd_listener_port ? json(*h.passfd_listener_port) : json(nullptr);
  out["guest_protection_to_use"] = h.guest_protection_to_use;
  return out;
}

json cleanup_json(const CleanupState& c) {
  json processes = json::array();
  for (const auto& p : c.processes) processes.push_back({{"role", p.role}, {"pid", p.pid}, {"start_time", p.start_time}});
  json links = json::array();
  for (const auto& l : c.links) links.push_back({{"name", l.name}, {"netns", l.netns}});
  return {{"processes", processes},
          {"mounts", c.mounts},
          {"links", links},
          {"network_namespaces", c.network_namespaces},
          {"directories", c.directories}};
}

// ---- tolerant reading -------------------------------------------------------------------

// A view of one JSON object at a dotted path. Reads leave the target untouched when the key is
// missing or null and record a warning when it has the wrong type.
class Reader {
 public:
  Reader(const json& object, std::string path, std::vector<std::string>& warnings)
      : object_(object), path_(std::move(path)), warnings_(warnings) {}

  void read(const char* key, std::string& out) {
    if (const json* v = find(key, json::value_t::string, "string")) out = v->get<std::string>();
  }
  void read(const char* key, bool& out) {
    if (const json* v = find(key, json::value_t::boolean, "boolean")) out = v->get<bool>();
  }
  template <class Int>
    requires std::is_integral_v<Int>
  void read(const char* key, Int& out) {
    const json* v = find_any(key);
    if (v == nullptr) return;
    if (v->is_number_unsigned()) {
      const auto value = v->get<std::uint64_t>();
      if (value <= static_cast<std::uint64_t>(std::numeric_limits<Int>::max())) {
        out = static_cast<Int>(value);
        return;
      }
    } else if (v->is_number_integer()) {
      const auto value = v->get<std::int64_t>();
      if (value >= static_cast<std::int64_t>(std::numeric_limits<Int>::min()) &&
          (value < 0 || static_cast<std::uint64_t>(value) <= static_cast<std::uint64_t>(std::numeric_limits<Int>::max()))) {
        out = static_cast<Int>(value);
        return;
      }
    }
    warn(key, "expected an integer in range");
  }
  template <class T>
  void read(const char* key, std::optional<T>& out) {
    if (find_any(key) == nullptr) return;
    T value{};
    const std::size_t before = warnings_.size();
    read(key, value);
    if (warnings_.size() == before) out = std::move(value);
  }
  void read(const char* key, std::vector<std::string>& out) {
    each(key, [&](const json& item, const std::string& path) {
      if (item.is_string()) {
        out.push_back(item.get<std::string>());
      } else {
        warnings_.push_back(path + ": expected string");
      }
    });
  }
  void read_raw(const char* key, json& out) {
    if (const json* v = find_any(key)) out = *v;
  }
  /// Calls read_object(Reader&) for a nested object.
  template <class Fn>
  bool object(const char* key, Fn&& read_object) {
    const json* v = find(key, json::value_t::object, "object");
    if (v == nullptr) return false;
    Reader nested(*v, child(key), warnings_);
    read_object(nested);
    return true;
  }
  /// Calls read_object(Reader&) for each object element of an array.
  template <class Fn>
  void objects(const char* key, Fn&& read_object) {
    each(key, [&](const json& item, const std::string& path) {
      if (!item.is_object()) {
        warnings_.push_back(path + ": expected object");
        return;
      }
      Reader nested(item, path, warnings_);
      read_object(nested);
    });
  }

 private:
  std::string child(const char* key) const { return path_.empty() ? key : path_ + "." + key; }
  void warn(const char* key, const char* what) { warnings_.push_back(child(key) + ": " + what); }

  const json* find_any(const char* key) const {
    const auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  const json* find(const char* key, json::value_t type, const char* type_name) {
    const json* v = find_any(key);
    if (v == nullptr) return nullptr;
    if (v->type() != type) {
      warnings_.push_back(child(key) + ": expected " + type_name);
      return nullptr;
    }
    return v;
  }
  template <class Fn>
  void each(const char* key, Fn&& on_item) {
    const json* v = find(key, json::value_t::array, "array");
    if (v == nullptr) return;
    for (std::size_t i = 0; i < v->size(); ++i) on_item((*v)[i], child(key) + "[" + std::to_string(i) + "]");
  }

  const json& object_;
  std::string path_;
  std::vector<std::string>& warnings_;
};

void read_link_endpoint(Reader& r, const char* key, std::optional<LinkEndpointState>& out) {
  r.object(key, [&](Reader& e) {
    LinkEndpointState s;
    e.read("if_name", s.if_name);
    e.read("network_qos", s.network_qos);
    out = s;
  });
}

EndpointState read_endpoint(Reader& r) {
  EndpointState e;
  r.object("physical_endpoint", [&](Reader& p) {
    PhysicalEndpointState s;
    p.read("bdf", s.bdf);
    p.read("driver", s.driver);
    p.read("vendor_id", s.vendor_id);
    p.read("device_id", s.device_id);
    p.read("hard_addr", s.hard_addr);
    p.read("is_vfio", s.is_vfio);
    p.read("iface_name", s.iface_name);
    p.read("bus_type", s.bus_type);
    e.physical_endpoint = s;
  });
  read_link_endpoint(r, "veth_endpoint", e.veth_endpoint);
  read_link_endpoint(r, "ipvlan_endpoint", e.ipvlan_endpoint);
  read_link_endpoint(r, "macvlan_endpoint", e.macvlan_endpoint);
  read_link_endpoint(r, "vlan_endpoint", e.vlan_endpoint);
  r.object("tap_endpoint", [&](Reader& t) {
    TapEndpointState s;
    t.read("if_name", s.if_name);
    e.tap_endpoint = s;
  });
  r.object("vhost_user_endpoint", [&](Reader& v) {
    VhostUserEndpointState s;
    v.read("if_name", s.if_name);
    v.read("socket_path", s.socket_path);
    e.vhost_user_endpoint = s;
  });
  return e;
}

void read_hypervisor(Reader& r, HypervisorState& h) {
  r.read("hypervisor_type", h.hypervisor_type);
  r.read("pid", h.pid);
  r.read("uuid", h.uuid);
  r.read("api_socket", h.api_socket);
  r.read("id", h.id);
  r.read("vm_path", h.vm_path);
  r.read("jailed", h.jailed);
  r.read("jailer_root", h.jailer_root);
  r.read("netns", h.netns);
  r.read_raw("config", h.config);
  r.read("run_dir", h.run_dir);
  r.read("cached_block_devices", h.cached_block_devices);
  r.read("virtiofs_daemon_pid", h.virtiofs_daemon_pid);
  r.read("passfd_listener_port", h.passfd_listener_port);
  r.read_raw("guest_protection_to_use", h.guest_protection_to_use);
}

void read_cleanup(Reader& r, CleanupState& c) {
  r.objects("processes", [&](Reader& p) {
    ProcessRecord record;
    p.read("role", record.role);
    p.read("pid", record.pid);
    p.read("start_time", record.start_time);
    // Without both numbers the record cannot be matched safely; killing by pid alone could hit
    // a recycled pid, so an incomplete record is dropped.
    if (record.pid > 0 && record.start_time > 0) c.processes.push_back(std::move(record));
  });
  r.read("mounts", c.mounts);
  r.objects("links", [&](Reader& l) {
    LinkRecord record;
    l.read("name", record.name);
    l.read("netns", record.netns);
    if (!record.name.empty()) c.links.push_back(std::move(record));
  });
  r.read("network_namespaces", c.network_namespaces);
  r.read("directories", c.directories);
}

}  // namespace

nlohmann::json to_json(const SandboxState& state) {
  json endpoints = json::array();
  for (const auto& e : state.resource.endpoint) endpoints.push_back(endpoint_json(e));
  json resource;
  resource["endpoint"] = std::move(endpoints);
  resource["cgroup_state"] = optional_to_json(state.resource.cgroup_state, [](const CgroupState& c) {
    return json{{"path", c.path},
                {"overhead_path", c.overhead_path},
                {"sandbox_cgroup_only", c.sandbox_cgroup_only},
                {"enable_vcpus_pinning", c.enable_vcpus_pinning}};
  });
  return {{"sandbox_type", state.sandbox_type},
          {"resource", std::move(resource)},
          {"hypervisor", hypervisor_json(state.hypervisor)},
          {"cleanup", cleanup_json(state.cleanup)}};
}

SandboxState state_from_json(const nlohmann::json& document, std::vector<std::string>& warnings) {
  SandboxState state;
  if (!document.is_object()) {
    warnings.push_back("document: expected object");
    return state;
  }
  Reader root(document, "", warnings);
  root.read("sandbox_type", state.sandbox_type);
  root.object("resource", [&](Reader& r) {
    r.objects("endpoint", [&](Reader& e) { state.resource.endpoint.push_back(read_endpoint(e)); });
    r.object("cgroup_state", [&](Reader& c) {
      CgroupState s;
      c.read("path", s.path);
      c.read("overhead_path", s.overhead_path);
      c.read("sandbox_cgroup_only", s.sandbox_cgroup_only);
      c.read("enable_vcpus_pinning", s.enable_vcpus_pinning);
      state.resource.cgroup_state = s;
    });
  });
  root.object("hypervisor", [&](Reader& h) { read_hypervisor(h, state.hypervisor); });
  root.object("cleanup", [&](Reader& c) { read_cleanup(c, state.cleanup); });
  return state;
}

}  // namespace kata::persist
