// SPDX-License-Identifier: GPL-2.0-or-later
// Flow ids for any uptime (issue 14): ids are u32 and the counter wraps after 2^32 inserts (half a day at
// 100k new flows/s); a long-lived flow may still hold the id the counter comes back to. Peers map ids to
// flows, so no id may name two live flows.
#include "core/cache/flow_cache.hpp"

#include <gtest/gtest.h>

#include <set>

#include "tests/support/flows.hpp"

namespace ctsync::core {
namespace {

sdk::FlowState flow(std::uint32_t i) {
    return test::nated_tcp_flow(i);
}

TEST(FlowCacheIds, AfterTheCounterWrapsNoIdNamesTwoLiveFlows) {
    FlowCache cache;
    cache.set_next_id(0xfffffffd);
    cache.upsert(flow(1), 0, 0);
    cache.upsert(flow(2), 0, 0);
    cache.upsert(flow(3), 0, 0);  // the counter wraps; 0 is "no flow"
    EXPECT_EQ(cache.id_of(flow(1).key()), 0xfffffffeu);
    EXPECT_EQ(cache.id_of(flow(2).key()), 0xffffffffu);
    EXPECT_EQ(cache.id_of(flow(3).key()), 1u);
    cache.erase(flow(2).key());  // frees 0xffffffff
    // 2^32 inserts later, flows 1 and 3 still live: the counter comes round to their ids again.
    cache.set_next_id(0xfffffffd);
    cache.upsert(flow(4), 0, 0);
    EXPECT_EQ(cache.id_of(flow(4).key()), 0xffffffffu);  // 0xfffffffe is flow 1's
    cache.upsert(flow(5), 0, 0);
    EXPECT_EQ(cache.id_of(flow(5).key()), 2u);  // 0 skipped, 1 is flow 3's
    // Swept and cleared entries give their ids back.
    cache.upsert(flow(6), 5, 0);  // generation 5: flows 1, 3, 4, 5 are older and go in the sweep
    EXPECT_EQ(cache.sweep(5), 4u);
    cache.set_next_id(0);
    cache.upsert(flow(7), 5, 0);
    EXPECT_EQ(cache.id_of(flow(7).key()), 1u);  // flow 3's, free again
    std::set<std::uint32_t> ids;
    cache.for_each_flow([&](const sdk::FlowState& f) { ids.insert(cache.id_of(f.key())); });
    EXPECT_EQ(ids.size(), cache.flow_count());
    cache.clear();
    cache.set_next_id(0);
    cache.upsert(flow(8), 0, 0);
    EXPECT_EQ(cache.id_of(flow(8).key()), 1u);
}

}  // namespace
}  // namespace ctsync::core
