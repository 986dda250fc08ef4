// SPDX-License-Identifier: GPL-2.0-or-later
// Finds plugin shared objects, performs the version handshake and refuses anything that does not match,
// with a message naming the file, what was expected and what was found.
#pragma once

#include <boost/shared_ptr.hpp>
#include <ctsync/sdk/plugin.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ctsync::core {

// A loaded, accepted plugin library. The descriptor pointer shares ownership of the library: the library
// stays mapped while this object, a copy of `descriptor`, or any instance created from it lives.
struct LoadedPlugin {
    boost::shared_ptr<const sdk::PluginDescriptor> descriptor;
    std::filesystem::path file;

    std::span<const sdk::ConfigKey> keys() const { return {descriptor->keys, descriptor->key_count}; }
};

// Outcome of a load: a plugin or a refusal.
struct LoadResult {
    std::shared_ptr<const LoadedPlugin> plugin;
    std::string error;  // "plugin file '/x/ctsync-a.so': ABI major mismatch: expected 1, found 2"
    explicit operator bool() const { return plugin != nullptr; }
};

// The file a plugin id lives in: "ctsync-<id>.so".
std::string plugin_file_name(const std::string& name);

// Directories searched, in precedence order: $CTSYNC_PLUGIN_PATH (colon-separated), `config_dirs`, the build
// tree's plugin directory (only when `executable` lies in the build tree), the installed plugin directory.
std::vector<std::filesystem::path> default_search_path(const std::vector<std::string>& config_dirs,
                                                       const std::filesystem::path& executable);

class PluginLoader {
  public:
    explicit PluginLoader(std::vector<std::filesystem::path> search_path);

    // Loads plugin `name`, from `explicit_file` if given, else from the first search directory holding
    // its file. Refuses: missing file, unloadable file, missing descriptor symbol, ABI major mismatch, ABI
    // minor newer than this host, descriptor too small, build fingerprint mismatch, name differing from
    // `name`, category differing from `expected_category`, a malformed key table, and a name already loaded
    // from another file (duplicate). Loading the same file twice returns the same plugin. Never throws.
    LoadResult load(const std::string& name, std::optional<sdk::Category> expected_category,
                    const std::optional<std::filesystem::path>& explicit_file = std::nullopt);

    // Loads one file and checks everything except the expected name and category (for --list-plugins).
    LoadResult inspect(const std::filesystem::path& file);

    const std::vector<std::filesystem::path>& search_path() const { return search_path_; }

  private:
    LoadResult open_and_check(const std::filesystem::path& file);

    std::vector<std::filesystem::path> search_path_;
    std::map<std::string, std::shared_ptr<const LoadedPlugin>> by_name_;
};

// Every plugin file in the search path, in precedence order, with its refusal or the file that shadows it.
struct ListedPlugin {
    std::filesystem::path file;
    std::shared_ptr<const LoadedPlugin> plugin;  // null when refused
    std::string error;
    std::filesystem::path shadowed_by;  // non-empty when an earlier directory has the same file name
};
std::vector<ListedPlugin> list_plugins(const std::vector<std::filesystem::path>& search_path);

// Wraps an instance so that it keeps its library loaded: the library is released only after the instance's
// destructor (which lives in that library) has run.
template <class Interface>
std::shared_ptr<Interface> hold_library(std::unique_ptr<sdk::Plugin> instance,
                                        boost::shared_ptr<const sdk::PluginDescriptor> library) {
    auto* typed = static_cast<Interface*>(instance.release());
    return std::shared_ptr<Interface>(typed, [library](Interface* p) mutable {
        delete p;
        library.reset();
    });
}

}  // namespace ctsync::core
