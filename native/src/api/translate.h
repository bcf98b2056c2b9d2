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

/// The words that mark an allocation failure in a translated message; the Java side
/// (NativeCalls) turns such a message into a ResourceExhaustedException. Keep both in step.
inline constexpr const char* kOutOfMemory = ": out of memory (";

/// "<what>: out of memory (<cause>); <what to do>".
inline std::string outOfMemory(const char* what, const std::string& cause) {
  return std::string(what) + kOutOfMemory + cause +
         "); use a smaller --batch-size or --max-length (or fewer new tokens), or free memory";
}

/// Whether a c10 error is libtorch's CPU allocator failing (DefaultCPUAllocator's wording:
/// "can't allocate memory" in libtorch 1.x, "not enough memory" in 2.x).
inline bool isAllocationFailure(const std::string& message) {
  return message.find("DefaultCPUAllocator") != std::string::npos ||
         message.find("can't allocate memory") != std::string::npos ||
         message.find("not enough memory") != std::string::npos;
}

/// Runs body; rethrows as std::runtime_error("<what>: <cause>") unless it is a ptune::Error.
/// Every tensor of the failed call is released by the unwinding, so the model stays usable.
template <typename Body>
auto translated(const char* what, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    const std::string message = oneLine(e.what_without_backtrace());
    if (isAllocationFailure(message)) throw Error(outOfMemory(what, message));
    throw Error(std::string(what) + ": " + message);
  } catch (const std::bad_alloc& e) {
    throw Error(outOfMemory(what, e.what()));
  } catch (const std::exception& e) {
    throw Error(std::string(what) + ": " + oneLine(e.what()));
  }
}

}  // namespace ptune::api
