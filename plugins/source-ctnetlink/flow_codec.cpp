// SPDX-License-Identifier: GPL-2.0-or-later
#include "flow_codec.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace ctnetlink {
namespace {

using ctsync::sdk::Address;
using ctsync::sdk::Family;
using ctsync::sdk::FlowState;
using ctsync::sdk::Tuple;
namespace l4 = ctsync::sdk::l4;

bool is_icmp(std::uint8_t protocol) {
    return protocol == l4::kIcmp || protocol == l4::kIcmpv6;
}
bool has_ports(std::uint8_t protocol) {
    return protocol == l4::kTcp || protocol == l4::kUdp || protocol == l4::kUdplite ||
           protocol == l4::kSctp || protocol == l4::kDccp || protocol == l4::kGre;
}
// NAT port bindings libnetfilter_conntrack's message builder leaves out: it writes CTA_NAT_PROTO's ports for
// TCP and UDP only (build_mnl.c, nfct_build_protonat), so an SCTP, DCCP or UDP-Lite entry would be created
// with its address translated and its port not (a mapping the peer never saw). For these the whole NAT
// binding is appended by append_flow_attributes instead.
bool nat_by_hand(const FlowState& f) {
    return f.original.protocol == l4::kSctp || f.original.protocol == l4::kDccp ||
           f.original.protocol == l4::kUdplite;
}

// Attribute ids of one direction, so that both tuples are read and written by the same code.
struct TupleAttrs {
    nf_conntrack_attr l3;
    nf_conntrack_attr l4;
    nf_conntrack_attr v4_src, v4_dst, v6_src, v6_dst;
    nf_conntrack_attr port_src, port_dst;
};
constexpr TupleAttrs kOrig{ATTR_ORIG_L3PROTO,  ATTR_ORIG_L4PROTO,  ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV4_DST,
                           ATTR_ORIG_IPV6_SRC, ATTR_ORIG_IPV6_DST, ATTR_ORIG_PORT_SRC, ATTR_ORIG_PORT_DST};
constexpr TupleAttrs kRepl{ATTR_REPL_L3PROTO,  ATTR_REPL_L4PROTO,  ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV4_DST,
                           ATTR_REPL_IPV6_SRC, ATTR_REPL_IPV6_DST, ATTR_REPL_PORT_SRC, ATTR_REPL_PORT_DST};

void read_v4(const nf_conntrack& ct, nf_conntrack_attr attr, Address& out) {
    std::uint32_t v = nfct_get_attr_u32(&ct, attr);
    out = Address{};
    std::memcpy(out.bytes.data(), &v, 4);
}
void read_v6(const nf_conntrack& ct, nf_conntrack_attr attr, Address& out) {
    const void* p = nfct_get_attr(&ct, attr);
    out = Address{};
    if (p != nullptr) {
        std::memcpy(out.bytes.data(), p, 16);
    }
}

bool read_tuple(const nf_conntrack& ct, const TupleAttrs& a, Tuple& out) {
    if (!nfct_attr_is_set(&ct, a.l3)) {
        return false;
    }
    std::uint8_t family = nfct_get_attr_u8(&ct, a.l3);
    if (family == AF_INET) {
        out.family = Family::kIpv4;
        read_v4(ct, a.v4_src, out.src);
        read_v4(ct, a.v4_dst, out.dst);
    } else if (family == AF_INET6) {
        out.family = Family::kIpv6;
        read_v6(ct, a.v6_src, out.src);
        read_v6(ct, a.v6_dst, out.dst);
    } else {
        return false;
    }
    out.protocol = nfct_get_attr_u8(&ct, a.l4);
    if (has_ports(out.protocol)) {
        out.src_port = ntohs(nfct_get_attr_u16(&ct, a.port_src));
        out.dst_port = ntohs(nfct_get_attr_u16(&ct, a.port_dst));
    }
    return true;
}

void write_tuple(nf_conntrack& ct, const TupleAttrs& a, const Tuple& t) {
    nfct_set_attr_u8(&ct, a.l3, static_cast<std::uint8_t>(t.family));
    nfct_set_attr_u8(&ct, a.l4, t.protocol);
    if (t.family == Family::kIpv4) {
        std::uint32_t v;
        std::memcpy(&v, t.src.bytes.data(), 4);
        nfct_set_attr_u32(&ct, a.v4_src, v);
        std::memcpy(&v, t.dst.bytes.data(), 4);
        nfct_set_attr_u32(&ct, a.v4_dst, v);
    } else {
        nfct_set_attr(&ct, a.v6_src, t.src.bytes.data());
        nfct_set_attr(&ct, a.v6_dst, t.dst.bytes.data());
    }
    if (has_ports(t.protocol)) {
        nfct_set_attr_u16(&ct, a.port_src, htons(t.src_port));
        nfct_set_attr_u16(&ct, a.port_dst, htons(t.dst_port));
    }
}

// ICMP identity lives in the original direction's attributes; the reply's is derived by the kernel.
void read_icmp(const nf_conntrack& ct, Tuple& t) {
    if (is_icmp(t.protocol)) {
        t.icmp_type = nfct_get_attr_u8(&ct, ATTR_ICMP_TYPE);
        t.icmp_code = nfct_get_attr_u8(&ct, ATTR_ICMP_CODE);
        t.src_port = ntohs(nfct_get_attr_u16(&ct, ATTR_ICMP_ID));
    }
}
void write_icmp(nf_conntrack& ct, const Tuple& t) {
    if (is_icmp(t.protocol)) {
        nfct_set_attr_u8(&ct, ATTR_ICMP_TYPE, t.icmp_type);
        nfct_set_attr_u8(&ct, ATTR_ICMP_CODE, t.icmp_code);
        nfct_set_attr_u16(&ct, ATTR_ICMP_ID, htons(t.src_port));
    }
}

// An expectation's tuples are conntrack objects with only the original direction set.
void write_expect_tuple(nf_conntrack& ct, const Tuple& t) {
    write_tuple(ct, kOrig, t);
    write_icmp(ct, t);
}

void read_seq(const nf_conntrack& ct, nf_conntrack_attr pos, nf_conntrack_attr before,
              nf_conntrack_attr after, ctsync::sdk::SeqAdjust& out) {
    if (nfct_attr_is_set(&ct, pos)) {
        out.present = true;
        out.correction_pos = nfct_get_attr_u32(&ct, pos);
        out.offset_before = static_cast<std::int32_t>(nfct_get_attr_u32(&ct, before));
        out.offset_after = static_cast<std::int32_t>(nfct_get_attr_u32(&ct, after));
    }
}
void write_seq(nf_conntrack& ct, nf_conntrack_attr pos, nf_conntrack_attr before, nf_conntrack_attr after,
               const ctsync::sdk::SeqAdjust& s) {
    if (s.present) {
        nfct_set_attr_u32(&ct, pos, s.correction_pos);
        nfct_set_attr_u32(&ct, before, static_cast<std::uint32_t>(s.offset_before));
        nfct_set_attr_u32(&ct, after, static_cast<std::uint32_t>(s.offset_after));
    }
}

void write_nat(nf_conntrack& ct, const ctsync::sdk::NatBinding& nat, Family family, nf_conntrack_attr v4,
               nf_conntrack_attr v6, nf_conntrack_attr port) {
    if (!nat.present) {
        return;
    }
    if (family == Family::kIpv4) {
        std::uint32_t v;
        std::memcpy(&v, nat.address.bytes.data(), 4);
        nfct_set_attr_u32(&ct, v4, v);
    } else {
        nfct_set_attr(&ct, v6, nat.address.bytes.data());
    }
    if (nat.port != 0) {
        nfct_set_attr_u16(&ct, port, htons(nat.port));
    }
}

// Labels only when some bit is set: the kernel refuses labels (ENOSPC) on an entry without the labels
// extension, which it adds only while a ruleset uses ct labels.
void write_labels(nf_conntrack& ct, const ctsync::sdk::Labels& labels, bool with_mask) {
    bool any = false;
    for (auto b : labels) {
        any = any || b != 0;
    }
    if (!any) {
        return;
    }
    nfct_bitmask* bits = nfct_bitmask_new(127);
    if (bits == nullptr) {
        return;
    }
    for (unsigned i = 0; i < 128; ++i) {
        if (labels[i / 8] & (1u << (i % 8))) {
            nfct_bitmask_set_bit(bits, i);
        }
    }
    nfct_set_attr(&ct, ATTR_CONNLABELS, bits);  // the object takes ownership
    if (with_mask) {
        // On an update the mask says which bits to replace: all of them.
        nfct_bitmask* mask = nfct_bitmask_new(127);
        if (mask != nullptr) {
            for (unsigned i = 0; i < 128; ++i) {
                nfct_bitmask_set_bit(mask, i);
            }
            nfct_set_attr(&ct, ATTR_CONNLABELS_MASK, mask);
        }
    }
}

}  // namespace

