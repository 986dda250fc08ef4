// SPDX-License-Identifier: GPL-2.0-or-later
// Two ctsyncd instances with different configs, each in its own network namespace on this host, at once:
// neither touches the other's lock file or socket, and ctsyncctl -C reaches the right one.
#include <gtest/gtest.h>

#include "tests/core/daemon/daemon_test_util.hpp"
#include "tests/support/netns.hpp"

namespace ctsync::test {
namespace {

using namespace std::chrono_literals;

TEST(TwoInstances, RunSideBySideInTwoNamespaces) {
    ASSERT_TRUE(can_create_netns()) << "this test needs root (network namespaces)";
    TempDir dir;
    std::filesystem::create_directories(dir / "a");
    std::filesystem::create_directories(dir / "b");
    NetNs ns_a("a");
    NetNs ns_b("b");
    auto config_a = write_config(dir / "a", instance_config(dir / "a", 1));
    auto config_b = write_config(dir / "b", instance_config(dir / "b", 2));

    Process daemon_a(ns_a.exec({kCtsyncd, "-C", config_a.string()}));
    Process daemon_b(ns_b.exec({kCtsyncd, "-C", config_b.string()}));
    nlohmann::json status_a;
    nlohmann::json status_b;
    ASSERT_TRUE(wait_until(
        [&] {
            status_a = ctl_json(config_a, "status");
            status_b = ctl_json(config_b, "status");
            return !status_a.is_null() && !status_b.is_null();
        },
        15s, 50ms))
        << "a: " << daemon_a.err() << "\nb: " << daemon_b.err();

    // ctsyncctl -C reaches the instance of that config, which runs in its own namespace.
    EXPECT_EQ(status_a["node_id"], 1);
    EXPECT_EQ(status_b["node_id"], 2);
    EXPECT_EQ(status_a["network_namespace"], ns_a.ns_id());
    EXPECT_EQ(status_b["network_namespace"], ns_b.ns_id());
    EXPECT_NE(status_a["network_namespace"], status_b["network_namespace"]);
    EXPECT_NE(status_a["pid"], status_b["pid"]);
    // Each holds its own lock file, with its own pid, and its own socket.
    EXPECT_EQ(read_file(dir / "a" / "ctsyncd.lock"), std::to_string(status_a["pid"].get<int>()) + "\n");
    EXPECT_EQ(read_file(dir / "b" / "ctsyncd.lock"), std::to_string(status_b["pid"].get<int>()) + "\n");
    EXPECT_EQ(status_a["control_socket"], (dir / "a" / "ctsyncd.sock").string());
    EXPECT_EQ(status_b["control_socket"], (dir / "b" / "ctsyncd.sock").string());
    // ctsyncctl run inside a namespace reaches the same instance as from outside (the socket is a path).
    EXPECT_EQ(ctl_json(config_b, "status", ns_a.exec({}))["node_id"], 2);

    // Stopping one leaves the other serving.
    auto code_a = daemon_a.terminate(10s);
    EXPECT_EQ(code_a.value_or(-1), 0) << daemon_a.err();
    EXPECT_FALSE(std::filesystem::exists(dir / "a" / "ctsyncd.sock"));
    EXPECT_EQ(ctl_json(config_b, "status")["node_id"], 2);
    EXPECT_EQ(daemon_b.terminate(10s).value_or(-1), 0) << daemon_b.err();
}

}  // namespace
}  // namespace ctsync::test
