// SPDX-License-Identifier: GPL-2.0-or-later
// What the libFuzzer targets share: a silent logger, a check that aborts (a finding) with a message, and the
// byte views libFuzzer's input needs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctsync/sdk/host.hpp>
#include <span>
#include <string_view>

namespace ctsync::fuzz {

class NullLogger final : public sdk::Logger {
  public:
    void log(sdk::LogLevel, std::string_view) noexcept override {}
    bool enabled(sdk::LogLevel) const noexcept override { return false; }
};

// A property the target holds its input to: when it fails, libFuzzer records the input as a crash.
[[noreturn]] inline void finding(const char* what) {
    std::fprintf(stderr, "fuzz finding: %s\n", what);
    std::abort();
}
#define CTSYNC_FUZZ_CHECK(condition)                               \
    do {                                                           \
        if (!(condition)) {                                        \
            ::ctsync::fuzz::finding(#condition " (" __FILE__ ")"); \
        }                                                          \
    } while (false)

inline std::span<const std::byte> as_bytes(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const std::byte*>(data), size};
}
inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

}  // namespace ctsync::fuzz
