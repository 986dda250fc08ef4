// SPDX-License-Identifier: GPL-2.0-or-later
// ABI version of the plugin interface and the build fingerprint a plugin carries in its descriptor.
#pragma once

#include <boost/version.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>

// Every SDK type lives in an inline namespace named after the ABI major: a plugin built against another
// major fails to link against anything of ours instead of misbehaving at run time (Seastar's trick).
#define CTSYNC_SDK_ABI_NAMESPACE v1

namespace ctsync::sdk {
inline namespace CTSYNC_SDK_ABI_NAMESPACE {

// Major: bumped on any incompatible change of a type or interface crossing the plugin boundary; the host
// refuses every other major. Minor: bumped when fields are appended to the descriptor or virtual functions
// are appended to an interface; the host accepts plugins of its own or an older minor.
inline constexpr std::uint32_t kAbiMajor = 1;
// 1.1: TransportSink::on_peer_state (per-peer up/down from transports that supervise peers).
// 1.2: Source::concurrent_writes (a source whose write() may run off the executor thread).
// 1.3: Filter::describe (what a filter decides in the kernel and in process, for `ctsyncctl filters`).
inline constexpr std::uint32_t kAbiMinor = 3;

// Name of the single symbol every plugin exports (through BOOST_DLL_ALIAS). It is unversioned on purpose:
// the host must find it in a plugin of any ABI to tell the operator which ABI that plugin was built for.
inline constexpr const char* kDescriptorSymbol = "ctsync_plugin";

// Plugin categories, one per slot of the pipeline. Values are part of the ABI: never renumber.
enum class Category : std::uint32_t {
    kSource = 1,     // kernel table reader/writer
    kProto = 2,      // per-protocol replication decisions
    kFilter = 3,     // which flows are replicated
    kTransport = 4,  // moves datagrams between nodes
    kHa = 5,         // role changes from an HA manager
};

// Lower-case name used in config, logs and messages ("source", "transport", ...). Never null.
constexpr const char* to_string(Category c) noexcept {
    switch (c) {
        case Category::kSource:
            return "source";
        case Category::kProto:
            return "proto";
        case Category::kFilter:
            return "filter";
        case Category::kTransport:
            return "transport";
        case Category::kHa:
            return "ha";
    }
    return "unknown";
}

}  // namespace CTSYNC_SDK_ABI_NAMESPACE
}  // namespace ctsync::sdk

#define CTSYNC_SDK_STR_(x) #x
#define CTSYNC_SDK_STR(x) CTSYNC_SDK_STR_(x)

#if defined(__clang__)
#define CTSYNC_SDK_COMPILER "clang-" CTSYNC_SDK_STR(__clang_major__)
#elif defined(__GNUC__)
#define CTSYNC_SDK_COMPILER "gcc-" CTSYNC_SDK_STR(__GNUC__)
#else
#define CTSYNC_SDK_COMPILER "unknown"
#endif

#if defined(_GLIBCXX_USE_CXX11_ABI)
#define CTSYNC_SDK_CXX11_ABI CTSYNC_SDK_STR(_GLIBCXX_USE_CXX11_ABI)
#else
#define CTSYNC_SDK_CXX11_ABI "none"
#endif

// Everything that must match between host and plugin for C++ types (std::string, std::unique_ptr,
// nlohmann::json, Boost.Asio executors) to be passed across the boundary safely. The host compares it
// byte for byte and refuses a plugin whose fingerprint differs, naming both.
#define CTSYNC_SDK_BUILD_FINGERPRINT                                          \
    "compiler=" CTSYNC_SDK_COMPILER ";cxx11_abi=" CTSYNC_SDK_CXX11_ABI        \
    ";boost=" CTSYNC_SDK_STR(BOOST_VERSION) ";nlohmann_json=" CTSYNC_SDK_STR( \
        NLOHMANN_JSON_VERSION_MAJOR) "." CTSYNC_SDK_STR(NLOHMANN_JSON_VERSION_MINOR) ";cxx=" CTSYNC_SDK_STR(__cplusplus)
