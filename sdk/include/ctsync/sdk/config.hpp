// SPDX-License-Identifier: GPL-2.0-or-later
// Declared configuration: a plugin lists its keys in a table; the host validates the operator's JSON
// against it (and the plugin's own cross-key check) before any factory runs.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ctsync/sdk/abi.hpp"

namespace ctsync::sdk {
inline namespace CTSYNC_SDK_ABI_NAMESPACE {

// Value types of a key. Values are part of the ABI: never renumber.
enum class KeyType : std::uint32_t {
    kBool = 1,
    kInteger = 2,     // JSON integer within [min, max]
    kNumber = 3,      // JSON number within [min, max]
    kString = 4,      // JSON string, non-empty unless min == 0
    kEnum = 5,        // JSON string, one of `choices` ("a|b|c")
    kPath = 6,        // JSON string, an absolute file-system path
    kAddress = 7,     // JSON string, an IPv4 or IPv6 address
    kStringList = 8,  // JSON array of strings
    kObject = 9,      // JSON object, checked by the plugin's validate hook
    kList = 10,       // JSON array of anything, checked by the plugin's validate hook
};

constexpr const char* to_string(KeyType t) noexcept {
    switch (t) {
        case KeyType::kBool:
            return "bool";
        case KeyType::kInteger:
            return "integer";
        case KeyType::kNumber:
            return "number";
        case KeyType::kString:
            return "string";
        case KeyType::kEnum:
            return "enum";
        case KeyType::kPath:
            return "path";
        case KeyType::kAddress:
            return "address";
        case KeyType::kStringList:
            return "string list";
        case KeyType::kObject:
            return "object";
        case KeyType::kList:
            return "list";
    }
    return "unknown";
}

// One row of a plugin's key table. Plain data with static storage: tables live in the plugin's read-only
// data and are read by the host for as long as the plugin is loaded.
struct ConfigKey {
    const char* name = nullptr;  // JSON key, snake_case
    KeyType type = KeyType::kString;
    bool required = false;               // a required key has no default
    const char* default_json = nullptr;  // default as JSON text ("1500", "\"eth1\"", "[]"); null: none
    const char* description = nullptr;   // one sentence, shown by `ctsyncd --describe`
    double min = std::numeric_limits<double>::lowest();  // kInteger/kNumber bounds; kString: min length
    double max = std::numeric_limits<double>::max();
    const char* choices = nullptr;  // kEnum: "reliable|alarm|best-effort"
};

// A validation problem: `path` is relative to the plugin's "config" object in jq syntax (".group",
// ".peers[2].port"; empty for the object itself). The host prefixes the slot's path.
struct ConfigError {
    std::string path;
    std::string message;
};
using ConfigErrors = std::vector<ConfigError>;

// A plugin's configuration after validation: every declared key is present (defaults filled in) and has
// the declared type. An optional key without default may be null: test it with has() before get_*(), which
// throw for null. Read-only; cheap to copy.
// Accessing an undeclared key is a programming error and throws std::out_of_range inside the plugin
// (the factory guard turns it into a refusal; it never crosses the boundary).
class PluginConfig {
  public:
    PluginConfig() : values_(nlohmann::json::object()) {}
    explicit PluginConfig(nlohmann::json values) : values_(std::move(values)) {}

    bool get_bool(std::string_view key) const { return at(key).get<bool>(); }
    std::int64_t get_int(std::string_view key) const { return at(key).get<std::int64_t>(); }
    double get_number(std::string_view key) const { return at(key).get<double>(); }
    std::string get_string(std::string_view key) const { return at(key).get<std::string>(); }
    std::vector<std::string> get_string_list(std::string_view key) const {
        return at(key).get<std::vector<std::string>>();
    }
    // Whether the key was given a non-null value (optional keys without default are null).
    bool has(std::string_view key) const {
        auto it = values_.find(key);
        return it != values_.end() && !it->is_null();
    }
    // Raw JSON of a key (kObject, kList), or the whole object with an empty key.
    const nlohmann::json& raw(std::string_view key = {}) const { return key.empty() ? values_ : at(key); }

  private:
    const nlohmann::json& at(std::string_view key) const {
        auto it = values_.find(key);
        if (it == values_.end()) {
            throw std::out_of_range("undeclared config key '" + std::string(key) + "'");
        }
        return *it;
    }
    nlohmann::json values_;
};

}  // namespace CTSYNC_SDK_ABI_NAMESPACE
}  // namespace ctsync::sdk