void ConntrackDeleter::operator()(nf_conntrack* ct) const noexcept {
    nfct_destroy(ct);
}
void ExpectDeleter::operator()(nf_expect* exp) const noexcept {
    nfexp_destroy(exp);
}
ConntrackPtr new_conntrack() {
    return ConntrackPtr(nfct_new());
}
ExpectPtr new_expect() {
    return ExpectPtr(nfexp_new());
}

Tuple invert(const Tuple& t) noexcept {
    Tuple r = t;
    r.src = t.dst;
    r.dst = t.src;
    if (!is_icmp(t.protocol)) {
        r.src_port = t.dst_port;
        r.dst_port = t.src_port;
    }
    return r;
}

bool decode_flow(const nf_conntrack& ct, FlowState& out) noexcept {
    out = FlowState{};
    if (!read_tuple(ct, kOrig, out.original)) {
        return false;
    }
    read_icmp(ct, out.original);
    if (!read_tuple(ct, kRepl, out.reply)) {
        out.reply = invert(out.original);
    }
    if (is_icmp(out.reply.protocol)) {
        out.reply.src_port = out.original.src_port;  // the identifier is the same both ways
    }
    if (nfct_attr_is_set(&ct, ATTR_ZONE)) {
        out.zone.id = nfct_get_attr_u16(&ct, ATTR_ZONE);
    }
    bool orig_zone = nfct_attr_is_set(&ct, ATTR_ORIG_ZONE);
    bool repl_zone = nfct_attr_is_set(&ct, ATTR_REPL_ZONE);
    if (orig_zone != repl_zone) {
        out.zone.directions = orig_zone ? ctsync::sdk::Zone::kDirOriginal : ctsync::sdk::Zone::kDirReply;
        out.zone.id = nfct_get_attr_u16(&ct, orig_zone ? ATTR_ORIG_ZONE : ATTR_REPL_ZONE);
    }
    out.status = nfct_get_attr_u32(&ct, ATTR_STATUS);
    out.mark = nfct_get_attr_u32(&ct, ATTR_MARK);
    out.timeout = nfct_get_attr_u32(&ct, ATTR_TIMEOUT);
    out.kernel_id = nfct_get_attr_u32(&ct, ATTR_ID);
    if (const auto* labels = static_cast<const nfct_bitmask*>(nfct_get_attr(&ct, ATTR_CONNLABELS))) {
        unsigned max = nfct_bitmask_maxbit(labels);
        for (unsigned i = 0; i <= max && i < 128; ++i) {
            if (nfct_bitmask_test_bit(labels, i)) {
                out.labels[i / 8] |= static_cast<std::uint8_t>(1u << (i % 8));
            }
        }
    }
    if (const auto* helper = static_cast<const char*>(nfct_get_attr(&ct, ATTR_HELPER_NAME));
        helper != nullptr) {
        ctsync::sdk::set_helper_name(out.helper, helper);
    }
    // NAT, as conntrackd reads it: the binding is where the reply tuple points instead of the original.
    if (out.status & IPS_SRC_NAT) {
        out.snat.present = true;
        out.snat.address = out.reply.dst;
        out.snat.port = out.reply.dst_port != out.original.src_port ? out.reply.dst_port : 0;
    }
    if (out.status & IPS_DST_NAT) {
        out.dnat.present = true;
        out.dnat.address = out.reply.src;
        out.dnat.port = out.reply.src_port != out.original.dst_port ? out.reply.src_port : 0;
    }
    read_seq(ct, ATTR_ORIG_NAT_SEQ_CORRECTION_POS, ATTR_ORIG_NAT_SEQ_OFFSET_BEFORE,
             ATTR_ORIG_NAT_SEQ_OFFSET_AFTER, out.seq_original);
    read_seq(ct, ATTR_REPL_NAT_SEQ_CORRECTION_POS, ATTR_REPL_NAT_SEQ_OFFSET_BEFORE,
             ATTR_REPL_NAT_SEQ_OFFSET_AFTER, out.seq_reply);
    switch (out.original.protocol) {
        case l4::kTcp:
            out.tcp.state = nfct_get_attr_u8(&ct, ATTR_TCP_STATE);
            out.tcp.wscale_original = nfct_get_attr_u8(&ct, ATTR_TCP_WSCALE_ORIG);
            out.tcp.wscale_reply = nfct_get_attr_u8(&ct, ATTR_TCP_WSCALE_REPL);
            out.tcp.flags_original = nfct_get_attr_u8(&ct, ATTR_TCP_FLAGS_ORIG);
            out.tcp.flags_reply = nfct_get_attr_u8(&ct, ATTR_TCP_FLAGS_REPL);
            break;
        case l4::kSctp:
            out.sctp.state = nfct_get_attr_u8(&ct, ATTR_SCTP_STATE);
            out.sctp.vtag_original = nfct_get_attr_u32(&ct, ATTR_SCTP_VTAG_ORIG);
            out.sctp.vtag_reply = nfct_get_attr_u32(&ct, ATTR_SCTP_VTAG_REPL);
            break;
        case l4::kDccp:
            out.dccp.state = nfct_get_attr_u8(&ct, ATTR_DCCP_STATE);
            out.dccp.role = nfct_get_attr_u8(&ct, ATTR_DCCP_ROLE);
            out.dccp.handshake_seq = nfct_get_attr_u64(&ct, ATTR_DCCP_HANDSHAKE_SEQ);
            break;
        default:
            break;
    }
    return true;
}

