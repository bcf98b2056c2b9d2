// Error reporting for the native core: every failure is a ptune::Error with a message that
// names the file/field and says what to do. The façade turns anything else into one too.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace ptune {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace detail

}  // namespace ptune

/// PTUNE_CHECK(cond, "part", value, "part"...) throws ptune::Error with the parts joined.
#define PTUNE_CHECK(cond, ...)                                 \
  do {                                                         \
    if (!(cond)) {                                             \
      throw ::ptune::Error(::ptune::detail::concat(__VA_ARGS__)); \
    }                                                          \
  } while (false)
