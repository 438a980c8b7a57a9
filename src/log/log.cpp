#include "kata/log/log.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <ctime>
#include <memory>
#include <mutex>

#include <nlohmann/json.hpp>
#include <spdlog/logger.h>

#include "kata/core/error.hpp"
#include "log/sinks.hpp"

namespace kata::log {

std::string_view to_string(Level level) noexcept {
  switch (level) {
    case Level::trace: return "trace";
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warning: return "warning";
    case Level::error: return "error";
    case Level::off: return "off";
  }
  return "info";
}

namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::trace: return spdlog::level::trace;
    case Level::debug: return spdlog::level::debug;
    case Level::info: return spdlog::level::info;
    case Level::warning: return spdlog::level::warn;
    case Level::error: return spdlog::level::err;
    case Level::off: return spdlog::level::off;
  }
  return spdlog::level::info;
}

// RFC 3339 in UTC with nanoseconds, the form logrus and slog both emit and parsers accept.
std::string format_time(std::chrono::system_clock::time_point time) {
  const auto since_epoch = time.time_since_epoch();
  const auto seconds = std::chrono::floor<std::chrono::seconds>(since_epoch);
  const auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - seconds).count();
  const std::time_t t = static_cast<std::time_t>(seconds.count());
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, nanos);
}

bool needs_quoting(std::string_view value) {
  if (value.empty()) return true;
  return std::any_of(value.begin(), value.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c <= ' ' || c == '=' || c == '"' || c == 0x7f;
  });
}

void append_logfmt_key(std::string& out, std::string_view key) {
  if (key.empty()) {
    out += '_';
    return;
  }
  for (const char ch : key) {
    const auto c = static_cast<unsigned char>(ch);
    out += (std::isalnum(c) != 0 || c == '_' || c == '-' || c == '.') ? ch : '_';
  }
}

