// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/metrics/registry.hpp"

#include <gtest/gtest.h>

namespace ctsync::core {
namespace {

TEST(MetricsRegistry, ScopesPluginMetricsByInstance) {
    MetricsRegistry registry;
    ScopedMetrics link_a(registry, "link-a");
    ScopedMetrics link_b(registry, "link-b");
    link_a.counter("datagrams_sent", "sent").add(3);
    link_b.counter("datagrams_sent", "sent").add(5);
    link_a.counter("datagrams_sent", "sent").add(1);  // same object on second request
    link_b.gauge("queue_depth", "queued").set(-2);
    auto snapshot = registry.snapshot();
    ASSERT_EQ(snapshot.size(), 3u);
    EXPECT_EQ(snapshot[0].name, "link-a.datagrams_sent");
    EXPECT_EQ(snapshot[0].value, 4);
    EXPECT_EQ(snapshot[1].name, "link-b.datagrams_sent");
    EXPECT_EQ(snapshot[1].value, 5);
    EXPECT_EQ(snapshot[2].kind, "gauge");
    EXPECT_EQ(snapshot[2].value, -2);
}

TEST(MetricsRegistry, InvalidNamesAreCountedNotListed) {
    MetricsRegistry registry;
    registry.counter("Bad Name", "x").add(10);
    registry.gauge("", "x").set(1);
    registry.counter("ok", "x");
    registry.gauge("ok", "a gauge under a counter's name").set(5);
    auto snapshot = registry.snapshot();
    ASSERT_EQ(snapshot.size(), 2u);
    EXPECT_EQ(snapshot[0].name, "metrics.invalid_names");
    EXPECT_EQ(snapshot[0].value, 3);
    EXPECT_EQ(snapshot[1].name, "ok");
    EXPECT_EQ(snapshot[1].value, 0);
}

}  // namespace
}  // namespace ctsync::core
