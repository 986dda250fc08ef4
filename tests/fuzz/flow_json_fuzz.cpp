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

namespace {

// `read` is flow_from_json or expectation_from_json: refused with issues, or read into an entry whose JSON
// reads back to the same entry.
template <class Read>
void round_trip(const nlohmann::json& value, const std::string& path, Read read) {
    ConfigIssues issues;
    auto entry = read(value, path, issues);
    if (!entry) {
        CTSYNC_FUZZ_CHECK(!issues.empty());
        return;
    }
    CTSYNC_FUZZ_CHECK(issues.empty());
    ConfigIssues again_issues;
    auto again = read(to_json(*entry), std::string("."), again_issues);
    CTSYNC_FUZZ_CHECK(again.has_value());
    CTSYNC_FUZZ_CHECK(*again == *entry);
    (void)to_line(*entry);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto text = fuzz::as_text(data, size);
    const auto j = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
        return 0;
    }
    const auto one = [](const nlohmann::json& value) {
        round_trip(value, ".flows[0]", [](const auto& v, const auto& path, auto& issues) {
            return flow_from_json(v, path, issues);
        });
        round_trip(value, ".expectations[0]", [](const auto& v, const auto& path, auto& issues) {
            return expectation_from_json(v, path, issues);
        });
    };
    one(j);
    if (j.is_array()) {
        for (const auto& element : j) {
            one(element);
        }
    }
    return 0;
}
