// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/loader/plugin_loader.hpp"

#include <dlfcn.h>
#include <fmt/format.h>

#include <boost/dll/import.hpp>
#include <boost/dll/shared_library.hpp>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <set>

#include "core/config/key_table.hpp"

namespace ctsync::core {
namespace fs = std::filesystem;

namespace {

// Everything a descriptor of ABI 1.0 has; a smaller descriptor cannot be read safely.
constexpr std::size_t kMinDescriptorSize = offsetof(sdk::PluginDescriptor, create) + sizeof(sdk::CreateFn);

std::string refusal(const fs::path& file, const std::string& what) {
    return fmt::format("plugin file '{}': {}", file.string(), what);
}

// Boost.DLL clears dlerror() after a failed load; ask the dynamic linker once more for the reason
// (undefined symbol, wrong ELF class, missing dependency) so that the operator sees it.
std::string dlopen_reason(const fs::path& file) {
    void* handle = ::dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) {
        ::dlclose(handle);
        return "unknown reason";
    }
    const char* reason = ::dlerror();
    return reason != nullptr ? reason : "unknown reason";
}

}  // namespace

std::string plugin_file_name(const std::string& name) {
    return "ctsync-" + name + ".so";
}

PluginLoader::PluginLoader(std::vector<fs::path> search_path) : search_path_(std::move(search_path)) {}

LoadResult PluginLoader::open_and_check(const fs::path& file) {
    std::error_code exists_ec;
    if (!fs::is_regular_file(file, exists_ec)) {
        return {nullptr, refusal(file, "file not found")};
    }
    const auto mode = boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local;
    boost::dll::shared_library library;
    boost::dll::fs::error_code ec;
    library.load(file.string(), mode, ec);
    if (ec) {
        return {nullptr, refusal(file, "cannot be loaded: " + dlopen_reason(file))};
    }
    if (!library.has(sdk::kDescriptorSymbol)) {
        return {nullptr,
                refusal(file, fmt::format("not a ctsync plugin: expected exported symbol '{}', found none "
                                          "(export the descriptor with CTSYNC_PLUGIN())",
                                          sdk::kDescriptorSymbol))};
    }
    boost::shared_ptr<const sdk::PluginDescriptor> descriptor;
    try {
        descriptor = boost::dll::import_alias<const sdk::PluginDescriptor>(library, sdk::kDescriptorSymbol);
    } catch (const std::exception& e) {
        return {nullptr,
                refusal(file, fmt::format("cannot import '{}': {}", sdk::kDescriptorSymbol, e.what()))};
    }
    const sdk::PluginDescriptor* d = descriptor.get();
    if (d == nullptr) {
        return {nullptr, refusal(file, "descriptor symbol points to nothing")};
    }
    // Handshake: only the three frozen leading fields are read before the major is known to match.
    if (d->abi_major != sdk::kAbiMajor) {
        return {nullptr,
                refusal(file, fmt::format("ABI major mismatch: expected {}, found {} (rebuild the plugin "
                                          "against this ctsync SDK)",
                                          sdk::kAbiMajor, d->abi_major))};
    }
    if (d->abi_minor > sdk::kAbiMinor) {
        return {nullptr,
                refusal(file,
                        fmt::format("ABI minor newer than this ctsyncd: expected at most {}.{}, found {}.{} "
                                    "(upgrade ctsyncd or rebuild the plugin)",
                                    sdk::kAbiMajor, sdk::kAbiMinor, d->abi_major, d->abi_minor))};
    }
    if (d->descriptor_size < kMinDescriptorSize) {
        return {nullptr,
                refusal(file, fmt::format("descriptor too small: expected at least {} bytes, found {}",
                                          kMinDescriptorSize, d->descriptor_size))};
    }
    const char* fingerprint = d->build_fingerprint != nullptr ? d->build_fingerprint : "(none)";
    if (std::strcmp(fingerprint, CTSYNC_SDK_BUILD_FINGERPRINT) != 0) {
        return {nullptr, refusal(file, fmt::format("build fingerprint mismatch: expected '{}', found '{}'",
                                                   CTSYNC_SDK_BUILD_FINGERPRINT, fingerprint))};
    }
    if (d->name == nullptr || d->name[0] == '\0') {
        return {nullptr, refusal(file, "descriptor has no plugin name")};
    }
    if (d->version == nullptr || d->version[0] == '\0') {
        return {nullptr, refusal(file, fmt::format("plugin '{}' declares no version", d->name))};
    }
    if (d->create == nullptr) {
        return {nullptr, refusal(file, fmt::format("plugin '{}' has no factory", d->name))};
    }
    if (std::string(sdk::to_string(d->category)) == "unknown") {
        return {nullptr, refusal(file, fmt::format("plugin '{}' has an unknown category {}", d->name,
                                                   static_cast<std::uint32_t>(d->category)))};
    }
    if (d->key_count > 0 && d->keys == nullptr) {
        return {nullptr, refusal(file, fmt::format("plugin '{}' declares {} config keys but no table",
                                                   d->name, d->key_count))};
    }
    auto table_issues = check_key_table({d->keys, d->key_count});
    if (!table_issues.empty()) {
        std::string detail;
        for (const auto& issue : table_issues) {
            detail += fmt::format("{}key '{}': {}", detail.empty() ? "" : "; ", issue.path, issue.message);
        }
        return {nullptr, refusal(file, fmt::format("plugin '{}' has an invalid config key table: {}", d->name,
                                                   detail))};
    }
    auto loaded = std::make_shared<LoadedPlugin>();
    loaded->descriptor = std::move(descriptor);
    loaded->file = file;
    return {std::move(loaded), {}};
}