ConntrackPtr encode_flow(const FlowState& f, Purpose purpose) {
    ConntrackPtr ct = new_conntrack();
    if (!ct) {
        return ct;
    }
    nf_conntrack& c = *ct;
    write_tuple(c, kOrig, f.original);
    write_icmp(c, f.original);
    if (f.zone.directions == ctsync::sdk::Zone::kDirBoth) {
        nfct_set_attr_u16(&c, ATTR_ZONE, f.zone.id);
    } else {
        nfct_set_attr_u16(
            &c, (f.zone.directions & ctsync::sdk::Zone::kDirOriginal) ? ATTR_ORIG_ZONE : ATTR_REPL_ZONE,
            f.zone.id);
    }
    if (purpose == Purpose::kDelete) {
        return ct;
    }
    if (purpose == Purpose::kCreate) {
        // As conntrackd does: the reply tuple is the inverse of the original, and the kernel's NAT setup
        // turns it into the translated one from the bindings, so that it also reserves the NAT mapping.
        write_tuple(c, kRepl, invert(f.original));
        if (!nat_by_hand(f)) {
            write_nat(c, f.snat, f.original.family, ATTR_SNAT_IPV4, ATTR_SNAT_IPV6, ATTR_SNAT_PORT);
            write_nat(c, f.dnat, f.original.family, ATTR_DNAT_IPV4, ATTR_DNAT_IPV6, ATTR_DNAT_PORT);
        }
        if (f.helper[0] != '\0') {
            nfct_set_attr(&c, ATTR_HELPER_NAME, f.helper.data());
        }
    }
    // The kernel refuses to set "expected" on a new entry and ignores the bits it owns.
    nfct_set_attr_u32(&c, ATTR_STATUS, f.status & ~static_cast<std::uint32_t>(IPS_EXPECTED));
    if (f.timeout != 0) {
        nfct_set_attr_u32(&c, ATTR_TIMEOUT, f.timeout);
    }
    nfct_set_attr_u32(&c, ATTR_MARK, f.mark);
    write_labels(c, f.labels, purpose == Purpose::kUpdate);
    write_seq(c, ATTR_ORIG_NAT_SEQ_CORRECTION_POS, ATTR_ORIG_NAT_SEQ_OFFSET_BEFORE,
              ATTR_ORIG_NAT_SEQ_OFFSET_AFTER, f.seq_original);
    write_seq(c, ATTR_REPL_NAT_SEQ_CORRECTION_POS, ATTR_REPL_NAT_SEQ_OFFSET_BEFORE,
              ATTR_REPL_NAT_SEQ_OFFSET_AFTER, f.seq_reply);
    switch (f.original.protocol) {
        case l4::kTcp:
            nfct_set_attr_u8(&c, ATTR_TCP_STATE, f.tcp.state);
            nfct_set_attr_u8(&c, ATTR_TCP_WSCALE_ORIG, f.tcp.wscale_original);
            nfct_set_attr_u8(&c, ATTR_TCP_WSCALE_REPL, f.tcp.wscale_reply);
            // Flags are applied through a mask: replace exactly the bits the flow has.
            nfct_set_attr_u8(&c, ATTR_TCP_FLAGS_ORIG, f.tcp.flags_original);
            nfct_set_attr_u8(&c, ATTR_TCP_MASK_ORIG, f.tcp.flags_original);
            nfct_set_attr_u8(&c, ATTR_TCP_FLAGS_REPL, f.tcp.flags_reply);
            nfct_set_attr_u8(&c, ATTR_TCP_MASK_REPL, f.tcp.flags_reply);
            break;
        case l4::kSctp:
            nfct_set_attr_u8(&c, ATTR_SCTP_STATE, f.sctp.state);
            nfct_set_attr_u32(&c, ATTR_SCTP_VTAG_ORIG, f.sctp.vtag_original);
            nfct_set_attr_u32(&c, ATTR_SCTP_VTAG_REPL, f.sctp.vtag_reply);
            break;
        case l4::kDccp:
            nfct_set_attr_u8(&c, ATTR_DCCP_STATE, f.dccp.state);
            nfct_set_attr_u8(&c, ATTR_DCCP_ROLE, f.dccp.role);
            nfct_set_attr_u64(&c, ATTR_DCCP_HANDSHAKE_SEQ, f.dccp.handshake_seq);
            break;
        default:
            break;
    }
    return ct;
}

