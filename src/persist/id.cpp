#include "kata/persist/id.hpp"

#include <algorithm>

#include "kata/core/error.hpp"

namespace kata::persist {

namespace {

bool is_ascii_alnum(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

}  // namespace

bool is_valid_id(std::string_view id) noexcept {
  if (id.size() < 2 || !is_ascii_alnum(id.front())) return false;
  return std::all_of(id.begin() + 1, id.end(),
                     [](char c) { return is_ascii_alnum(c) || c == '.' || c == '-' || c == '_'; });
}

void verify_id(std::string_view id) {
  if (is_valid_id(id)) return;
  fail(Errc::invalid_argument,
       "invalid ID \"{}\": must be 2 or more of [a-zA-Z0-9_.-] starting with a letter or digit", id);
}

}  // namespace kata::persist
