// SPDX-License-Identifier: GPL-2.0-or-later
// Writes ctsyncd.json(5) from its template and the key tables — the core's sections and each packaged
// plugin's — that also drive validation and `ctsyncd --describe`, so the page cannot drift from the code.
//   gen-config-man --template ctsyncd.json.5.in --out ctsyncd.json.5 --version V PLUGIN_FILE...
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <sstream>

#include "core/config/daemon_config.hpp"
#include "core/config/key_table.hpp"
#include "core/loader/plugin_loader.hpp"

namespace {
using namespace ctsync;

// Text for roff: backslashes and minus signs escaped, no line may start with a control character.
std::string roff(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '\\') {
            out += "\\e";
        } else if (c == '-') {
            out += "\\-";
        } else if (c == '\n') {
            out += "\n.br\n";
        } else {
            out.push_back(c);
        }
    }
    if (!out.empty() && (out.front() == '.' || out.front() == '\'')) {
        out.insert(0, "\\&");
    }
    return out;
}

std::string default_text(const sdk::ConfigKey& key) {
    if (key.required) {
        return "required";
    }
    return key.default_json != nullptr ? std::string("default ") + key.default_json : "optional, no default";
}

void keys(std::ostream& out, std::span<const sdk::ConfigKey> table) {
    if (table.empty()) {
        out << "No keys.\n";
        return;
    }
    for (const auto& key : table) {
        out << ".TP\n.B " << roff(key.name) << "\n";
        out << roff(core::describe_type(key)) << "; " << roff(default_text(key)) << ".\n.br\n";
        out << roff(key.description) << "\n";
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app("gen-config-man: writes ctsyncd.json(5) from the key tables");
    std::string template_file;
    std::string out_file;
    std::string version;
    std::vector<std::string> plugins;
    app.add_option("--template", template_file)->required();
    app.add_option("--out", out_file)->required();
    app.add_option("--version", version)->required();
    app.add_option("plugins", plugins, "Plugin files, in the order their sections appear");
    CLI11_PARSE(app, argc, argv);

    std::ifstream in(template_file);
    if (!in) {
        std::cerr << "gen-config-man: cannot read " << template_file << "\n";
        return 1;
    }
    std::stringstream page;
    page << in.rdbuf();
    std::string text = page.str();

    std::ostringstream core_out;
    for (const auto& section : core::core_sections()) {
        core_out << ".SS " << roff(section.path) << "\n";
        keys(core_out, section.keys);
    }
    std::ostringstream plugin_out;
    core::PluginLoader loader({});
    for (const auto& file : plugins) {
        auto result = loader.inspect(file);
        if (!result) {
            std::cerr << "gen-config-man: " << file << ": " << result.error << "\n";
            return 1;
        }
        const auto& d = *result.plugin->descriptor;
        plugin_out << ".SS " << roff(d.name) << " (" << sdk::to_string(d.category) << ", " << roff(d.version)
                   << ")\n";
        if (d.summary != nullptr) {
            plugin_out << roff(d.summary) << ".\n";
        }
        plugin_out << "Package \\fBctsync\\-plugin\\-" << roff(d.name)
                   << "\\fR; keys of its \\fBconfig\\fR object:\n";
        keys(plugin_out, result.plugin->keys());
    }
    auto replace = [&](const std::string& marker, const std::string& with) {
        auto at = text.find(marker);
        if (at == std::string::npos) {
            std::cerr << "gen-config-man: " << marker << " missing from " << template_file << "\n";
            return false;
        }
        text.replace(at, marker.size(), with);
        return true;
    };
    if (!replace("@CORE_KEYS@\n", core_out.str()) || !replace("@PLUGIN_KEYS@\n", plugin_out.str()) ||
        !replace("@CTSYNC_VERSION@", version)) {
        return 1;
    }
    std::ofstream out(out_file);
    out << text;
    return out ? 0 : 1;
}