bool decode_expectation(const nf_expect& exp, ctsync::sdk::Expectation& out) noexcept {
    out = ctsync::sdk::Expectation{};
    auto tuple_of = [&](nf_expect_attr attr, Tuple& t) {
        const auto* ct = static_cast<const nf_conntrack*>(nfexp_get_attr(&exp, attr));
        if (ct == nullptr || !read_tuple(*ct, kOrig, t)) {
            return false;
        }
        read_icmp(*ct, t);
        return true;
    };
    if (!tuple_of(ATTR_EXP_MASTER, out.master) || !tuple_of(ATTR_EXP_EXPECTED, out.expected)) {
        return false;
    }
    // The mask's family/protocol fields are not meaningful in the kernel's report; take the expected ones.
    if (tuple_of(ATTR_EXP_MASK, out.mask)) {
        out.mask.family = out.expected.family;
        out.mask.protocol = out.expected.protocol;
    }
    if (nfexp_attr_is_set(&exp, ATTR_EXP_ZONE)) {
        out.zone.id = nfexp_get_attr_u16(&exp, ATTR_EXP_ZONE);
    }
    out.timeout = nfexp_get_attr_u32(&exp, ATTR_EXP_TIMEOUT);
    out.flags = nfexp_get_attr_u32(&exp, ATTR_EXP_FLAGS);
    out.expect_class = nfexp_get_attr_u32(&exp, ATTR_EXP_CLASS);
    if (const char* helper = static_cast<const char*>(nfexp_get_attr(&exp, ATTR_EXP_HELPER_NAME))) {
        ctsync::sdk::set_helper_name(out.helper, helper);
    }
    if (nfexp_attr_is_set(&exp, ATTR_EXP_NAT_TUPLE)) {
        Tuple nat;
        // The kernel keeps the saved (pre-NAT) endpoint in the NAT tuple's source.
        if (tuple_of(ATTR_EXP_NAT_TUPLE, nat)) {
            out.nat.present = true;
            out.nat.address = nat.src;
            out.nat.port = nat.src_port;
            out.nat_direction = static_cast<std::uint8_t>(nfexp_get_attr_u32(&exp, ATTR_EXP_NAT_DIR));
        }
    }
    if (const auto* fn = static_cast<const char*>(nfexp_get_attr(&exp, ATTR_EXP_FN)); fn != nullptr) {
        std::size_t n = std::min(std::strlen(fn), out.function.size() - 1);
        std::memcpy(out.function.data(), fn, n);
    }
    return true;
}

