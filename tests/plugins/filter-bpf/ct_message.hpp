// SPDX-License-Identifier: GPL-2.0-or-later
// A ctnetlink event message for a flow, laid out as the kernel lays out its events
// (net/netfilter/nf_conntrack_netlink.c, ctnetlink_conntrack_event): nlmsghdr, nfgenmsg, the original and
// reply tuples (CTA_TUPLE_IP, CTA_TUPLE_PROTO with ports or ICMP id/type/code, CTA_TUPLE_ZONE for a zone of
// one direction), CTA_ZONE for a zone of both, CTA_STATUS, CTA_TIMEOUT, CTA_MARK when set, CTA_ID, the
// protocol info and the helper. The kernel-side tests check the same program over the kernel's own bytes.
#pragma once

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>

#include <cstdint>
#include <cstring>
#include <ctsync/sdk/flow.hpp>
#include <vector>

#include "expr.hpp"

namespace filter_bpf::test {

class MessageBuilder {
  public:
    std::vector<std::uint8_t> bytes;

    void put(std::uint16_t type, const void* data, std::size_t len) {
        const std::size_t at = bytes.size();
        bytes.resize(at + ((4 + len + 3) & ~std::size_t{3}), 0);
        const std::uint16_t nla_len = static_cast<std::uint16_t>(4 + len);
        std::memcpy(bytes.data() + at, &nla_len, 2);
        std::memcpy(bytes.data() + at + 2, &type, 2);
        if (len > 0) {
            std::memcpy(bytes.data() + at + 4, data, len);
        }
    }
    void put_u8(std::uint16_t type, std::uint8_t v) { put(type, &v, 1); }
    void put_be16(std::uint16_t type, std::uint16_t v) {
        const std::uint8_t b[2] = {static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)};
        put(type, b, 2);
    }
    void put_be32(std::uint16_t type, std::uint32_t v) {
        const std::uint8_t b[4] = {static_cast<std::uint8_t>(v >> 24), static_cast<std::uint8_t>(v >> 16),
                                   static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)};
        put(type, b, 4);
    }
    std::size_t nest_start(std::uint16_t type) {
        const std::size_t at = bytes.size();
        put(static_cast<std::uint16_t>(type | NLA_F_NESTED), nullptr, 0);
        return at;
    }
    void nest_end(std::size_t at) {
        const std::uint16_t len = static_cast<std::uint16_t>(bytes.size() - at);
        std::memcpy(bytes.data() + at, &len, 2);
    }
};

inline void put_tuple(MessageBuilder& m, std::uint16_t type, const ctsync::sdk::Tuple& t,
                      const ctsync::sdk::Zone& zone, std::uint8_t direction_bit, bool ports) {
    namespace l4 = ctsync::sdk::l4;
    const auto outer = m.nest_start(type);
    const auto ip = m.nest_start(CTA_TUPLE_IP);
    if (t.family == ctsync::sdk::Family::kIpv4) {
        m.put(CTA_IP_V4_SRC, t.src.bytes.data(), 4);
        m.put(CTA_IP_V4_DST, t.dst.bytes.data(), 4);
    } else {
        m.put(CTA_IP_V6_SRC, t.src.bytes.data(), 16);
        m.put(CTA_IP_V6_DST, t.dst.bytes.data(), 16);
    }
    m.nest_end(ip);
    const auto proto = m.nest_start(CTA_TUPLE_PROTO);
    m.put_u8(CTA_PROTO_NUM, t.protocol);
    if (has_ports(t.protocol) && ports) {
        m.put_be16(CTA_PROTO_SRC_PORT, t.src_port);
        m.put_be16(CTA_PROTO_DST_PORT, t.dst_port);
    } else if (t.protocol == l4::kIcmp) {
        m.put_be16(CTA_PROTO_ICMP_ID, t.src_port);
        m.put_u8(CTA_PROTO_ICMP_TYPE, t.icmp_type);
        m.put_u8(CTA_PROTO_ICMP_CODE, t.icmp_code);
    } else if (t.protocol == l4::kIcmpv6) {
        m.put_be16(CTA_PROTO_ICMPV6_ID, t.src_port);
        m.put_u8(CTA_PROTO_ICMPV6_TYPE, t.icmp_type);
        m.put_u8(CTA_PROTO_ICMPV6_CODE, t.icmp_code);
    }
    m.nest_end(proto);
    if (zone.id != 0 && zone.directions != ctsync::sdk::Zone::kDirBoth && (zone.directions & direction_bit)) {
        m.put_be16(CTA_TUPLE_ZONE, zone.id);
    }
    m.nest_end(outer);
}

// `destroy`: a DELETE event (no protocol info, helper or mark unless set, as the kernel sends it).
// `ports` false: the tuples without ports, as the kernel's generic tracker sends a protocol it has no
// tracker for.
inline std::vector<std::uint8_t> event_message(const ctsync::sdk::FlowState& f, bool destroy = false,
                                               bool ports = true) {
    MessageBuilder m;
    m.bytes.resize(NLMSG_HDRLEN + sizeof(nfgenmsg), 0);
    put_tuple(m, CTA_TUPLE_ORIG, f.original, f.zone, ctsync::sdk::Zone::kDirOriginal, ports);
    put_tuple(m, CTA_TUPLE_REPLY, f.reply, f.zone, ctsync::sdk::Zone::kDirReply, ports);
    if (f.zone.id != 0 && f.zone.directions == ctsync::sdk::Zone::kDirBoth) {
        m.put_be16(CTA_ZONE, f.zone.id);
    }
    m.put_be32(CTA_ID, f.kernel_id);
    m.put_be32(CTA_STATUS, f.status);
    if (!destroy) {
        m.put_be32(CTA_TIMEOUT, f.timeout);
        if (f.original.protocol == ctsync::sdk::l4::kTcp) {
            const auto info = m.nest_start(CTA_PROTOINFO);
            const auto tcp = m.nest_start(CTA_PROTOINFO_TCP);
            m.put_u8(CTA_PROTOINFO_TCP_STATE, f.tcp.state);
            m.nest_end(tcp);
            m.nest_end(info);
        }
        if (f.helper[0] != '\0') {
            const auto help = m.nest_start(CTA_HELP);
            const auto name = ctsync::sdk::helper_name_view(f.helper);
            std::string z(name);
            m.put(CTA_HELP_NAME, z.c_str(), z.size() + 1);
            m.nest_end(help);
        }
    }
    if (f.mark != 0) {
        m.put_be32(CTA_MARK, f.mark);
    }
    auto* nlh = reinterpret_cast<nlmsghdr*>(m.bytes.data());
    nlh->nlmsg_len = static_cast<std::uint32_t>(m.bytes.size());
    nlh->nlmsg_type = static_cast<std::uint16_t>(NFNL_SUBSYS_CTNETLINK << 8 |
                                                 (destroy ? IPCTNL_MSG_CT_DELETE : IPCTNL_MSG_CT_NEW));
    auto* nfg = reinterpret_cast<nfgenmsg*>(m.bytes.data() + NLMSG_HDRLEN);
    nfg->nfgen_family = static_cast<std::uint8_t>(f.original.family);
    return std::move(m.bytes);
}

}  // namespace filter_bpf::test
