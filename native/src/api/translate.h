// Turns every failure below the façade into a std::runtime_error with one line a user can act
// on: c10 errors lose their C++ backtraces, allocation failures say what ran out.
#pragma once

#include <c10/util/Exception.h>

#include <new>
#include <stdexcept>
#include <string>

#include "core/check.h"

namespace ptune::api {

/// First line of a c10 message without the "Exception raised from ..." backtrace.
inline std::string oneLine(const std::string& message) {
  const auto end = message.find('\n');
  return end == std::string::npos ? message : message.substr(0, end);
}

/// Runs body; rethrows as std::runtime_error("<what>: <cause>") unless it is a ptune::Error.
template <typename Body>
auto translated(const char* what, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Error(std::string(what) + ": " + oneLine(e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    throw Error(std::string(what) +
                ": out of memory; use a smaller batch size, --max-length or model");
  } catch (const std::exception& e) {
    throw Error(std::string(what) + ": " + oneLine(e.what()));
  }
}

}  // namespace ptune::api
