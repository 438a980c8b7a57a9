#pragma once

#include <cctype>
#include <stdexcept>
#include <string>
#include <string_view>

namespace kata::protocols::test {

// Golden vectors are written as hex derived by hand from field numbers and wire types, with
// spaces and parentheses allowed for readability: "1a0c (08 c0ef8bd806)".
inline std::string hex(std::string_view text) {
  std::string out;
  int high = -1;
  for (char c : text) {
    if (c == ' ' || c == '(' || c == ')') {
      continue;
    }
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      throw std::invalid_argument("bad hex digit in golden vector");
    }
    int nibble = std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : std::tolower(c) - 'a' + 10;
    if (high < 0) {
      high = nibble;
    } else {
      out.push_back(static_cast<char>(high << 4 | nibble));
      high = -1;
    }
  }
  if (high >= 0) {
    throw std::invalid_argument("odd number of hex digits in golden vector");
  }
  return out;
}

inline std::string to_hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 0xf]);
  }
  return out;
}

}  // namespace kata::protocols::test
