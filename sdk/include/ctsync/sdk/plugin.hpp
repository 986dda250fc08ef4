// SPDX-License-Identifier: GPL-2.0-or-later
// The plugin descriptor every shared object exports, the base of all plugin objects, and the export macro.
#pragma once

#include <boost/dll/alias.hpp>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>

#include "ctsync/sdk/abi.hpp"
#include "ctsync/sdk/config.hpp"
#include "ctsync/sdk/host.hpp"

namespace ctsync::sdk {
inline namespace CTSYNC_SDK_ABI_NAMESPACE {

// Base of every object a factory creates. Created, used and destroyed on the host's executor thread.
// No member function of a plugin throws (the interfaces declare them noexcept); failures are returned.
// The host keeps the plugin's library loaded until the object is destroyed.
class Plugin {
  public:
    virtual ~Plugin() = default;
    // The category the object implements; the host checks it before it casts to that interface.
    virtual Category category() const noexcept = 0;
    // Stops all work: cancels pending I/O, closes sockets. Called once before destruction; idempotent.
    virtual void stop() noexcept = 0;
};

// Result of a factory: either a plugin or an error message for the operator (never both, never neither).
struct CreateResult {
    std::unique_ptr<Plugin> plugin;
    std::string error;
};

// Cross-key check run after the key table validated types and bounds, before any factory. Appends problems
// to `errors`; must not keep references to `config`. Optional (null in the descriptor).
using ValidateFn = void (*)(const PluginConfig& config, ConfigErrors& errors) noexcept;
// Creates an instance. Runs on the executor thread, after validation passed.
using CreateFn = CreateResult (*)(const PluginContext& context, const PluginConfig& config) noexcept;

// The exported descriptor. The first three fields are frozen for every ABI major so that any host can read
// them from any plugin; a host reads the other fields only up to `descriptor_size`. Static storage.
struct PluginDescriptor {
    std::uint32_t abi_major = kAbiMajor;
    std::uint32_t abi_minor = kAbiMinor;
    std::uint32_t descriptor_size = sizeof(PluginDescriptor);
    const char* build_fingerprint = CTSYNC_SDK_BUILD_FINGERPRINT;
    Category category = Category::kFilter;
    const char* name = nullptr;     // plugin id: the folder name, "transport-mcast"
    const char* version = nullptr;  // the plugin's own version, "1.2.0"
    const char* summary = nullptr;  // one line for `ctsyncd --list-plugins`
    const ConfigKey* keys = nullptr;
    std::uint32_t key_count = 0;
    ValidateFn validate = nullptr;
    CreateFn create = nullptr;
};

// Adapts a throwing factory `std::unique_ptr<Plugin> f(const PluginContext&, const PluginConfig&)` to a
// CreateFn: exceptions become the refusal message so that none crosses the boundary, and a null result
// becomes an error.
template <auto Factory>
CreateResult guarded_create(const PluginContext& context, const PluginConfig& config) noexcept {
    try {
        std::unique_ptr<Plugin> plugin = Factory(context, config);
        if (!plugin) {
            return {nullptr, "factory returned no object"};
        }
        return {std::move(plugin), {}};
    } catch (const std::exception& e) {
        return {nullptr, e.what()};
    } catch (...) {
        return {nullptr, "factory threw an unknown exception"};
    }
}

}  // namespace CTSYNC_SDK_ABI_NAMESPACE
}  // namespace ctsync::sdk

// Exports `descriptor` (a namespace-scope `const ctsync::sdk::PluginDescriptor`) as the library's one and
// only entry point. Use exactly once per shared object, at global scope, in plugin.cpp.
#define CTSYNC_PLUGIN(descriptor) BOOST_DLL_ALIAS(descriptor, ctsync_plugin)
