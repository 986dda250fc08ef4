// SPDX-License-Identifier: GPL-2.0-or-later
// Flows for tests that need many distinct, valid entries without a kernel.
#pragma once

#include <cstdint>
#include <ctsync/sdk/flow.hpp>

namespace ctsync::test {

// The i-th of up to 200 × 64512 distinct SNATed TCP ESTABLISHED flows (192.0.2.x → 203.0.113.10:80, the
// reply to 198.51.100.1), with a mark of i % 7.
inline sdk::FlowState nated_tcp_flow(std::uint32_t i) {
    sdk::FlowState f;
    f.original.family = f.reply.family = sdk::Family::kIpv4;
    f.original.protocol = f.reply.protocol = sdk::l4::kTcp;
    f.original.src.bytes = {192, 0, 2, static_cast<std::uint8_t>(1 + i % 200)};
    f.original.dst.bytes = {203, 0, 113, 10};
    f.original.src_port = static_cast<std::uint16_t>(1024 + i / 200);
    f.original.dst_port = 80;
    f.reply.src = f.original.dst;
    f.reply.dst.bytes = {198, 51, 100, 1};
    f.reply.src_port = 80;
    f.reply.dst_port = f.original.src_port;
    f.snat.present = true;
    f.snat.address = f.reply.dst;
    f.status = 0x1be;
    f.timeout = 300;
    f.tcp.state = 3;
    f.mark = i % 7;
    return f;
}

// fd00::1 -> fd00::2 of `protocol`, ports 1024 -> 80, without NAT; TCP ESTABLISHED when `protocol` is TCP.
inline sdk::FlowState v6_flow(std::uint8_t protocol) {
    sdk::FlowState f = nated_tcp_flow(0);
    f.original.family = f.reply.family = sdk::Family::kIpv6;
    f.original.protocol = f.reply.protocol = protocol;
    f.original.src.bytes = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    f.original.dst.bytes = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    f.reply.src = f.original.dst;
    f.reply.dst = f.original.src;
    f.snat = {};
    if (protocol != sdk::l4::kTcp) {
        f.tcp = {};
    }
    return f;
}

}  // namespace ctsync::test
