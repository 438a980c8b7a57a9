#include "toml_document.hpp"

#include <cmath>
#include <limits>
#include <set>
#include <type_traits>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "fields.hpp"
#include "kata/config/loader.hpp"
#include "kata/core/error.hpp"

namespace kata::config::detail {

namespace {

std::string_view type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "floating-point number";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
    case toml::node_type::array: return "array";
    case toml::node_type::table: return "table";
    case toml::node_type::none: break;
  }
  return "nothing";
}

/// Where a node came from: drop-in nodes keep their own file because merging moves them.
std::string_view source_of(const toml::node& node, std::string_view fallback) {
  const auto& path = node.source().path;
  return path ? std::string_view(*path) : fallback;
}

template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};

template <class T>
constexpr std::string_view expected_name() {
  if constexpr (std::is_same_v<T, bool>) {
    return "a boolean";
  } else if constexpr (std::is_same_v<T, std::string>) {
    return "a string";
  } else if constexpr (std::is_floating_point_v<T>) {
    return "a number";
  } else if constexpr (std::is_integral_v<T>) {
    return "an integer";
  } else if constexpr (is_vector<T>::value) {
    return "an array";
  } else {
    return "a table";
  }
}

/// Reads the keys of one TOML table into a struct; remembers which keys it used so that the
/// rest can be reported.
class TableReader {
 public:
  TableReader(toml::table& table, std::string section, std::string_view fallback_source,
              std::vector<std::string>& warnings)
      : table_(table), section_(std::move(section)), fallback_(fallback_source), warnings_(warnings) {}

  template <class T>
  void operator()(std::string_view key, T& member, const FieldOptions& options) {
    std::string_view used = key;
    toml::node* node = table_.get(key);
    if (node == nullptr && !options.alias.empty()) {
      used = options.alias;
      node = table_.get(used);
    }
    if (node == nullptr) return;
    consumed_.emplace(used);
    read(*node, member, options, std::string(used));
  }

  /// Every key of the table that no field claimed.
  void warn_unknown_keys() {
    for (auto&& [key, node] : table_) {
      if (consumed_.contains(key.str())) continue;
      warnings_.push_back(fmt::format("{}:{}: unknown key {} {} ignored", source_of(node, fallback_),
                                      node.source().begin.line, section_, key.str()));
    }
  }

 private:
  [[noreturn]] void wrong_type(const toml::node& node, const std::string& key, std::string_view expected) {
    fail(Errc::invalid_argument, "{}: {} {}: expected {}, got {}", source_of(node, fallback_), section_, key,
         expected, type_name(node));
  }

  void read(toml::node& node, bool& out, const FieldOptions&, const std::string& key) {
    auto* value = node.as_boolean();
    if (value == nullptr) wrong_type(node, key, expected_name<bool>());
    out = value->get();
  }

  void read(toml::node& node, std::string& out, const FieldOptions&, const std::string& key) {
    auto* value = node.as_string();
    if (value == nullptr) wrong_type(node, key, expected_name<std::string>());
    out = value->get();
  }

  void read(toml::node& node, double& out, const FieldOptions&, const std::string& key) {
    if (auto* f = node.as_floating_point()) {
      out = f->get();
    } else if (auto* i = node.as_integer()) {
      out = static_cast<double>(i->get());
    } else {
      wrong_type(node, key, expected_name<double>());
    }
  }

  template <class T>
    requires(std::is_integral_v<T> && !std::is_same_v<T, bool>)
  void read(toml::node& node, T& out, const FieldOptions& options, const std::string& key) {
    auto* value = node.as_integer();
    if (value == nullptr) wrong_type(node, key, expected_name<T>());
    const std::int64_t raw = value->get();
    const auto low = static_cast<std::int64_t>(std::numeric_limits<T>::min());
    const auto high = static_cast<std::uint64_t>(std::numeric_limits<T>::max());
    if (raw < low || (raw > 0 && static_cast<std::uint64_t>(raw) > high)) {
      fail(Errc::invalid_argument, "{}: {} {}: expected an integer between {} and {}, got {}",
           source_of(node, fallback_), section_, key, low, high, raw);
    }
    auto converted = static_cast<T>(raw);
    if (options.scale != 1) {
      // Upstream saturates (seconds * 1000 must not wrap into a tiny timeout).
      const auto scaled = static_cast<std::uint64_t>(converted) * options.scale;
      converted = scaled > high ? std::numeric_limits<T>::max() : static_cast<T>(scaled);
    }
    out = converted;
  }

  template <class T>
  void read(toml::node& node, std::optional<T>& out, const FieldOptions& options, const std::string& key) {
    T value{};
    read(node, value, options, key);
    out = std::move(value);
  }

