// SPDX-License-Identifier: GPL-2.0-or-later
// A daemon with a source and filters: the source is the source (not whichever plugin came last), and every
// filter decides what enters the internal cache.
#include <gtest/gtest.h>

#include "tests/core/daemon/daemon_test_util.hpp"
#include "tests/support/netns.hpp"

namespace ctsync::test {
namespace {

using namespace std::chrono_literals;

TEST(SourceAndFilters, FiltersDecideWhatTheInternalCacheHolds) {
    ASSERT_TRUE(can_create_netns()) << "this test needs root (network namespaces)";
    TempDir dir;
    NetNs ns("filters");
    auto config = instance_config(dir.path(), 1);
    config["source"] = {{"plugin", "source-ctnetlink"}, {"config", {{"expectations", false}}}};
    // Two filters, in the order they run: ports 20-23 and port 179 stay out.
    config["filters"] = {{{"plugin", "filter-fixture"},
                          {"name", "low"},
                          {"config", {{"label", "x"}, {"min_port", 20}, {"max_port", 23}}}},
                         {{"plugin", "filter-fixture"},
                          {"name", "bgp"},
                          {"config", {{"label", "y"}, {"min_port", 179}, {"max_port", 179}}}}};
    config["transports"] = {{{"plugin", "transport-fixture"}}};  // a plugin after the source and the filters
    add_sync_key(config, dir.path());
    auto file = write_config(dir.path(), config);
    for (int port : {22, 80, 179, 443}) {
        auto r = run(ns.exec({"conntrack", "-I", "-p", "tcp", "-s", "192.0.2.1", "-d", "198.51.100.1",
                              "--sport", std::to_string(1000 + port), "--dport", std::to_string(port),
                              "--state", "ESTABLISHED", "-t", "300"}));
        ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    Process daemon(ns.exec({kCtsyncd, "-C", file.string()}));
    nlohmann::json dump;
    ASSERT_TRUE(wait_until(
        [&] {
            auto s = ctl_json(file, "status");
            return !s.is_null() && s["tables"]["internal_synced"].get<bool>() &&
                   !s["tables"]["dumping"].get<bool>();
        },
        10s))
        << daemon.err();
    dump = ctl_json(file, "dump");
    std::set<int> ports;
    for (const auto& f : dump["flows"]) {
        ports.insert(f["original"]["dport"].get<int>());
    }
    EXPECT_EQ(ports, (std::set<int>{80, 443}));
    // Each filter counted what it saw: "low" every flow, "bgp" only what "low" let through.
    auto stats = ctl_json(file, "stats");
    std::map<std::string, std::int64_t> m;
    for (const auto& s : stats) {
        m[s["name"]] = s["value"];
    }
    EXPECT_EQ(m["low.evaluated"], 4);
    EXPECT_EQ(m["bgp.evaluated"], 3);
    EXPECT_EQ(m["internal.filtered"], 2);
    EXPECT_EQ(daemon.terminate(10s).value_or(-1), 0);
}

}  // namespace
}  // namespace ctsync::test