ExpectPtr encode_expectation(const ctsync::sdk::Expectation& e) {
    ExpectPtr exp = new_expect();
    ConntrackPtr master = new_conntrack();
    ConntrackPtr expected = new_conntrack();
    ConntrackPtr mask = new_conntrack();
    if (!exp || !master || !expected || !mask) {
        return nullptr;
    }
    write_expect_tuple(*master, e.master);
    write_expect_tuple(*expected, e.expected);
    write_expect_tuple(*mask, e.mask);
    if (e.zone.id != 0) {
        nfct_set_attr_u16(master.get(), ATTR_ZONE, e.zone.id);
        nfexp_set_attr_u16(exp.get(), ATTR_EXP_ZONE, e.zone.id);
    }
    // nfexp_set_attr copies the conntrack objects.
    nfexp_set_attr(exp.get(), ATTR_EXP_MASTER, master.get());
    nfexp_set_attr(exp.get(), ATTR_EXP_EXPECTED, expected.get());
    nfexp_set_attr(exp.get(), ATTR_EXP_MASK, mask.get());
    nfexp_set_attr_u32(exp.get(), ATTR_EXP_TIMEOUT, e.timeout);
    nfexp_set_attr_u32(exp.get(), ATTR_EXP_FLAGS, e.flags);
    nfexp_set_attr_u32(exp.get(), ATTR_EXP_CLASS, e.expect_class);
    if (e.helper[0] != '\0') {
        nfexp_set_attr(exp.get(), ATTR_EXP_HELPER_NAME, e.helper.data());
    }
    if (e.nat.present) {
        ConntrackPtr nat = new_conntrack();
        Tuple t = e.expected;
        t.src = e.nat.address;
        t.src_port = e.nat.port;
        write_expect_tuple(*nat, t);
        nfexp_set_attr(exp.get(), ATTR_EXP_NAT_TUPLE, nat.get());
        nfexp_set_attr_u32(exp.get(), ATTR_EXP_NAT_DIR, e.nat_direction);
    }
    if (e.function[0] != '\0') {
        nfexp_set_attr(exp.get(), ATTR_EXP_FN, e.function.data());
    }
    return exp;
}