LoadResult PluginLoader::inspect(const fs::path& file) {
    return open_and_check(file);
}

LoadResult PluginLoader::load(const std::string& name, std::optional<sdk::Category> expected_category,
                              const std::optional<fs::path>& explicit_file) {
    fs::path file;
    if (explicit_file) {
        file = *explicit_file;
    } else {
        std::string searched;
        for (const auto& dir : search_path_) {
            fs::path candidate = dir / plugin_file_name(name);
            std::error_code ec;
            if (fs::is_regular_file(candidate,
                                    ec)) {  // follows symlinks; skips dangling ones and directories
                file = candidate;
                break;
            }
            searched += (searched.empty() ? "" : ", ") + dir.string();
        }
        if (file.empty()) {
            return {nullptr,
                    fmt::format("plugin '{}': file not found: expected {} in one of [{}], found none", name,
                                plugin_file_name(name), searched)};
        }
    }
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(file, ec);
    if (ec) {
        canonical = file;
    }
    if (auto it = by_name_.find(name); it != by_name_.end()) {
        fs::path loaded_canonical = fs::weakly_canonical(it->second->file, ec);
        if (loaded_canonical != canonical) {
            return {nullptr,
                    refusal(file, fmt::format("duplicate plugin name '{}': expected one file, found it in "
                                              "'{}' and '{}'",
                                              name, it->second->file.string(), file.string()))};
        }
        if (expected_category && it->second->descriptor->category != *expected_category) {
            return {nullptr, refusal(file, fmt::format("wrong category for this slot: expected {}, found {}",
                                                       sdk::to_string(*expected_category),
                                                       sdk::to_string(it->second->descriptor->category)))};
        }
        return {it->second, {}};
    }
    LoadResult result = open_and_check(file);
    if (!result) {
        return result;
    }
    const sdk::PluginDescriptor& d = *result.plugin->descriptor;
    if (name != d.name) {
        return {nullptr,
                refusal(file, fmt::format("wrong plugin name: expected '{}', found '{}'", name, d.name))};
    }
    if (expected_category && d.category != *expected_category) {
        return {nullptr,
                refusal(file, fmt::format("wrong category for this slot: expected {}, found {}",
                                          sdk::to_string(*expected_category), sdk::to_string(d.category)))};
    }
    by_name_[name] = result.plugin;
    return result;
}

std::vector<ListedPlugin> list_plugins(const std::vector<fs::path>& search_path) {
    std::vector<ListedPlugin> out;
    std::map<std::string, fs::path> first_seen;
    PluginLoader loader(search_path);
    for (const auto& dir : search_path) {
        std::error_code ec;
        if (!fs::is_directory(dir, ec)) {
            continue;
        }
        std::vector<fs::path> files;
        for (const auto& entry : fs::directory_iterator(dir, ec)) {
            const auto name = entry.path().filename().string();
            std::error_code type_ec;
            if (name.rfind("ctsync-", 0) == 0 && entry.path().extension() == ".so" &&
                fs::is_regular_file(entry.path(), type_ec)) {  // as load(): skip directories, dangling links
                files.push_back(entry.path());
            }
        }
        std::sort(files.begin(), files.end());
        for (const auto& file : files) {
            ListedPlugin listed;
            listed.file = file;
            auto [it, inserted] = first_seen.emplace(file.filename().string(), file);
            if (!inserted) {
                listed.shadowed_by = it->second;
                out.push_back(std::move(listed));
                continue;
            }
            LoadResult result = loader.inspect(file);
            listed.plugin = result.plugin;
            listed.error = result.error;
            if (result.plugin) {
                std::string stem = file.filename().string();
                stem = stem.substr(7, stem.size() - 7 - 3);
                if (stem != result.plugin->descriptor->name) {
                    listed.plugin = nullptr;
                    listed.error = refusal(file, fmt::format("wrong plugin name: expected '{}', found '{}'",
                                                             stem, result.plugin->descriptor->name));
                }
            }
            out.push_back(std::move(listed));
        }
    }
    return out;
}

}  // namespace ctsync::core
