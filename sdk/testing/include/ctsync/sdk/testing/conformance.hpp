// SPDX-License-Identifier: GPL-2.0-or-later
// The conformance suite every plugin can run: it loads the built plugin file with ctsyncd's own loader
// and checks the handshake, the key table, creation from a sample config and the rejection of bad ones.
//
//   int main(int argc, char** argv) {
//       ::testing::InitGoogleTest(&argc, argv);
//       ctsync::testkit::register_conformance_tests({.plugin_file = PLUGIN_FILE, ...});
//       return RUN_ALL_TESTS();
//   }
#pragma once

#include <ctsync/sdk/sdk.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ctsync::testkit {

// The test kit speaks the SDK's types unqualified; it lives apart from ctsync::sdk so that
// `using namespace ctsync::sdk` in a test does not make gtest's ::testing ambiguous.
using namespace ::ctsync::sdk;

struct ConformanceSpec {
    std::string plugin_file;  // path of the built ctsync-<id>.so
    std::string plugin_name;  // expected id
    Category category = Category::kFilter;
    nlohmann::json sample_config = nlohmann::json::object();  // must validate and create an instance
    std::vector<nlohmann::json> bad_configs;  // each must be refused by validation, naming a path
};

// Registers the suite "Conformance/<plugin_name>" with GoogleTest. Call after InitGoogleTest, before
// RUN_ALL_TESTS. Checks: loads through the host loader (symbol, ABI, fingerprint, name, category); exports
// exactly one Boost.DLL alias; key table well-formed and every key described; sample config accepted;
// factory creates an object of the declared category that survives the release of every other handle on
// its library; stop() is idempotent; every bad config is refused with at least one error.
void register_conformance_tests(const ConformanceSpec& spec);

}  // namespace ctsync::testkit
