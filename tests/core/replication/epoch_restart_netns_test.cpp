// SPDX-License-Identifier: GPL-2.0-or-later
// A node restarted after its clock stepped back (issue 14). Epochs came from the wall clock: a peer that
// had heard the node's first run (its clock an hour ahead, here through libfaketime) dropped everything
// the second run sent as an older epoch (`rx_stale_epoch`), so the node never came back. The epoch file
// makes the second run's epoch one more than the first's.
#include <gtest/gtest.h>

#include "tests/core/daemon/daemon_test_util.hpp"
#include "tests/support/netns.hpp"

namespace ctsync::test {
namespace {

using namespace std::chrono_literals;

nlohmann::json pair_config(const std::filesystem::path& dir, int node, int port, int peer_port) {
    auto config = instance_config(dir, node);
    config["transports"] = {{{"plugin", "transport-tcp"},
                             {"config",
                              {{"listen", fmt::format("127.0.0.1:{}", port)},
                               {"peers", {fmt::format("127.0.0.1:{}", peer_port)}}}}}};
    config["replication"] = {{"initial_role", node == 1 ? "primary" : "backup"}};
    add_sync_key(config, dir);
    return config;
}

// libfaketime (Debian's faketime package), preloaded into ctsyncd itself: the faketime wrapper forks, and
// the test must end the daemon it started by its pid.
std::string libfaketime() {
    for (const auto& arch : std::filesystem::directory_iterator("/usr/lib")) {
        const auto lib = arch.path() / "faketime" / "libfaketime.so.1";
        if (std::filesystem::exists(lib)) {
            return lib.string();
        }
    }
    return {};
}

// The epoch node 1 holds for node 2 while it sees node 2 live; 0 until then.
std::uint64_t live_epoch_of_2(const std::filesystem::path& config) {
    auto r = ctl_json(config, "replication");
    if (!r.is_object()) {
        return 0;  // not up yet
    }
    for (const auto& p : r.value("peers", nlohmann::json::array())) {
        if (p.value("node", 0) == 2 && p.value("live", false)) {
            return p.value("epoch", std::uint64_t{0});
        }
    }
    return 0;
}

TEST(EpochRestart, ANodeRestartedWithItsClockSetBackIsHeardAgain) {
    ASSERT_TRUE(can_create_netns()) << "this test needs root (network namespaces)";
    TempDir dir;
    std::filesystem::create_directories(dir / "a");
    std::filesystem::create_directories(dir / "b");
    NetNs ns("epoch");
    const auto a = write_config(dir / "a", pair_config(dir / "a", 1, 3782, 3783));
    const auto b = write_config(dir / "b", pair_config(dir / "b", 2, 3783, 3782));
    Process node_a(ns.exec({kCtsyncd, "-C", a.string()}));
    std::uint64_t first = 0;
    {
        // The first run of node 2 with its wall clock an hour ahead (monotonic time left alone).
        const std::string lib = libfaketime();
        ASSERT_FALSE(lib.empty()) << "libfaketime is missing (scripts/install-deps.sh installs faketime)";
        Process ahead(ns.exec({"env", "LD_PRELOAD=" + lib, "FAKETIME=+1h", "FAKETIME_DONT_FAKE_MONOTONIC=1",
                               kCtsyncd, "-C", b.string()}));
        ASSERT_TRUE(wait_until([&] { return (first = live_epoch_of_2(a)) != 0; }, 15s))
            << "a: " << node_a.err() << "\nb: " << ahead.err();
        EXPECT_EQ(ahead.terminate(10s).value_or(-1), 0) << ahead.err();
    }
    const std::uint64_t now_us =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    ASSERT_GT(first, now_us + 3000ull * 1000 * 1000) << "the first run's epoch is not an hour ahead";
    // The second run, with the real clock: an hour behind the first.
    Process back(ns.exec({kCtsyncd, "-C", b.string()}));
    std::uint64_t second = 0;
    EXPECT_TRUE(wait_until(
        [&] {
            second = live_epoch_of_2(a);
            return second > first;
        },
        15s))
        << "node 1 holds epoch " << second << " for node 2 (first run " << first << ")\n"
        << ctl_json(a, "replication").dump();
    EXPECT_EQ(second, first + 1);
    EXPECT_EQ(metric(ctl_json(a, "stats"), "replication.rx_stale_epoch"), 0);
    EXPECT_EQ(back.terminate(10s).value_or(-1), 0) << back.err();
    EXPECT_EQ(node_a.terminate(10s).value_or(-1), 0) << node_a.err();
}

}  // namespace
}  // namespace ctsync::test
