// SPDX-License-Identifier: GPL-2.0-or-later
// Running scripts/lab/failover-lab.sh from a test and reading its "RESULT <what> key=value ..." lines: shared
// by the lab's host tests (failover_lab_test.cpp) and its VM tests (failover_lab_vm_test.cpp, SCTP).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/netns.hpp"
#include "tests/support/process.hpp"

namespace ctsync::test {

inline const std::string kScript = CTSYNC_FAILOVER_LAB;
inline const std::string kBuildDir = CTSYNC_BINARY_DIR;

// "RESULT tcp verdict=SURVIVED gap_ms=120 error=\"\"" -> results["tcp"]["verdict"] == "SURVIVED";
// "RESULT rst=0" -> results["rst"]["rst"] == "0".
using Results = std::map<std::string, std::map<std::string, std::string>>;

inline Results parse_results(const std::string& out) {
    Results results;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("RESULT ", 0) != 0) {
            continue;
        }
        std::istringstream in(line.substr(7));
        std::string what;
        in >> what;
        if (const auto eq = what.find('=');
            eq != std::string::npos) {  // "RESULT rst=0": results["rst"]["rst"]
            results[what.substr(0, eq)][what.substr(0, eq)] = what.substr(eq + 1);
            continue;
        }
        auto& fields = results[what];
        // Tokens "key=value" or key="quoted value" separated by spaces; anything else is ignored.
        std::string rest;
        std::getline(in, rest);
        std::size_t i = 0;
        while (i < rest.size()) {
            while (i < rest.size() && rest[i] == ' ') {
                ++i;
            }
            std::size_t end = i;
            while (end < rest.size() && rest[end] != ' ' && rest[end] != '=') {
                ++end;
            }
            if (end >= rest.size() || rest[end] != '=') {
                i = end;
                continue;
            }
            const std::string key = rest.substr(i, end - i);
            i = end + 1;
            std::size_t stop;
            if (i < rest.size() && rest[i] == '"') {
                stop = rest.find('"', i + 1);
                stop = stop == std::string::npos ? rest.size() : stop;
                fields[key] = rest.substr(i + 1, stop - i - 1);
                i = stop + 1;
            } else {
                stop = rest.find(' ', i);
                stop = stop == std::string::npos ? rest.size() : stop;
                fields[key] = rest.substr(i, stop - i);
                i = stop;
            }
        }
    }
    return results;
}

struct LabRun {
    RunResult run;
    Results results;
    std::string field(const std::string& what, const std::string& key) const {
        auto w = results.find(what);
        if (w == results.end()) {
            return "<no RESULT " + what + ">";
        }
        auto k = w->second.find(key);
        return k == w->second.end() ? "<no " + key + ">" : k->second;
    }
    long number(const std::string& what, const std::string& key) const {
        try {
            return std::stol(field(what, key));
        } catch (const std::exception&) {
            return -1;
        }
    }
    std::string transcript() const { return "---- lab stdout:\n" + run.out + "---- lab stderr:\n" + run.err; }
};

inline LabRun run_lab(std::vector<std::string> args,
                      std::chrono::seconds timeout = std::chrono::seconds(170)) {
    std::vector<std::string> argv = {"bash",    kScript,    "--build",
                                     kBuildDir, "--prefix", NetNs::prefix() + "lab-"};
    argv.insert(argv.end(), args.begin(), args.end());
    LabRun lab;
    lab.run = run(argv, timeout);
    lab.results = parse_results(lab.run.out);
    return lab;
}

// Root, the script and the tools it needs; the transcript of the last run when a test failed.
class LabTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_TRUE(can_create_netns()) << "the failover lab needs root (network namespaces)";
        ASSERT_TRUE(std::filesystem::exists(kScript)) << kScript;
        for (const char* tool : {"keepalived", "nft", "conntrack"}) {
            ASSERT_EQ(run({"sh", "-c", std::string("command -v ") + tool}).exit_code, 0)
                << tool << " is not installed (scripts/install-deps.sh installs it)";
        }
    }
    void TearDown() override {
        if (HasFailure()) {
            std::cerr << last_.transcript();
        }
    }
    LabRun last_;
};

}  // namespace ctsync::test