namespace {
void put_nat(nlmsghdr* nlh, std::uint16_t type, const ctsync::sdk::NatBinding& nat, Family family) {
    if (!nat.present) {
        return;
    }
    nlattr* nest = mnl_attr_nest_start(nlh, type);
    if (family == Family::kIpv6) {
        mnl_attr_put(nlh, CTA_NAT_V6_MINIP, 16, nat.address.bytes.data());
        mnl_attr_put(nlh, CTA_NAT_V6_MAXIP, 16, nat.address.bytes.data());
    } else {
        mnl_attr_put(nlh, CTA_NAT_V4_MINIP, 4, nat.address.bytes.data());
        mnl_attr_put(nlh, CTA_NAT_V4_MAXIP, 4, nat.address.bytes.data());
    }
    if (nat.port != 0) {
        nlattr* proto = mnl_attr_nest_start(nlh, CTA_NAT_PROTO);
        mnl_attr_put_u16(nlh, CTA_PROTONAT_PORT_MIN, htons(nat.port));
        mnl_attr_put_u16(nlh, CTA_PROTONAT_PORT_MAX, htons(nat.port));
        mnl_attr_nest_end(nlh, proto);
    }
    mnl_attr_nest_end(nlh, nest);
}
}  // namespace

void append_flow_attributes(nlmsghdr* nlh, const FlowState& flow, Purpose purpose) {
    if (purpose != Purpose::kCreate || !nat_by_hand(flow)) {
        return;
    }
    put_nat(nlh, CTA_NAT_SRC, flow.snat, flow.original.family);
    put_nat(nlh, CTA_NAT_DST, flow.dnat, flow.original.family);
}

