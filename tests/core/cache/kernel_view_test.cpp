// SPDX-License-Identifier: GPL-2.0-or-later
// The reconcile rules between a dump and the events that interleave with it.
#include "core/cache/kernel_view.hpp"

#include <gtest/gtest.h>

#include <ctsync/sdk/testing/mocks.hpp>

namespace ctsync::core {
namespace {

using sdk::EventKind;

sdk::FlowState flow(std::uint16_t sport, std::uint32_t mark = 0) {
    sdk::FlowState f;
    f.original.family = sdk::Family::kIpv4;
    f.original.protocol = sdk::l4::kTcp;
    f.original.src.bytes = {192, 0, 2, 1};
    f.original.dst.bytes = {198, 51, 100, 1};
    f.original.src_port = sport;
    f.original.dst_port = 80;
    f.mark = mark;
    return f;
}

class KernelViewTest : public ::testing::Test {
  protected:
    FlowCache cache_;
    MetricsRegistry metrics_;
    ::testing::NiceMock<testkit::MockLogger> log_;
    KernelView view_{cache_, metrics_, log_,
                     [](const sdk::FlowState& f) { return f.original.dst_port != 22; }};
};

TEST_F(KernelViewTest, CompleteDumpSweepsWhatTheKernelNoLongerHas) {
    view_.on_dump_begin(1);
    view_.on_flow(EventKind::kDump, flow(1));
    view_.on_flow(EventKind::kDump, flow(2));
    view_.on_dump_end(1, true);
    ASSERT_EQ(cache_.flow_count(), 2u);
    // Events for flow 2's deletion were lost; the next dump no longer lists it.
    view_.on_loss(sdk::LossReason::kOverrun, 1);
    view_.on_dump_begin(2);
    view_.on_flow(EventKind::kDump, flow(1));
    view_.on_dump_end(2, true);
    EXPECT_EQ(cache_.flow_count(), 1u);
    EXPECT_NE(cache_.find(flow(1).key()), nullptr);
}

// `internal_synced` (ctsyncctl status, gauge internal.synced): true only while the cache equals the kernel
// table. A loss clears it; a dump that was already running when events were lost does not restore it (what
// changed behind it was lost too); the next complete dump begun after the loss does.
TEST_F(KernelViewTest, SyncedOnlyAfterACompleteDumpBegunAfterTheLastLoss) {
    EXPECT_FALSE(view_.synced());
    view_.on_dump_begin(1);
    view_.on_flow(EventKind::kDump, flow(1));
    EXPECT_FALSE(view_.synced());
    view_.on_dump_end(1, true);
    EXPECT_TRUE(view_.synced());

    view_.on_loss(sdk::LossReason::kOverrun, 1);
    EXPECT_FALSE(view_.synced());
    view_.on_dump_begin(2);
    view_.on_dump_end(2, false);  // incomplete: nothing repaired
    EXPECT_FALSE(view_.synced());

    view_.on_dump_begin(3);
    view_.on_loss(sdk::LossReason::kMalformed, 1);  // lost while dump 3 runs
    view_.on_flow(EventKind::kDump, flow(1));
    view_.on_dump_end(3, true);
    EXPECT_FALSE(view_.synced());

    view_.on_dump_begin(4);
    view_.on_flow(EventKind::kDump, flow(1));
    view_.on_dump_end(4, true);
    EXPECT_TRUE(view_.synced());
    EXPECT_EQ(view_.completed_dumps(), 3u);
    bool gauge_seen = false;
    for (const auto& s : metrics_.snapshot()) {
        if (s.name == "internal.synced") {
            gauge_seen = true;
            EXPECT_EQ(s.value, 1);
        }
    }
    EXPECT_TRUE(gauge_seen);
}

TEST_F(KernelViewTest, IncompleteDumpSweepsNothing) {
    view_.on_flow(EventKind::kNew, flow(1));
    view_.on_dump_begin(1);
    view_.on_dump_end(1, false);
    EXPECT_EQ(cache_.flow_count(), 1u);
}

TEST_F(KernelViewTest, EventDuringDumpWinsOverTheDumpedCopy) {
    view_.on_dump_begin(1);
    view_.on_flow(EventKind::kUpdate, flow(1, /*mark=*/9));  // newer than what the dump will show
    view_.on_flow(EventKind::kDump, flow(1, /*mark=*/3));
    view_.on_dump_end(1, true);
    ASSERT_NE(cache_.find(flow(1).key()), nullptr);
    EXPECT_EQ(cache_.find(flow(1).key())->mark, 9u);
}

TEST_F(KernelViewTest, DestroyDuringDumpIsNotResurrectedByTheDump) {
    view_.on_flow(EventKind::kNew, flow(1));
    view_.on_dump_begin(1);
    view_.on_flow(EventKind::kDestroy, flow(1));
    view_.on_flow(EventKind::kDump, flow(1));  // the dump read it before it was destroyed
    view_.on_dump_end(1, true);
    EXPECT_EQ(cache_.find(flow(1).key()), nullptr);
}

TEST_F(KernelViewTest, EventsBetweenDumpsSurviveTheNextSweepOnlyIfDumpedAgain) {
    view_.on_dump_begin(1);
    view_.on_dump_end(1, true);
    view_.on_flow(EventKind::kNew, flow(1));
    view_.on_flow(EventKind::kNew, flow(2));
    view_.on_dump_begin(2);
    view_.on_flow(EventKind::kDump, flow(1));
    view_.on_dump_end(2, true);
    EXPECT_NE(cache_.find(flow(1).key()), nullptr);
    EXPECT_EQ(cache_.find(flow(2).key()), nullptr);  // gone from the kernel, its DESTROY lost
}

TEST_F(KernelViewTest, FilteredFlowsAreKeptOut) {
    auto ssh = flow(5);
    ssh.original.dst_port = 22;
    view_.on_flow(EventKind::kNew, ssh);
    EXPECT_EQ(cache_.flow_count(), 0u);
    auto counters = metrics_.snapshot();
    auto it =
        std::find_if(counters.begin(), counters.end(), [](auto& m) { return m.name == "internal.filtered"; });
    ASSERT_NE(it, counters.end());
    EXPECT_EQ(it->value, 1);
}

// What an UPDATE event leaves out (the protocol info when only the mark changed, labels, sequence
// adjustment) keeps what the cache holds; what it carries replaces it; filters judge the completed entry.
TEST_F(KernelViewTest, AnUpdateKeepsWhatItLeavesOut) {
    auto established = flow(7);
    established.tcp = {3, 7, 7, 0x23, 0x23};
    established.labels[0] = 0x04;
    established.seq_original = {true, 100, 0, 12};
    view_.on_flow(EventKind::kNew, established);
    auto mark_only = flow(7, 0x42);  // no protocol info, labels or sequence adjustment in the message
    view_.on_flow(EventKind::kUpdate, mark_only);
    const auto* held = cache_.find(established.key());
    ASSERT_NE(held, nullptr);
    EXPECT_EQ(held->mark, 0x42u);
    EXPECT_EQ(held->tcp, established.tcp);
    EXPECT_EQ(held->labels, established.labels);
    EXPECT_EQ(held->seq_original, established.seq_original);
    // A state change replaces the state.
    auto fin = flow(7, 0x42);
    fin.tcp = {4, 7, 7, 0x23, 0x27};
    view_.on_flow(EventKind::kUpdate, fin);
    EXPECT_EQ(cache_.find(established.key())->tcp, fin.tcp);
    // A dump entry is complete: it replaces everything.
    view_.on_flow(EventKind::kDump, flow(7, 0x42));
    EXPECT_EQ(cache_.find(established.key())->tcp, sdk::TcpState{});
}

TEST(KernelViewFilters, FiltersJudgeAnUpdateWithWhatItLeftOutFilledIn) {
    FlowCache cache;
    MetricsRegistry metrics;
    ::testing::NiceMock<testkit::MockLogger> log;
    // "tcp and state established": without the completion, a mark-only update (no state in it) would take
    // the flow out of the cache, and so out of replication.
    KernelView view{cache, metrics, log, [](const sdk::FlowState& f) { return f.tcp.state == 3; }};
    auto established = flow(9);
    established.tcp.state = 3;
    view.on_flow(EventKind::kNew, established);
    view.on_flow(EventKind::kUpdate, flow(9, 7));
    ASSERT_NE(cache.find(established.key()), nullptr);
    EXPECT_EQ(cache.find(established.key())->mark, 7u);
}

TEST_F(KernelViewTest, ExpectationsFollowTheSameRules) {
    sdk::Expectation e;
    e.master = flow(1).original;
    e.expected = flow(2).original;
    view_.on_dump_begin(1);
    view_.on_expectation(EventKind::kDump, e);
    view_.on_dump_end(1, true);
    EXPECT_EQ(cache_.expectation_count(), 1u);
    view_.on_dump_begin(2);
    view_.on_dump_end(2, true);
    EXPECT_EQ(cache_.expectation_count(), 0u);
}

}  // namespace
}  // namespace ctsync::core
