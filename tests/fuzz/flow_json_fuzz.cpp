// SPDX-License-Identifier: GPL-2.0-or-later
// The flow JSON import (`ctsyncctl import`, conntrackd-compatible state files): any JSON value is either
// refused with issues naming the path, or read into a flow (or expectation) that writes back to JSON which
// reads back to the same flow.
#include <cstdint>
#include <nlohmann/json.hpp>

#include "core/cache/flow_json.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace ctsync;
using namespace ctsync::core;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto text = fuzz::as_text(data, size);
    const auto j = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
        return 0;
    }
    const auto one = [](const nlohmann::json& value) {
        ConfigIssues issues;
        if (auto flow = flow_from_json(value, ".flows[0]", issues)) {
            CTSYNC_FUZZ_CHECK(issues.empty());
            ConfigIssues again_issues;
            auto again = flow_from_json(to_json(*flow), ".", again_issues);
            CTSYNC_FUZZ_CHECK(again.has_value());
            CTSYNC_FUZZ_CHECK(*again == *flow);
            (void)to_line(*flow);
        } else {
            CTSYNC_FUZZ_CHECK(!issues.empty());
        }
        issues.clear();
        if (auto expectation = expectation_from_json(value, ".expectations[0]", issues)) {
            CTSYNC_FUZZ_CHECK(issues.empty());
            ConfigIssues again_issues;
            auto again = expectation_from_json(to_json(*expectation), ".", again_issues);
            CTSYNC_FUZZ_CHECK(again.has_value());
            CTSYNC_FUZZ_CHECK(*again == *expectation);
            (void)to_line(*expectation);
        } else {
            CTSYNC_FUZZ_CHECK(!issues.empty());
        }
    };
    one(j);
    if (j.is_array()) {
        for (const auto& element : j) {
            one(element);
        }
    }
    return 0;
}
