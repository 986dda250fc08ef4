// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/metrics/prometheus.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/metrics/http_endpoint.hpp"

namespace ctsync::core {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(Prometheus, NamesFollowTheDocumentedScheme) {
    MetricsRegistry registry;
    registry.counter("replication.tx_records", "records sent").add(5);
    registry.gauge("external.flows", "flows held").set(-3);
    ScopedMetrics mcast(registry, "sync-eth2", "transport-mcast");
    mcast.counter("datagrams_sent", "datagrams").add(2);
    ScopedMetrics mcast_b(registry, "sync-eth3", "transport-mcast");
    mcast_b.counter("datagrams_sent", "datagrams").add(9);
    const std::string text = render_prometheus(registry.snapshot(), {"0.1.0", 3, "fw \"a\""});
    EXPECT_THAT(
        text,
        HasSubstr("# HELP ctsync_info ctsyncd's version and node (always 1).\n# TYPE ctsync_info gauge\n"
                  "ctsync_info{version=\"0.1.0\",node_id=\"3\",node_name=\"fw \\\"a\\\"\"} 1\n"));
    EXPECT_THAT(text, HasSubstr("# HELP ctsync_replication_tx_records_total records sent\n"
                                "# TYPE ctsync_replication_tx_records_total counter\n"
                                "ctsync_replication_tx_records_total 5\n"));
    EXPECT_THAT(text, HasSubstr("# TYPE ctsync_external_flows gauge\nctsync_external_flows -3\n"));
    // One family for both instances of a plugin, told apart by the instance label.
    EXPECT_THAT(text, HasSubstr("# TYPE ctsync_transport_mcast_datagrams_sent_total counter\n"
                                "ctsync_transport_mcast_datagrams_sent_total{instance=\"sync-eth2\"} 2\n"
                                "ctsync_transport_mcast_datagrams_sent_total{instance=\"sync-eth3\"} 9\n"));
    EXPECT_EQ(prometheus_family(registry.snapshot().front()), "ctsync_external_flows");
}

TEST(Prometheus, HelpIsEscapedAndCollidingNamesAreLeftOutOnce) {
    MetricsRegistry registry;
    registry.counter("a.b", "first\nline \\ two").add(1);
    registry.counter("a_b", "same family name").add(2);
    registry.gauge("a_b_total", "a gauge whose name is the counter's family").set(1);
    const std::string text = render_prometheus(registry.snapshot(), {});
    EXPECT_THAT(text, HasSubstr("# HELP ctsync_a_b_total first\\nline \\\\ two\n"));
    EXPECT_THAT(text, HasSubstr("ctsync_a_b_total 1\n"));
    EXPECT_THAT(text, Not(HasSubstr("ctsync_a_b_total 2\n")));
    EXPECT_THAT(text, HasSubstr("# ctsync: 'a_b' omitted: its name ctsync_a_b_total is taken by 'a.b'\n"));
    // The gauge "a_b_total" maps to ctsync_a_b_total too, as a gauge: left out, not a second TYPE line.
    EXPECT_THAT(text, HasSubstr("# ctsync: 'a_b_total' omitted"));
    std::size_t types = 0;
    for (std::size_t at = text.find("# TYPE ctsync_a_b_total"); at != std::string::npos;
         at = text.find("# TYPE ctsync_a_b_total", at + 1)) {
        ++types;
    }
    EXPECT_EQ(types, 1u);
}

TEST(MetricsListen, AddressesParseOrSayWhyNot) {
    std::string error;
    auto v4 = parse_listen_address("127.0.0.1:9469", error);
    ASSERT_TRUE(v4);
    EXPECT_EQ(v4->port(), 9469);
    auto v6 = parse_listen_address("[fd00::1]:80", error);
    ASSERT_TRUE(v6);
    EXPECT_TRUE(v6->address().is_v6());
    const std::pair<const char*, const char*> bad[] = {
        {"127.0.0.1", "is not ADDRESS:PORT"},    {"fd00::1:80", "is not ADDRESS:PORT"},
        {"[fd00::1]80", "is not [IPV6]:PORT"},   {"host:80", "'host' is not an IP address"},
        {"127.0.0.1:0", "port '0' is not in"},   {"127.0.0.1:65536", "port '65536' is not in"},
        {"127.0.0.1:8a", "port '8a' is not in"}, {"127.0.0.1:", "port '' is not in"},
    };
    for (const auto& [text, message] : bad) {
        error.clear();
        EXPECT_FALSE(parse_listen_address(text, error)) << text;
        EXPECT_THAT(error, HasSubstr(message)) << text;
    }
}

}  // namespace
}  // namespace ctsync::core