void append_logfmt_value(std::string& out, std::string_view value) {
  if (!needs_quoting(value)) {
    out += value;
    return;
  }
  out += '"';
  for (const char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

void append_logfmt_pair(std::string& out, std::string_view key, std::string_view value) {
  if (!out.empty()) out += ' ';
  append_logfmt_key(out, key);
  out += '=';
  append_logfmt_value(out, value);
}

// What init() builds: the sinks behind one spdlog logger plus the configuration that
// rendering needs. Immutable once published, so writers use a snapshot without holding a lock.
struct State {
  Config config;
  std::shared_ptr<spdlog::logger> dispatch;
};

std::shared_ptr<const State> make_state(const Config& config) {
  std::vector<spdlog::sink_ptr> sinks;
  if (!config.fifo.empty()) sinks.push_back(std::make_shared<detail::FifoSink>(config.fifo));
  if (config.syslog) sinks.push_back(std::make_shared<detail::SyslogSink>(config.syslog_socket));
  if (config.to_stderr) sinks.push_back(std::make_shared<detail::FdSink>(STDERR_FILENO));
  auto dispatch = std::make_shared<spdlog::logger>("kata", sinks.begin(), sinks.end());
  // Filtering happens before rendering (Logger::enabled); spdlog passes everything it gets.
  dispatch->set_level(spdlog::level::trace);
  return std::make_shared<const State>(State{config, std::move(dispatch)});
}

struct Global {
  std::mutex mutex;
  std::shared_ptr<const State> state;
  std::atomic<Level> threshold{Level::info};
};

// Never destroyed: a record logged from a static destructor or an atexit handler must find
// valid state, and sinks hold nothing that needs flushing.
Global& global() {
  static Global* instance = [] {
    auto* g = new Global();
    g->state = make_state(Config{});
    return g;
  }();
  return *instance;
}

std::shared_ptr<const State> snapshot() {
  Global& g = global();
  std::lock_guard lock(g.mutex);
  return g.state;
}

}  // namespace

Level parse_level(std::string_view text) {
  const std::string name = lower(text);
  if (name == "trace") return Level::trace;
  if (name == "debug") return Level::debug;
  if (name == "info") return Level::info;
  if (name == "warn" || name == "warning") return Level::warning;
  if (name == "error") return Level::error;
  if (name == "off") return Level::off;
  fail(Errc::invalid_argument, "log level \"{}\" is not one of trace, debug, info, warn, error, off", text);
}

Level effective_level(bool enable_debug, std::string_view log_level) {
  if (!log_level.empty()) return parse_level(log_level);
  return enable_debug ? Level::debug : Level::info;
}

Format parse_format(std::string_view text) {
  const std::string name = lower(text);
  if (name == "logfmt" || name == "text") return Format::logfmt;
  if (name == "json") return Format::json;
  fail(Errc::invalid_argument, "log format \"{}\" is not one of logfmt, json", text);
}

std::string render(Format format, const Record& record) {
  const std::string time = format_time(record.time);
  if (format == Format::json) {
    nlohmann::ordered_json object;
    object["time"] = time;
    object["level"] = to_string(record.level);
    object["msg"] = record.message;
    for (const Field& field : record.fields) object[field.key] = field.value;
    return object.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  }
  std::string out;
  out.reserve(96 + record.message.size());
  append_logfmt_pair(out, "time", time);
  append_logfmt_pair(out, "level", to_string(record.level));
  append_logfmt_pair(out, "msg", record.message);
  for (const Field& field : record.fields) append_logfmt_pair(out, field.key, field.value);
  return out;
}

void init(const Config& config) {
  auto state = make_state(config);
  Global& g = global();
  std::lock_guard lock(g.mutex);
  g.state = std::move(state);
  g.threshold.store(config.level, std::memory_order_relaxed);
}

void set_level(Level value) noexcept { global().threshold.store(value, std::memory_order_relaxed); }

Level level() noexcept { return global().threshold.load(std::memory_order_relaxed); }

void shutdown() noexcept {
  Global& g = global();
  std::shared_ptr<const State> old;
  {
    std::lock_guard lock(g.mutex);
    old = std::exchange(g.state, nullptr);
  }
  // Sinks close when the last writer holding a snapshot lets go of it.
}

Logger::Logger(std::string subsystem) : subsystem_(std::move(subsystem)) {}

Logger Logger::with(std::string key, std::string value) const {
  Logger copy = *this;
  auto existing = std::find_if(copy.fields_.begin(), copy.fields_.end(), [&](const Field& f) { return f.key == key; });
  if (existing != copy.fields_.end()) {
    existing->value = std::move(value);
  } else {
    copy.fields_.push_back(Field{std::move(key), std::move(value)});
  }
  return copy;
}

Logger Logger::with_source(std::string source) const {
  Logger copy = *this;
  copy.source_ = std::move(source);
  return copy;
}

bool Logger::enabled(Level value) noexcept {
  const Level threshold = level();
  return value != Level::off && threshold != Level::off && value >= threshold;
}

void Logger::write(Level value, std::string_view message) const noexcept {
  if (!enabled(value)) return;
  try {
    const auto state = snapshot();
    if (!state) return;
    const Config& config = state->config;
    Record record{std::chrono::system_clock::now(), value, message, {}};
    record.fields.reserve(fields_.size() + 5);
    const bool sandbox_bound =
        std::any_of(fields_.begin(), fields_.end(), [](const Field& f) { return f.key == "sandbox"; });
    if (!config.sandbox.empty() && !sandbox_bound) record.fields.push_back({"sandbox", config.sandbox});
    record.fields.insert(record.fields.end(), fields_.begin(), fields_.end());
    record.fields.push_back({"subsystem", subsystem_});
    record.fields.push_back({"source", source_.empty() ? config.source : source_});
    record.fields.push_back({"name", config.name});
    record.fields.push_back({"pid", std::to_string(::getpid())});
    const std::string line = render(config.format, record);
    state->dispatch->log(to_spdlog(value), spdlog::string_view_t(line.data(), line.size()));
  } catch (...) {
    // Logging never fails the caller; a record that cannot be built is lost.
  }
}

}  // namespace kata::log
