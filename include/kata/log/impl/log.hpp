// Template bodies of kata/log/log.hpp.
#pragma once

namespace kata::log {

template <class... Args>
void Logger::log(Level level, fmt::format_string<Args...> format, Args&&... args) const noexcept {
  if (!enabled(level)) return;
  const fmt::string_view text = format;
  try {
    write(level, fmt::vformat(text, fmt::make_format_args(args...)));
  } catch (...) {
    write(level, std::string_view(text.data(), text.size()));
  }
}

}  // namespace kata::log
