// SPDX-License-Identifier: GPL-2.0-or-later
// The netlink flow codec of source-ctnetlink on whatever the socket could deliver: the input is a buffer of
// netlink messages (checked as the source checks a receive buffer, then walked as libmnl walks it); each
// conntrack or expectation message is parsed by libnetfilter_conntrack and decoded into the flow model
// exactly as the source decodes events and dumps. A decoded flow is then encoded for each kind of write
// (create, update, delete), built into a message as the source builds its batches, and that message decodes
// back to the same original tuple.
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "flow_codec.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace ctnetlink;

namespace {

void rebuild(const ctsync::sdk::FlowState& flow, Purpose purpose) {
    ConntrackPtr ct = encode_flow(flow, purpose);
    CTSYNC_FUZZ_CHECK(ct != nullptr);
    alignas(4) static char buffer[8192];  // MNL_SOCKET_BUFFER_SIZE on 4 KiB and 8 KiB pages
    std::memset(buffer, 0, sizeof(buffer));
    nlmsghdr* nlh = mnl_nlmsg_put_header(buffer);
    nlh->nlmsg_type =
        static_cast<std::uint16_t>((NFNL_SUBSYS_CTNETLINK << 8) |
                                   (purpose == Purpose::kDelete ? IPCTNL_MSG_CT_DELETE : IPCTNL_MSG_CT_NEW));
    nlh->nlmsg_flags = NLM_F_REQUEST;
    auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    nfg->nfgen_family = static_cast<std::uint8_t>(flow.original.family);
    nfg->version = NFNETLINK_V0;
    nfct_nlmsg_build(nlh, ct.get());
    append_flow_attributes(nlh, flow, purpose);
    ConntrackPtr parsed = new_conntrack();
    ctsync::sdk::FlowState again;
    CTSYNC_FUZZ_CHECK(nfct_nlmsg_parse(nlh, parsed.get()) >= 0);
    CTSYNC_FUZZ_CHECK(decode_flow(*parsed, again));
    CTSYNC_FUZZ_CHECK(again.original == flow.original);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // libmnl reads the buffer through aligned headers, as it reads a socket's receive buffer.
    std::vector<std::uint32_t> storage((size + 3) / 4 + 1, 0);
    std::memcpy(storage.data(), data, size);
    // The source checks every buffer's lengths before libmnl walks it (libmnl takes a length of 2^31 or
    // more for a negative int and walks off the buffer: found by this target); a refused buffer says why.
    if (const std::string bad = check_message_lengths(storage.data(), size); !bad.empty()) {
        CTSYNC_FUZZ_CHECK(bad.find("claims") != std::string::npos);
        return 0;
    }
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(storage.data());
    int remaining = static_cast<int>(size);
    while (mnl_nlmsg_ok(nlh, remaining)) {
        if (nlh->nlmsg_len >= NLMSG_HDRLEN + sizeof(nfgenmsg)) {
            const auto subsystem = static_cast<std::uint8_t>(nlh->nlmsg_type >> 8);
            if (subsystem == NFNL_SUBSYS_CTNETLINK) {
                ConntrackPtr ct = new_conntrack();
                ctsync::sdk::FlowState flow;
                if (nfct_nlmsg_parse(nlh, ct.get()) >= 0 && decode_flow(*ct, flow)) {
                    rebuild(flow, Purpose::kCreate);
                    rebuild(flow, Purpose::kUpdate);
                    rebuild(flow, Purpose::kDelete);
                }
            } else if (subsystem == NFNL_SUBSYS_CTNETLINK_EXP) {
                ExpectPtr exp = new_expect();
                ctsync::sdk::Expectation expectation;
                if (nfexp_nlmsg_parse(nlh, exp.get()) >= 0 && decode_expectation(*exp, expectation)) {
                    ExpectPtr encoded = encode_expectation(expectation);
                    CTSYNC_FUZZ_CHECK(encoded != nullptr);
                }
            }
        }
        nlh = mnl_nlmsg_next(nlh, &remaining);
    }
    return 0;
}
