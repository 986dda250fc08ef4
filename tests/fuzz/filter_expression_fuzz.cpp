// SPDX-License-Identifier: GPL-2.0-or-later
// filter-bpf's expression language (an operator's config text) and its compiler: any text either fails
// with a column and a reason, or parses into a tree whose canonical text parses back to the same text; the
// compiled program passes the kernel's checks and, over event messages of a fixed set of flows, accepts
// exactly the flows the three-valued kernel view does not rule out, and never drops one the in-process
// evaluator accepts. The input's first byte selects what the rest is: 'C' conntrackd's Filter section
// (ctsync-filter from-conntrackd), whose result must then parse; anything else an expression (the seeds use
// 'E').
#include <cstdint>
#include <string>
#include <vector>

#include "bpf.hpp"
#include "conntrackd_filter.hpp"
#include "expr.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "tests/plugins/filter-bpf/ct_message.hpp"
#include "tests/support/flows.hpp"

using namespace filter_bpf;

namespace {

std::vector<ctsync::sdk::FlowState> flows() {
    std::vector<ctsync::sdk::FlowState> out;
    for (std::uint32_t i = 0; i < 6; ++i) {
        auto f = ctsync::test::nated_tcp_flow(i * 37);
        f.tcp.state = static_cast<std::uint8_t>(1 + i);
        if (i == 1) {
            f.zone.id = 7;
            f.zone.directions = ctsync::sdk::Zone::kDirBoth;
        }
        if (i == 2) {
            f.original.protocol = f.reply.protocol = ctsync::sdk::l4::kUdp;
            f.tcp = {};
        }
        if (i == 3) {
            f.snat = {};
            f.dnat.present = true;
            f.dnat.address = f.original.dst;
        }
        out.push_back(f);
    }
    out.push_back(ctsync::test::v6_flow(ctsync::sdk::l4::kTcp));
    return out;
}

void check_expression(std::string_view text) {
    static const auto kFlows = flows();
    ParseError error;
    auto tree = parse(text, error);
    if (!tree) {
        CTSYNC_FUZZ_CHECK(!format(error).empty());
        return;
    }
    const std::string canonical = to_string(**tree);
    ParseError again_error;
    auto again = parse(canonical, again_error);
    CTSYNC_FUZZ_CHECK(again.has_value());
    CTSYNC_FUZZ_CHECK(to_string(**again) == canonical);
    (void)placement(**tree);
    std::string why;
    auto program = compile(**tree, why);
    if (!program) {
        CTSYNC_FUZZ_CHECK(!why.empty());
        return;
    }
    std::string check_error;
    CTSYNC_FUZZ_CHECK(check(*program, check_error));
    for (const auto& f : kFlows) {
        const auto message = test::event_message(f);
        const bool kept = run(*program, message) != kDrop;
        const Tri view = evaluate_kernel_view(**tree, f);
        CTSYNC_FUZZ_CHECK(kept == (view != Tri::kFalse));
        if (evaluate(**tree, f)) {
            CTSYNC_FUZZ_CHECK(kept);
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const auto text = ctsync::fuzz::as_text(data + 1, size - 1);
    if (data[0] == 'C') {
        std::string expression, error;
        if (conntrackd_filter_expression(text, expression, error)) {
            ParseError parse_error;
            CTSYNC_FUZZ_CHECK(parse(expression, parse_error).has_value());
            check_expression(expression);
        } else {
            CTSYNC_FUZZ_CHECK(!error.empty());
        }
        return 0;
    }
    check_expression(text);
    return 0;
}
