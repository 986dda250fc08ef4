// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/metrics/prometheus.hpp"

#include <fmt/format.h>

#include <map>

namespace ctsync::core {
namespace {

// Registry names are [a-z0-9_.-] (MetricsRegistry::valid_name), plugin ids [a-z0-9-]: mapping '.' and '-'
// to '_' leaves a valid Prometheus name once prefixed with "ctsync_".
std::string sanitize(const std::string& name) {
    std::string out;
    out.reserve(name.size());
    for (char c : name) {
        const bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        out.push_back(ok ? c : '_');
    }
    return out;
}

std::string escape_help(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out.push_back(c);
        }
    }
    return out;
}

std::string escape_label(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out.push_back(c);
        }
    }
    return out;
}

}  // namespace

std::string prometheus_family(const MetricSample& sample) {
    std::string name = sample.plugin.empty()
                           ? "ctsync_" + sanitize(sample.name)
                           : "ctsync_" + sanitize(sample.plugin) + "_" + sanitize(sample.local_name);
    if (sample.kind == "counter") {
        name += "_total";
    }
    return name;
}

std::string render_prometheus(const std::vector<MetricSample>& samples, const PrometheusInfo& info) {
    struct Family {
        std::string kind;
        std::string help;
        std::vector<const MetricSample*> members;
    };
    std::map<std::string, Family> families;
    std::map<std::string, std::string> series_owner;  // family + labels -> the registry name that took it
    std::vector<std::string> omitted;
    for (const auto& sample : samples) {
        const std::string family = prometheus_family(sample);
        const std::string series = family + "{" + sample.instance + "}";
        auto [owner, fresh] = series_owner.emplace(series, sample.name);
        auto found = families.find(family);
        if (!fresh || (found != families.end() && found->second.kind != sample.kind)) {
            omitted.push_back(fmt::format("# ctsync: '{}' omitted: its name {} is taken by '{}'", sample.name,
                                          family,
                                          fresh ? found->second.members.front()->name : owner->second));
            continue;
        }
        auto& f = families[family];
        if (f.members.empty()) {
            f.kind = sample.kind;
            f.help = sample.help;
        }
        f.members.push_back(&sample);
    }

    std::string out;
    out += "# HELP ctsync_info ctsyncd's version and node (always 1).\n# TYPE ctsync_info gauge\n";
    out += fmt::format("ctsync_info{{version=\"{}\",node_id=\"{}\",node_name=\"{}\"}} 1\n",
                       escape_label(info.version), info.node_id, escape_label(info.node_name));
    for (const auto& [name, family] : families) {
        out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escape_help(family.help), name, family.kind);
        for (const MetricSample* sample : family.members) {
            if (sample->plugin.empty()) {
                out += fmt::format("{} {}\n", name, sample->value);
            } else {
                out += fmt::format("{}{{instance=\"{}\"}} {}\n", name, escape_label(sample->instance),
                                   sample->value);
            }
        }
    }
    for (const auto& line : omitted) {
        out += line + "\n";
    }
    return out;
}

}  // namespace ctsync::core