void append_expectation_attributes(nlmsghdr* nlh, const ctsync::sdk::Expectation& e) {
    mnl_attr_put_u32(nlh, CTA_EXPECT_CLASS, htonl(e.expect_class));
    if (e.nat.present) {
        // The kernel parses a complete tuple and keeps its source: the endpoint the NAT helper saved.
        nlattr* nat = mnl_attr_nest_start(nlh, CTA_EXPECT_NAT);
        mnl_attr_put_u32(nlh, CTA_EXPECT_NAT_DIR, htonl(e.nat_direction));
        nlattr* tuple = mnl_attr_nest_start(nlh, CTA_EXPECT_NAT_TUPLE);
        nlattr* ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
        const ctsync::sdk::Address zero{};
        if (e.expected.family == Family::kIpv6) {
            mnl_attr_put(nlh, CTA_IP_V6_SRC, 16, e.nat.address.bytes.data());
            mnl_attr_put(nlh, CTA_IP_V6_DST, 16, zero.bytes.data());
        } else {
            mnl_attr_put(nlh, CTA_IP_V4_SRC, 4, e.nat.address.bytes.data());
            mnl_attr_put(nlh, CTA_IP_V4_DST, 4, zero.bytes.data());
        }
        mnl_attr_nest_end(nlh, ip);
        nlattr* proto = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
        mnl_attr_put_u8(nlh, CTA_PROTO_NUM, e.expected.protocol);
        mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(e.nat.port));
        mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, 0);
        mnl_attr_nest_end(nlh, proto);
        mnl_attr_nest_end(nlh, tuple);
        mnl_attr_nest_end(nlh, nat);
    }
    if (e.function[0] != '\0') {
        mnl_attr_put_strz(nlh, CTA_EXPECT_FN, e.function.data());
    }
}

std::string check_message_lengths(const void* buffer, std::size_t size) {
    const auto* bytes = static_cast<const unsigned char*>(buffer);
    std::size_t at = 0;
    for (std::size_t index = 1; at < size; ++index) {
        const std::size_t left = size - at;
        if (left < sizeof(nlmsghdr)) {
            break;  // libmnl stops at a tail shorter than a header, and so does every walk here
        }
        std::uint32_t length = 0;
        std::memcpy(&length, bytes + at, sizeof(length));  // nlmsg_len leads the header
        if (length < sizeof(nlmsghdr) || length > left) {
            return fmt::format("message {} at offset {} claims {} bytes, {} left", index, at, length, left);
        }
        at += std::min<std::size_t>(MNL_ALIGN(length), left);
    }
    return {};
}

}  // namespace ctnetlink
