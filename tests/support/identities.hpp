// SPDX-License-Identifier: GPL-2.0-or-later
// Identities of the entries bench/ct_inject.cpp creates ("src sport": unique per entry), read from the kernel
// with conntrack -L or from a `ctsyncctl dump --json` flow, so that tests can compare the two exactly.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>

#include "tests/support/netns.hpp"
#include "tests/support/process.hpp"

namespace ctsync::test {

inline std::set<std::string> kernel_identities(const NetNs& ns) {
    auto listing = run(ns.exec({"conntrack", "-L"}), std::chrono::seconds(60)).out;
    std::set<std::string> out;
    std::istringstream in(listing);
    for (std::string line; std::getline(in, line);) {
        auto src = line.find("src=");
        auto sport = line.find("sport=");
        if (src == std::string::npos || sport == std::string::npos) {
            continue;
        }
        out.insert(line.substr(src + 4, line.find(' ', src) - src - 4) + " " +
                   line.substr(sport + 6, line.find(' ', sport) - sport - 6));
    }
    return out;
}

inline std::string flow_identity(const nlohmann::json& flow) {
    return flow["original"]["src"].get<std::string>() + " " +
           std::to_string(flow["original"]["sport"].get<int>());
}

}  // namespace ctsync::test