  template <class T>
  void read(toml::node& node, std::vector<T>& out, const FieldOptions& options, const std::string& key) {
    auto* array = node.as_array();
    if (array == nullptr) wrong_type(node, key, expected_name<std::vector<T>>());
    out.clear();
    out.reserve(array->size());
    for (std::size_t i = 0; i < array->size(); ++i) {
      T element{};
      read(*array->get(i), element, options, fmt::format("{}[{}]", key, i));
      out.push_back(std::move(element));
    }
  }

  template <table_struct T>
  void read(toml::node& node, T& out, const FieldOptions&, const std::string& key) {
    auto* table = node.as_table();
    if (table == nullptr) wrong_type(node, key, expected_name<T>());
    std::string inner = section_;
    inner.insert(inner.size() - 1, "." + key);  // "[hypervisor.qemu]" -> "[hypervisor.qemu.factory]"
    TableReader reader(*table, std::move(inner), fallback_, warnings_);
    visit_fields(out, reader);
    reader.warn_unknown_keys();
  }

  toml::table& table_;
  std::string section_;
  std::string_view fallback_;
  std::vector<std::string>& warnings_;
  std::set<std::string, std::less<>> consumed_;
};

toml::table parse(const TomlSource& source) {
  try {
    return toml::parse(source.text, source.name);
  } catch (const toml::parse_error& error) {
    fail(Errc::invalid_argument, "{}:{}:{}: {}", source.name, error.source().begin.line,
         error.source().begin.column, error.description());
  }
}

/// Moves every entry of `dropin` into `base`: tables merge recursively, everything else replaces.
/// Moving (not copying) keeps each node's source, so errors point into the drop-in file.
void merge(toml::table& base, toml::table&& dropin) {
  for (auto&& [key, node] : dropin) {
    auto* base_table = base.get_as<toml::table>(key);
    if (auto* dropin_table = node.as_table(); dropin_table != nullptr && base_table != nullptr) {
      merge(*base_table, std::move(*dropin_table));
      continue;
    }
    node.visit([&](auto&& concrete) { base.insert_or_assign(key, std::move(concrete)); });
  }
}

template <class Section>
void read_sections(toml::node& node, std::string_view kind, std::string_view fallback,
                   std::map<std::string, Section, std::less<>>& out, std::vector<std::string>& warnings) {
  auto* table = node.as_table();
  if (table == nullptr) {
    fail(Errc::invalid_argument, "{}: [{}]: expected a table of [{}.<name>] sections, got {}",
         source_of(node, fallback), kind, kind, type_name(node));
  }
  for (auto&& [name, section_node] : *table) {
    const std::string section = fmt::format("[{}.{}]", kind, name.str());
    if (kind == "hypervisor" && find_hypervisor_plugin(name.str()) == nullptr) {
      fail(Errc::invalid_argument, "{}: unknown hypervisor section {}; known hypervisors: {}",
           source_of(section_node, fallback), section, known_hypervisor_names());
    }
    auto* section_table = section_node.as_table();
    if (section_table == nullptr) {
      fail(Errc::invalid_argument, "{}: {}: expected a table, got {}", source_of(section_node, fallback), section,
           type_name(section_node));
    }
    Section& value = out[std::string(name.str())];
    TableReader reader(*section_table, section, fallback, warnings);
    visit_fields(value, reader);
    reader.warn_unknown_keys();
  }
}

}  // namespace

Config read_config(const std::vector<TomlSource>& sources, std::vector<std::string>& warnings) {
  if (sources.empty()) fail(Errc::invalid_argument, "no configuration text to read");
  toml::table root = parse(sources.front());
  for (std::size_t i = 1; i < sources.size(); ++i) merge(root, parse(sources[i]));

  const std::string_view fallback = sources.front().name;
  Config config;
  for (auto&& [key, node] : root) {
    if (key == "hypervisor") {
      read_sections(node, "hypervisor", fallback, config.hypervisor, warnings);
    } else if (key == "agent") {
      read_sections(node, "agent", fallback, config.agent, warnings);
    } else if (key == "runtime") {
      auto* table = node.as_table();
      if (table == nullptr) {
        fail(Errc::invalid_argument, "{}: [runtime]: expected a table, got {}", source_of(node, fallback),
             type_name(node));
      }
      TableReader reader(*table, "[runtime]", fallback, warnings);
      visit_fields(config.runtime, reader);
      reader.warn_unknown_keys();
    } else {
      warnings.push_back(fmt::format("{}:{}: unknown top-level key or section [{}] ignored",
                                     source_of(node, fallback), node.source().begin.line, key.str()));
    }
  }
  return config;
}

}  // namespace kata::config::detail
