// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/config/key_table.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

namespace ctsync::core {
namespace {

using sdk::ConfigKey;
using sdk::KeyType;

bool has_lower_bound(const ConfigKey& key) {
    return key.min != std::numeric_limits<double>::lowest();
}
bool has_upper_bound(const ConfigKey& key) {
    return key.max != std::numeric_limits<double>::max();
}

std::string format_number(double v) {
    if (std::floor(v) == v && std::fabs(v) < 1e18) {
        return fmt::format("{}", static_cast<long long>(v));
    }
    return fmt::format("{}", v);
}

// Short rendering of a found value for messages; long values are cut.
std::string show(const nlohmann::json& value) {
    std::string text = value.dump();
    if (text.size() > 40) {
        text = text.substr(0, 37) + "...";
    }
    return fmt::format("{} {}", value.type_name(), text);
}

std::vector<std::string> split_choices(const char* choices) {
    std::vector<std::string> out;
    if (choices == nullptr) {
        return out;
    }
    std::string current;
    for (const char* p = choices; *p != '\0'; ++p) {
        if (*p == '|') {
            out.push_back(current);
            current.clear();
        } else {
            current.push_back(*p);
        }
    }
    out.push_back(current);
    return out;
}

std::size_t string_min_length(const ConfigKey& key) {
    if (!has_lower_bound(key)) {
        return 1;
    }
    return key.min <= 0 ? 0 : static_cast<std::size_t>(key.min);
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
        row[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

// Checks one value against its key; appends problems. The value is not null.
void check_value(const nlohmann::json& value, const ConfigKey& key, const std::string& path,
                 ConfigIssues& issues) {
    auto wrong_type = [&](const char* expected) {
        issues.push_back({path, fmt::format("expected {}, found {}", expected, show(value))});
    };
    auto check_bounds = [&](double v) {
        bool low = has_lower_bound(key) && v < key.min;
        bool high = has_upper_bound(key) && v > key.max;
        if (low || high) {
            issues.push_back(
                {path, fmt::format("{} is out of range: {}", format_number(v), describe_type(key))});
        }
    };
    switch (key.type) {
        case KeyType::kBool:
            if (!value.is_boolean()) {
                wrong_type("bool");
            }
            return;
        case KeyType::kInteger:
            if (!value.is_number_integer()) {
                wrong_type("integer");
                return;
            }
            if (value.is_number_unsigned()) {
                check_bounds(static_cast<double>(value.get<std::uint64_t>()));
            } else {
                check_bounds(static_cast<double>(value.get<std::int64_t>()));
            }
            return;
        case KeyType::kNumber:
            if (!value.is_number()) {
                wrong_type("number");
                return;
            }
            check_bounds(value.get<double>());
            return;
        case KeyType::kString: {
            if (!value.is_string()) {
                wrong_type("string");
                return;
            }
            std::size_t min_length = string_min_length(key);
            if (value.get_ref<const std::string&>().size() < min_length) {
                issues.push_back({path, min_length == 1
                                            ? std::string("must not be empty")
                                            : fmt::format("must have at least {} characters", min_length)});
            }
            return;
        }
        case KeyType::kEnum: {
            if (!value.is_string()) {
                wrong_type("string");
                return;
            }
            auto choices = split_choices(key.choices);
            const auto& text = value.get_ref<const std::string&>();
            if (std::find(choices.begin(), choices.end(), text) == choices.end()) {
                issues.push_back(
                    {path, fmt::format("'{}' is not one of {}", text, key.choices ? key.choices : "")});
            }
            return;
        }
        case KeyType::kPath: {
            if (!value.is_string()) {
                wrong_type("string (absolute path)");
                return;
            }
            const auto& text = value.get_ref<const std::string&>();
            if (text.empty() || text.front() != '/') {
                issues.push_back({path, fmt::format("'{}' is not an absolute path", text)});
            } else if (text.find('\0') != std::string::npos) {
                issues.push_back({path, "path contains a NUL byte"});
            }
            return;
        }
        case KeyType::kAddress: {
            if (!value.is_string()) {
                wrong_type("string (IP address)");
                return;
            }
            const auto& text = value.get_ref<const std::string&>();
            unsigned char buffer[16];
            if (inet_pton(AF_INET, text.c_str(), buffer) != 1 &&
                inet_pton(AF_INET6, text.c_str(), buffer) != 1) {
                issues.push_back({path, fmt::format("'{}' is not an IPv4 or IPv6 address", text)});
            }
            return;
        }
        case KeyType::kStringList:
            if (!value.is_array()) {
                wrong_type("array of strings");
                return;
            }
            for (std::size_t i = 0; i < value.size(); ++i) {
                if (!value[i].is_string()) {
                    issues.push_back(
                        {join_path(path, i), fmt::format("expected string, found {}", show(value[i]))});
                }
            }
            return;
        case KeyType::kObject:
            if (!value.is_object()) {
                wrong_type("object");
            }
            return;
        case KeyType::kList:
            if (!value.is_array()) {
                wrong_type("array");
            }
            return;
    }
    issues.push_back({path, "key has an unknown type in its table (plugin bug)"});
}

}  // namespace

std::string describe_type(const ConfigKey& key) {
    switch (key.type) {
        case KeyType::kInteger:
        case KeyType::kNumber: {
            const char* name = key.type == KeyType::kInteger ? "integer" : "number";
            if (has_lower_bound(key) && has_upper_bound(key)) {
                return fmt::format("{} in [{}, {}]", name, format_number(key.min), format_number(key.max));
            }
            if (has_lower_bound(key)) {
                return fmt::format("{} >= {}", name, format_number(key.min));
            }
            if (has_upper_bound(key)) {
                return fmt::format("{} <= {}", name, format_number(key.max));
            }
            return name;
        }
        case KeyType::kEnum:
            return fmt::format("one of {}", key.choices ? key.choices : "");
        default:
            return sdk::to_string(key.type);
    }
}

std::string suggest(const std::string& unknown, std::span<const ConfigKey> keys) {
    std::string best;
    std::size_t best_distance = 3;
    for (const auto& key : keys) {
        std::size_t d = edit_distance(unknown, key.name);
        if (d < best_distance) {
            best_distance = d;
            best = key.name;
        }
    }
    return best;
}

nlohmann::json validate_against(const nlohmann::json& input, std::span<const ConfigKey> keys,
                                const std::string& path, ConfigIssues& issues) {
    nlohmann::json out = nlohmann::json::object();
    if (!input.is_object()) {
        issues.push_back({path, fmt::format("expected object, found {}", show(input))});
        return out;
    }
    // Unknown keys first, in key order (nlohmann::json keeps object keys sorted: deterministic reports).
    for (const auto& [name, value] : input.items()) {
        bool known = std::any_of(keys.begin(), keys.end(),
                                 [&key = name](const ConfigKey& k) { return key == k.name; });
        if (!known) {
            std::string hint = suggest(name, keys);
            issues.push_back({join_path(path, name),
                              hint.empty() ? std::string("unknown key")
                                           : fmt::format("unknown key (did you mean '{}'?)", hint)});
        }
    }
    for (const auto& key : keys) {
        std::string key_path = join_path(path, key.name);
        auto it = input.find(key.name);
        if (it == input.end() || it->is_null()) {
            if (key.required) {
                issues.push_back({key_path, fmt::format("missing required key ({}: {})", describe_type(key),
                                                        key.description ? key.description : "")});
                out[key.name] = nullptr;
            } else if (key.default_json != nullptr) {
                out[key.name] = nlohmann::json::parse(key.default_json, nullptr, /*allow_exceptions=*/false);
            } else {
                out[key.name] = nullptr;
            }
            continue;
        }
        check_value(*it, key, key_path, issues);
        out[key.name] = *it;
    }
    return out;
}

ConfigIssues check_key_table(std::span<const ConfigKey> keys) {
    ConfigIssues issues;
    std::set<std::string> seen;
    for (std::size_t i = 0; i < keys.size(); ++i) {
        const ConfigKey& key = keys[i];
        if (key.name == nullptr || key.name[0] == '\0') {
            issues.push_back({fmt::format("[{}]", i), "key without a name"});
            continue;
        }
        std::string name = key.name;
        bool well_formed = std::all_of(name.begin(), name.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        });
        if (!well_formed) {
            issues.push_back({name, "key name must be snake_case ([a-z0-9_])"});
        }
        if (!seen.insert(name).second) {
            issues.push_back({name, "key declared twice"});
        }
        if (key.description == nullptr || key.description[0] == '\0') {
            issues.push_back({name, "key without a description"});
        }
        if (key.type == KeyType::kEnum && (key.choices == nullptr || key.choices[0] == '\0')) {
            issues.push_back({name, "enum key without choices"});
        }
        if (key.required && key.default_json != nullptr) {
            issues.push_back({name, "required key with a default"});
        }
        bool checkable = !(key.type == KeyType::kEnum && (key.choices == nullptr || key.choices[0] == '\0'));
        if (key.default_json != nullptr && checkable) {
            auto value = nlohmann::json::parse(key.default_json, nullptr, /*allow_exceptions=*/false);
            if (value.is_discarded()) {
                issues.push_back({name, fmt::format("default '{}' is not valid JSON", key.default_json)});
            } else if (!value.is_null()) {
                ConfigIssues own;
                check_value(value, key, name, own);
                for (auto& issue : own) {
                    issues.push_back({name, "default does not satisfy the key: " + issue.message});
                }
            }
        }
    }
    return issues;
}

}  // namespace ctsync::core
