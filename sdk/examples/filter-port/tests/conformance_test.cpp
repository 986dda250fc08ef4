// SPDX-License-Identifier: GPL-2.0-or-later
// The SDK's conformance suite, run on the built plugin file.
#include <gtest/gtest.h>

#include <ctsync/sdk/testing/conformance.hpp>

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    ctsync::testkit::register_conformance_tests({
        .plugin_file = PLUGIN_FILE,
        .plugin_name = "filter-port",
        .category = ctsync::sdk::Category::kFilter,
        .sample_config = {{"ports", {22, 179}}},
        .bad_configs = {nlohmann::json::object(),  // ports is required
                        {{"ports", {70000}}},
                        {{"ports", {22}}, {"protocols", {"icmp"}}},
                        {{"ports", {22}}, {"log_drops", "yes"}},
                        {{"ports", {22}}, {"unknown", 1}}},
    });
    return RUN_ALL_TESTS();
}
