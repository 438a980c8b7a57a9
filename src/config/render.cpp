#include "kata/config/render.hpp"

#include <limits>
#include <sstream>
#include <type_traits>

#include <toml++/toml.h>

#include "fields.hpp"
#include "kata/core/error.hpp"

namespace kata::config {

namespace {

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

class JsonWriter {
 public:
  explicit JsonWriter(nlohmann::ordered_json& out) : out_(out) {}

  template <class T>
  void operator()(std::string_view key, const T& member, const detail::FieldOptions& options) {
    if constexpr (is_optional<T>::value) {
      if (member) (*this)(key, *member, options);
    } else {
      out_[std::string(key)] = value(member, options);
    }
  }

 private:
  static nlohmann::ordered_json value(bool v, const detail::FieldOptions&) { return v; }
  static nlohmann::ordered_json value(const std::string& v, const detail::FieldOptions&) { return v; }
  static nlohmann::ordered_json value(double v, const detail::FieldOptions&) { return v; }

  template <class T>
    requires(std::is_integral_v<T> && !std::is_same_v<T, bool>)
  static nlohmann::ordered_json value(T v, const detail::FieldOptions& options) {
    // Promote so that uint8_t prints as a number, and undo the unit scaling of the reader.
    if constexpr (std::is_signed_v<T>) {
      return static_cast<std::int64_t>(v) / static_cast<std::int64_t>(options.scale);
    } else {
      return static_cast<std::uint64_t>(v) / options.scale;
    }
  }

  template <class T>
  static nlohmann::ordered_json value(const std::vector<T>& list, const detail::FieldOptions& options) {
    auto array = nlohmann::ordered_json::array();
    for (const auto& element : list) array.push_back(value(element, options));
    return array;
  }

  template <detail::table_struct T>
  static nlohmann::ordered_json value(const T& table, const detail::FieldOptions&) {
    auto object = nlohmann::ordered_json::object();
    JsonWriter writer(object);
    detail::visit_fields(table, writer);
    return object;
  }

  nlohmann::ordered_json& out_;
};

template <class Section>
nlohmann::ordered_json sections_to_json(const std::map<std::string, Section, std::less<>>& sections) {
  auto object = nlohmann::ordered_json::object();
  for (const auto& [name, section] : sections) {
    auto& entry = object[name] = nlohmann::ordered_json::object();
    JsonWriter writer(entry);
    detail::visit_fields(section, writer);
  }
  return object;
}

void insert_toml(toml::table& table, const std::string& key, const nlohmann::ordered_json& value);

toml::array to_toml_array(const nlohmann::ordered_json& list) {
  toml::array array;
  for (const auto& element : list) {
    toml::table holder;
    insert_toml(holder, "v", element);
    holder["v"].node()->visit([&](auto&& node) { array.push_back(std::move(node)); });
  }
  return array;
}

toml::table to_toml_table(const nlohmann::ordered_json& object) {
  toml::table table;
  for (const auto& [key, value] : object.items()) insert_toml(table, key, value);
  return table;
}

void insert_toml(toml::table& table, const std::string& key, const nlohmann::ordered_json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::object: table.insert_or_assign(key, to_toml_table(value)); break;
    case nlohmann::json::value_t::array: table.insert_or_assign(key, to_toml_array(value)); break;
    case nlohmann::json::value_t::string: table.insert_or_assign(key, value.get<std::string>()); break;
    case nlohmann::json::value_t::boolean: table.insert_or_assign(key, value.get<bool>()); break;
    case nlohmann::json::value_t::number_float: table.insert_or_assign(key, value.get<double>()); break;
    case nlohmann::json::value_t::number_integer: table.insert_or_assign(key, value.get<std::int64_t>()); break;
    case nlohmann::json::value_t::number_unsigned: {
      const auto number = value.get<std::uint64_t>();
      // TOML integers are signed 64-bit.
      if (number > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        fail(Errc::out_of_range, "{} = {} cannot be written as a TOML integer", key, number);
      }
      table.insert_or_assign(key, static_cast<std::int64_t>(number));
      break;
    }
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::binary:
    case nlohmann::json::value_t::discarded: break;
  }
}

}  // namespace

nlohmann::ordered_json to_json(const Config& config) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  out["hypervisor"] = sections_to_json(config.hypervisor);
  out["agent"] = sections_to_json(config.agent);
  auto& runtime = out["runtime"] = nlohmann::ordered_json::object();
  JsonWriter writer(runtime);
  detail::visit_fields(config.runtime, writer);
  return out;
}

std::string to_toml(const Config& config) {
  std::ostringstream text;
  text << toml::toml_formatter(to_toml_table(to_json(config)));
  text << '\n';
  return std::move(text).str();
}

}  // namespace kata::config
