#include "kata/agent/oci_conversion.hpp"

#include "kata/core/error.hpp"

namespace kata::agent {
namespace {

template <class Range>
void assign(google::protobuf::RepeatedPtrField<std::string>* out, const Range& in) {
  out->Clear();
  for (const auto& item : in) *out->Add() = item;
}

template <class Scalar, class Range>
void assign(google::protobuf::RepeatedField<Scalar>* out, const Range& in) {
  out->Clear();
  for (const auto& item : in) out->Add(item);
}

template <class Range>
std::vector<std::string> to_vector(const Range& in) {
  return {in.begin(), in.end()};
}

void to_agent(const oci::Hook& in, grpc::Hook* out) {
  out->set_path(in.path);
  assign(out->mutable_args(), in.args);
  assign(out->mutable_env(), in.env);
  if (in.timeout) out->set_timeout(*in.timeout);
}

oci::Hook from_agent(const grpc::Hook& in) {
  oci::Hook hook;
  hook.path = in.path();
  hook.args = to_vector(in.args());
  hook.env = to_vector(in.env());
  if (in.timeout() != 0) hook.timeout = static_cast<int>(in.timeout());
  return hook;
}

// Seccomp keeps its JSON shape in our model; the agent's mirror is typed (and, like upstream's,
// has no defaultErrnoRet).
void seccomp_to_agent(const oci::Json& in, grpc::LinuxSeccomp* out) {
  out->set_defaultaction(in.value("defaultAction", ""));
  for (const auto& arch : in.value("architectures", oci::Json::array())) out->add_architectures(arch.get<std::string>());
  for (const auto& flag : in.value("flags", oci::Json::array())) out->add_flags(flag.get<std::string>());
  for (const auto& rule : in.value("syscalls", oci::Json::array())) {
    auto* syscall = out->add_syscalls();
    for (const auto& name : rule.value("names", oci::Json::array())) syscall->add_names(name.get<std::string>());
    syscall->set_action(rule.value("action", ""));
    if (rule.contains("errnoRet")) syscall->set_errnoret(rule["errnoRet"].get<std::uint32_t>());
    for (const auto& arg : rule.value("args", oci::Json::array())) {
      auto* out_arg = syscall->add_args();
      out_arg->set_index(arg.value("index", 0u));
      out_arg->set_value(arg.value("value", std::uint64_t{0}));
      out_arg->set_valuetwo(arg.value("valueTwo", std::uint64_t{0}));
      out_arg->set_op(arg.value("op", ""));
    }
  }
}

oci::Json seccomp_from_agent(const grpc::LinuxSeccomp& in) {
  oci::Json out = oci::Json::object();
  out["defaultAction"] = in.defaultaction();
  if (in.architectures_size() > 0) out["architectures"] = to_vector(in.architectures());
  if (in.flags_size() > 0) out["flags"] = to_vector(in.flags());
  oci::Json syscalls = oci::Json::array();
  for (const auto& rule : in.syscalls()) {
    oci::Json entry = {{"names", to_vector(rule.names())}, {"action", rule.action()}};
    if (rule.has_errnoret()) entry["errnoRet"] = rule.errnoret();
    oci::Json args = oci::Json::array();
    for (const auto& arg : rule.args()) {
      args.push_back({{"index", arg.index()}, {"value", arg.value()}, {"valueTwo", arg.valuetwo()}, {"op", arg.op()}});
    }
    if (!args.empty()) entry["args"] = std::move(args);
    syscalls.push_back(std::move(entry));
  }
  if (!syscalls.empty()) out["syscalls"] = std::move(syscalls);
  return out;
}

}  // namespace

grpc::Process to_agent_process(const oci::Process& in) {
  grpc::Process out;
  out.set_terminal(in.terminal);
  if (in.console_size) {
    out.mutable_consolesize()->set_height(in.console_size->height);
    out.mutable_consolesize()->set_width(in.console_size->width);
  }
  auto* user = out.mutable_user();
  user->set_uid(in.user.uid);
  user->set_gid(in.user.gid);
  assign(user->mutable_additionalgids(), in.user.additional_gids);
  user->set_username(in.user.username);
  assign(out.mutable_args(), in.args);
  assign(out.mutable_env(), in.env);
  out.set_cwd(in.cwd);
  if (in.capabilities) {
    auto* caps = out.mutable_capabilities();
    assign(caps->mutable_bounding(), in.capabilities->bounding);
    assign(caps->mutable_effective(), in.capabilities->effective);
    assign(caps->mutable_inheritable(), in.capabilities->inheritable);
    assign(caps->mutable_permitted(), in.capabilities->permitted);
    assign(caps->mutable_ambient(), in.capabilities->ambient);
  }
  for (const auto& limit : in.rlimits) {
    auto* rlimit = out.add_rlimits();
    rlimit->set_type(limit.type);
    rlimit->set_hard(limit.hard);
    rlimit->set_soft(limit.soft);
  }
  out.set_nonewprivileges(in.no_new_privileges);
  out.set_apparmorprofile(in.apparmor_profile);
  if (in.oom_score_adj) out.set_oomscoreadj(*in.oom_score_adj);
  out.set_selinuxlabel(in.selinux_label);
  return out;
}

oci::Process from_agent_process(const grpc::Process& in) {
  oci::Process out;
  out.terminal = in.terminal();
  if (in.has_consolesize()) out.console_size = oci::Box{in.consolesize().height(), in.consolesize().width()};
  out.user.uid = in.user().uid();
  out.user.gid = in.user().gid();
  out.user.additional_gids.assign(in.user().additionalgids().begin(), in.user().additionalgids().end());
  out.user.username = in.user().username();
  out.args = to_vector(in.args());
  out.env = to_vector(in.env());
  out.cwd = in.cwd();
  if (in.has_capabilities()) {
    const auto& caps = in.capabilities();
    out.capabilities = oci::Capabilities{to_vector(caps.bounding()), to_vector(caps.effective()),
                                         to_vector(caps.inheritable()), to_vector(caps.permitted()),
                                         to_vector(caps.ambient())};
  }
  for (const auto& limit : in.rlimits()) out.rlimits.push_back(oci::Rlimit{limit.type(), limit.hard(), limit.soft()});
  out.no_new_privileges = in.nonewprivileges();
  out.apparmor_profile = in.apparmorprofile();
  if (in.oomscoreadj() != 0) out.oom_score_adj = static_cast<int>(in.oomscoreadj());
  out.selinux_label = in.selinuxlabel();
  return out;
}

grpc::LinuxResources to_agent_resources(const oci::Resources& in) {
  grpc::LinuxResources out;
  for (const auto& rule : in.devices) {
    auto* device = out.add_devices();
    device->set_allow(rule.allow);
    device->set_type(rule.type);
    device->set_major(rule.major.value_or(-1));
    device->set_minor(rule.minor.value_or(-1));
    device->set_access(rule.access);
  }
  if (in.memory) {
    auto* memory = out.mutable_memory();
    memory->set_limit(in.memory->limit.value_or(0));
    memory->set_reservation(in.memory->reservation.value_or(0));
    memory->set_swap(in.memory->swap.value_or(0));
    memory->set_kernel(in.memory->kernel.value_or(0));
    memory->set_kerneltcp(in.memory->kernel_tcp.value_or(0));
    memory->set_swappiness(in.memory->swappiness.value_or(0));
    memory->set_disableoomkiller(in.memory->disable_oom_killer.value_or(false));
  }
  if (in.cpu) {
    auto* cpu = out.mutable_cpu();
    cpu->set_shares(in.cpu->shares.value_or(0));
    cpu->set_quota(in.cpu->quota.value_or(0));
    cpu->set_period(in.cpu->period.value_or(0));
    cpu->set_realtimeruntime(in.cpu->realtime_runtime.value_or(0));
    cpu->set_realtimeperiod(in.cpu->realtime_period.value_or(0));
    cpu->set_cpus(in.cpu->cpus);
    cpu->set_mems(in.cpu->mems);
  }
  if (in.pids) out.mutable_pids()->set_limit(in.pids->limit.value_or(0));
  for (const auto& limit : in.hugepage_limits) {
    auto* hugepage = out.add_hugepagelimits();
    hugepage->set_pagesize(limit.page_size);
    hugepage->set_limit(limit.limit);
  }
  return out;
}

oci::Resources from_agent_resources(const grpc::LinuxResources& in) {
  oci::Resources out;
  for (const auto& rule : in.devices()) {
    oci::DeviceCgroup device;
    device.allow = rule.allow();
    device.type = rule.type();
    if (rule.major() >= 0) device.major = rule.major();
    if (rule.minor() >= 0) device.minor = rule.minor();
    device.access = rule.access();
    out.devices.push_back(std::move(device));
  }
  if (in.has_memory()) {
    const auto& m = in.memory();
    oci::Memory memory;
    if (m.limit() != 0) memory.limit = m.limit();
    if (m.reservation() != 0) memory.reservation = m.reservation();
    if (m.swap() != 0) memory.swap = m.swap();
    if (m.kernel() != 0) memory.kernel = m.kernel();
    if (m.kerneltcp() != 0) memory.kernel_tcp = m.kerneltcp();
    if (m.swappiness() != 0) memory.swappiness = m.swappiness();
    if (m.disableoomkiller()) memory.disable_oom_killer = true;
    out.memory = std::move(memory);
  }
  if (in.has_cpu()) {
    const auto& c = in.cpu();
    oci::Cpu cpu;
    if (c.shares() != 0) cpu.shares = c.shares();
    if (c.quota() != 0) cpu.quota = c.quota();
    if (c.period() != 0) cpu.period = c.period();
    if (c.realtimeruntime() != 0) cpu.realtime_runtime = c.realtimeruntime();
    if (c.realtimeperiod() != 0) cpu.realtime_period = c.realtimeperiod();
    cpu.cpus = c.cpus();
    cpu.mems = c.mems();
    out.cpu = std::move(cpu);
  }
  if (in.has_pids()) out.pids = oci::Pids{in.pids().limit()};
  for (const auto& limit : in.hugepagelimits()) out.hugepage_limits.push_back(oci::HugepageLimit{limit.pagesize(), limit.limit()});
  return out;
}

grpc::Spec to_agent_spec(const oci::Spec& in) {
  grpc::Spec out;
  out.set_version(in.oci_version);
  if (in.process) *out.mutable_process() = to_agent_process(*in.process);
  if (in.root) {
    out.mutable_root()->set_path(in.root->path);
    out.mutable_root()->set_readonly(in.root->readonly);
  }
  out.set_hostname(in.hostname);
  for (const auto& mount : in.mounts) {
    auto* m = out.add_mounts();
    m->set_destination(mount.destination);
    m->set_source(mount.source);
    m->set_type(mount.type);
    assign(m->mutable_options(), mount.options);
  }
  if (in.hooks) {
    auto* hooks = out.mutable_hooks();
    for (const auto& h : in.hooks->prestart) to_agent(h, hooks->add_prestart());
    for (const auto& h : in.hooks->poststart) to_agent(h, hooks->add_poststart());
    for (const auto& h : in.hooks->poststop) to_agent(h, hooks->add_poststop());
    for (const auto& h : in.hooks->create_runtime) to_agent(h, hooks->add_createruntime());
    for (const auto& h : in.hooks->create_container) to_agent(h, hooks->add_createcontainer());
    for (const auto& h : in.hooks->start_container) to_agent(h, hooks->add_startcontainer());
  }
  for (const auto& [key, value] : in.annotations) (*out.mutable_annotations())[key] = value;
  if (in.linux_spec) {
    const auto& l = *in.linux_spec;
    auto* linux_out = out.mutable_linux();
    for (const auto& m : l.uid_mappings) {
      auto* mapping = linux_out->add_uidmappings();
      mapping->set_hostid(m.host_id);
      mapping->set_containerid(m.container_id);
      mapping->set_size(m.size);
    }
    for (const auto& m : l.gid_mappings) {
      auto* mapping = linux_out->add_gidmappings();
      mapping->set_hostid(m.host_id);
      mapping->set_containerid(m.container_id);
      mapping->set_size(m.size);
    }
    for (const auto& [key, value] : l.sysctl) (*linux_out->mutable_sysctl())[key] = value;
    if (l.resources) *linux_out->mutable_resources() = to_agent_resources(*l.resources);
    linux_out->set_cgroupspath(l.cgroups_path);
    for (const auto& ns : l.namespaces) {
      auto* n = linux_out->add_namespaces();
      n->set_type(ns.type);
      n->set_path(ns.path);
    }
    for (const auto& d : l.devices) {
      auto* device = linux_out->add_devices();
      device->set_path(d.path);
      device->set_type(d.type);
      device->set_major(d.major);
      device->set_minor(d.minor);
      device->set_filemode(d.file_mode.value_or(0));
      device->set_uid(d.uid.value_or(0));
      device->set_gid(d.gid.value_or(0));
    }
    if (l.seccomp) {
      with_context("convert linux.seccomp", [&] { seccomp_to_agent(*l.seccomp, linux_out->mutable_seccomp()); });
    }
    linux_out->set_rootfspropagation(l.rootfs_propagation);
    assign(linux_out->mutable_maskedpaths(), l.masked_paths);
    assign(linux_out->mutable_readonlypaths(), l.readonly_paths);
    linux_out->set_mountlabel(l.mount_label);
  }
  return out;
}

oci::Spec from_agent_spec(const grpc::Spec& in) {
  oci::Spec out;
  out.oci_version = in.version();
  if (in.has_process()) out.process = from_agent_process(in.process());
  if (in.has_root()) out.root = oci::Root{in.root().path(), in.root().readonly()};
  out.hostname = in.hostname();
  for (const auto& m : in.mounts()) out.mounts.push_back(oci::Mount{m.destination(), m.type(), m.source(), to_vector(m.options())});
  if (in.has_hooks()) {
    oci::Hooks hooks;
    for (const auto& h : in.hooks().prestart()) hooks.prestart.push_back(from_agent(h));
    for (const auto& h : in.hooks().poststart()) hooks.poststart.push_back(from_agent(h));
    for (const auto& h : in.hooks().poststop()) hooks.poststop.push_back(from_agent(h));
    for (const auto& h : in.hooks().createruntime()) hooks.create_runtime.push_back(from_agent(h));
    for (const auto& h : in.hooks().createcontainer()) hooks.create_container.push_back(from_agent(h));
    for (const auto& h : in.hooks().startcontainer()) hooks.start_container.push_back(from_agent(h));
    out.hooks = std::move(hooks);
  }
  for (const auto& [key, value] : in.annotations()) out.annotations[key] = value;
  if (in.has_linux()) {
    const auto& l = in.linux();
    oci::LinuxSpec linux_spec;
    for (const auto& m : l.uidmappings()) linux_spec.uid_mappings.push_back(oci::IdMapping{m.containerid(), m.hostid(), m.size()});
    for (const auto& m : l.gidmappings()) linux_spec.gid_mappings.push_back(oci::IdMapping{m.containerid(), m.hostid(), m.size()});
    for (const auto& [key, value] : l.sysctl()) linux_spec.sysctl[key] = value;
    if (l.has_resources()) linux_spec.resources = from_agent_resources(l.resources());
    linux_spec.cgroups_path = l.cgroupspath();
    for (const auto& ns : l.namespaces()) linux_spec.namespaces.push_back(oci::Namespace{ns.type(), ns.path()});
    for (const auto& d : l.devices()) {
      oci::Device device;
      device.path = d.path();
      device.type = d.type();
      device.major = d.major();
      device.minor = d.minor();
      if (d.filemode() != 0) device.file_mode = d.filemode();
      device.uid = d.uid();
      device.gid = d.gid();
      linux_spec.devices.push_back(std::move(device));
    }
    if (l.has_seccomp()) linux_spec.seccomp = seccomp_from_agent(l.seccomp());
    linux_spec.rootfs_propagation = l.rootfspropagation();
    linux_spec.masked_paths = to_vector(l.maskedpaths());
    linux_spec.readonly_paths = to_vector(l.readonlypaths());
    linux_spec.mount_label = l.mountlabel();
    out.linux_spec = std::move(linux_spec);
  }
  return out;
}

}  // namespace kata::agent
