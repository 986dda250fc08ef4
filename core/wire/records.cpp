// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/wire/records.hpp"

#include <fmt/format.h>

#include <stdexcept>
#include <type_traits>

namespace ctsync::core::wire {
namespace {

using sdk::Address;
using sdk::Family;
using sdk::FlowState;
using sdk::Tuple;

// Presence bits of a full flow record.
namespace has {
constexpr std::uint16_t kIcmp = 0x0001;
constexpr std::uint16_t kMark = 0x0002;
constexpr std::uint16_t kLabels = 0x0004;
constexpr std::uint16_t kHelper = 0x0008;
constexpr std::uint16_t kSnat = 0x0010;
constexpr std::uint16_t kDnat = 0x0020;
constexpr std::uint16_t kSeqOriginal = 0x0040;
constexpr std::uint16_t kSeqReply = 0x0080;
constexpr std::uint16_t kTcp = 0x0100;
constexpr std::uint16_t kSctp = 0x0200;
constexpr std::uint16_t kDccp = 0x0400;
constexpr std::uint16_t kAll = 0x07ff;
}  // namespace has

// Blocks of an update's proto-state and NAT sections.
namespace block {
constexpr std::uint8_t kTcp = 1, kSctp = 2, kDccp = 4, kAllState = 7;
constexpr std::uint8_t kSnat = 1, kDnat = 2, kSeqOriginal = 4, kSeqReply = 8, kAllNat = 15;
}  // namespace block

std::size_t address_size(Family f) {
    return f == Family::kIpv4 ? 4 : 16;
}
bool valid_family(std::uint8_t f) {
    return f == static_cast<std::uint8_t>(Family::kIpv4) || f == static_cast<std::uint8_t>(Family::kIpv6);
}

void put_address(Writer& w, const Address& a, Family f) {
    w.bytes(a.bytes.data(), address_size(f));
}
void get_address(Reader& r, Address& a, Family f) {
    a = Address{};
    r.bytes(a.bytes.data(), address_size(f));
}

void put_name(Writer& w, std::string_view name) {
    w.u8(static_cast<std::uint8_t>(name.size()));
    w.bytes(name.data(), name.size());
}
// A length-prefixed name of at most `max` bytes with no NUL, into a NUL-padded array.
template <std::size_t N>
bool get_name(Reader& r, std::array<char, N>& out, std::size_t max, bool allow_empty) {
    out.fill('\0');
    std::size_t n = r.u8();
    if (n > max || (n == 0 && !allow_empty)) {
        r.fail();
        return false;
    }
    r.bytes(out.data(), n);
    for (std::size_t i = 0; i < n; ++i) {
        if (out[i] == '\0') {
            r.fail();
            return false;
        }
    }
    return r.ok();
}

void put_tuple_body(Writer& w, const Tuple& t, Family f) {
    put_address(w, t.src, f);
    put_address(w, t.dst, f);
    w.u16(t.src_port);
    w.u16(t.dst_port);
}
void get_tuple_body(Reader& r, Tuple& t, Family f, std::uint8_t protocol) {
    t = Tuple{};
    t.family = f;
    t.protocol = protocol;
    get_address(r, t.src, f);
    get_address(r, t.dst, f);
    t.src_port = r.u16();
    t.dst_port = r.u16();
}

// A tuple with its own family and protocol (expectations: the expected connection's protocol may differ).
void put_full_tuple(Writer& w, const Tuple& t) {
    w.u8(static_cast<std::uint8_t>(t.family));
    w.u8(t.protocol);
    put_tuple_body(w, t, t.family);
    w.u8(t.icmp_type);
    w.u8(t.icmp_code);
}
void get_full_tuple(Reader& r, Tuple& t) {
    std::uint8_t family = r.u8();
    std::uint8_t protocol = r.u8();
    if (!valid_family(family)) {
        r.fail();
        return;
    }
    get_tuple_body(r, t, static_cast<Family>(family), protocol);
    t.icmp_type = r.u8();
    t.icmp_code = r.u8();
}

void put_nat(Writer& w, const sdk::NatBinding& n, Family f) {
    put_address(w, n.address, f);
    w.u16(n.port);
}
void get_nat(Reader& r, sdk::NatBinding& n, Family f) {
    n.present = true;
    get_address(r, n.address, f);
    n.port = r.u16();
}
void put_seq(Writer& w, const sdk::SeqAdjust& s) {
    w.u32(s.correction_pos);
    w.u32(static_cast<std::uint32_t>(s.offset_before));
    w.u32(static_cast<std::uint32_t>(s.offset_after));
}
void get_seq(Reader& r, sdk::SeqAdjust& s) {
    s.present = true;
    s.correction_pos = r.u32();
    s.offset_before = static_cast<std::int32_t>(r.u32());
    s.offset_after = static_cast<std::int32_t>(r.u32());
}
void put_tcp(Writer& w, const sdk::TcpState& t) {
    w.u8(t.state);
    w.u8(t.wscale_original);
    w.u8(t.wscale_reply);
    w.u8(t.flags_original);
    w.u8(t.flags_reply);
}
void get_tcp(Reader& r, sdk::TcpState& t) {
    t.state = r.u8();
    t.wscale_original = r.u8();
    t.wscale_reply = r.u8();
    t.flags_original = r.u8();
    t.flags_reply = r.u8();
}
void put_sctp(Writer& w, const sdk::SctpState& s) {
    w.u8(s.state);
    w.u32(s.vtag_original);
    w.u32(s.vtag_reply);
}
void get_sctp(Reader& r, sdk::SctpState& s) {
    s.state = r.u8();
    s.vtag_original = r.u32();
    s.vtag_reply = r.u32();
}
void put_dccp(Writer& w, const sdk::DccpState& d) {
    w.u8(d.state);
    w.u8(d.role);
    w.u64(d.handshake_seq);
}
void get_dccp(Reader& r, sdk::DccpState& d) {
    d.state = r.u8();
    d.role = r.u8();
    d.handshake_seq = r.u64();
}

bool any_label(const sdk::Labels& l) {
    for (auto b : l) {
        if (b != 0) {
            return true;
        }
    }
    return false;
}

void put_flow(Writer& w, const FlowState& f) {
    const Family family = f.original.family;
    std::uint16_t present = 0;
    if (f.original.icmp_type || f.original.icmp_code || f.reply.icmp_type || f.reply.icmp_code) {
        present |= has::kIcmp;
    }
    if (f.mark != 0)
        present |= has::kMark;
    if (any_label(f.labels))
        present |= has::kLabels;
    if (f.helper[0] != '\0')
        present |= has::kHelper;
    if (f.snat.present)
        present |= has::kSnat;
    if (f.dnat.present)
        present |= has::kDnat;
    if (f.seq_original.present)
        present |= has::kSeqOriginal;
    if (f.seq_reply.present)
        present |= has::kSeqReply;
    if (f.tcp != sdk::TcpState{})
        present |= has::kTcp;
    if (f.sctp != sdk::SctpState{})
        present |= has::kSctp;
    if (f.dccp != sdk::DccpState{})
        present |= has::kDccp;
    w.u8(static_cast<std::uint8_t>(family));
    w.u8(f.original.protocol);
    w.u16(f.zone.id);
    w.u8(f.zone.directions);
    w.u16(present);
    put_tuple_body(w, f.original, family);
    put_tuple_body(w, f.reply, family);
    w.u32(f.status);
    w.u32(f.timeout);
    if (present & has::kIcmp) {
        w.u8(f.original.icmp_type);
        w.u8(f.original.icmp_code);
        w.u8(f.reply.icmp_type);
        w.u8(f.reply.icmp_code);
    }
    if (present & has::kMark)
        w.u32(f.mark);
    if (present & has::kLabels)
        w.bytes(f.labels.data(), f.labels.size());
    if (present & has::kHelper)
        put_name(w, sdk::helper_name_view(f.helper));
    if (present & has::kSnat)
        put_nat(w, f.snat, family);
    if (present & has::kDnat)
        put_nat(w, f.dnat, family);
    if (present & has::kSeqOriginal)
        put_seq(w, f.seq_original);
    if (present & has::kSeqReply)
        put_seq(w, f.seq_reply);
    if (present & has::kTcp)
        put_tcp(w, f.tcp);
    if (present & has::kSctp)
        put_sctp(w, f.sctp);
    if (present & has::kDccp)
        put_dccp(w, f.dccp);
}

bool get_flow(Reader& r, FlowState& f) {
    f = FlowState{};
    std::uint8_t family = r.u8();
    std::uint8_t protocol = r.u8();
    f.zone.id = r.u16();
    f.zone.directions = r.u8();
    std::uint16_t present = r.u16();
    if (!r.ok() || !valid_family(family) || f.zone.directions > sdk::Zone::kDirBoth ||
        (present & ~has::kAll) != 0) {
        return false;
    }
    const auto fam = static_cast<Family>(family);
    get_tuple_body(r, f.original, fam, protocol);
    get_tuple_body(r, f.reply, fam, protocol);
    f.status = r.u32();
    f.timeout = r.u32();
    if (present & has::kIcmp) {
        f.original.icmp_type = r.u8();
        f.original.icmp_code = r.u8();
        f.reply.icmp_type = r.u8();
        f.reply.icmp_code = r.u8();
    }
    if (present & has::kMark)
        f.mark = r.u32();
    if (present & has::kLabels)
        r.bytes(f.labels.data(), f.labels.size());
    if ((present & has::kHelper) && !get_name(r, f.helper, sdk::kHelperNameSize - 1, false))
        return false;
    if (present & has::kSnat)
        get_nat(r, f.snat, fam);
    if (present & has::kDnat)
        get_nat(r, f.dnat, fam);
    if (present & has::kSeqOriginal)
        get_seq(r, f.seq_original);
    if (present & has::kSeqReply)
        get_seq(r, f.seq_reply);
    if (present & has::kTcp)
        get_tcp(r, f.tcp);
    if (present & has::kSctp)
        get_sctp(r, f.sctp);
    if (present & has::kDccp)
        get_dccp(r, f.dccp);
    // A present block must carry something: an all-zero one would not round-trip.
    const bool icmp = f.original.icmp_type || f.original.icmp_code || f.reply.icmp_type || f.reply.icmp_code;
    if (((present & has::kIcmp) && !icmp) || ((present & has::kTcp) && f.tcp == sdk::TcpState{}) ||
        ((present & has::kSctp) && f.sctp == sdk::SctpState{}) ||
        ((present & has::kDccp) && f.dccp == sdk::DccpState{}))
        return false;
    if ((present & has::kMark) && f.mark == 0)
        return false;
    if ((present & has::kLabels) && !any_label(f.labels))
        return false;
    return r.ok();
}

void put_update(Writer& w, const FlowUpdate& u) {
    const FlowState& v = u.values;
    w.u32(u.flow_id);
    w.u8(u.fields);
    if (u.fields & field::kProtoState) {
        std::uint8_t which = 0;
        if (v.tcp != sdk::TcpState{})
            which |= block::kTcp;
        if (v.sctp != sdk::SctpState{})
            which |= block::kSctp;
        if (v.dccp != sdk::DccpState{})
            which |= block::kDccp;
        w.u8(which);
        if (which & block::kTcp)
            put_tcp(w, v.tcp);
        if (which & block::kSctp)
            put_sctp(w, v.sctp);
        if (which & block::kDccp)
            put_dccp(w, v.dccp);
    }
    if (u.fields & field::kStatus)
        w.u32(v.status);
    if (u.fields & field::kTimeout)
        w.u32(v.timeout);
    if (u.fields & field::kMark)
        w.u32(v.mark);
    if (u.fields & field::kLabels)
        w.bytes(v.labels.data(), v.labels.size());
    if (u.fields & field::kNat) {
        std::uint8_t which = 0;
        if (v.snat.present)
            which |= block::kSnat;
        if (v.dnat.present)
            which |= block::kDnat;
        if (v.seq_original.present)
            which |= block::kSeqOriginal;
        if (v.seq_reply.present)
            which |= block::kSeqReply;
        w.u8(which);
        Family family = v.original.family == Family::kIpv6 ? Family::kIpv6 : Family::kIpv4;
        if (which & (block::kSnat | block::kDnat))
            w.u8(static_cast<std::uint8_t>(family));
        if (which & block::kSnat)
            put_nat(w, v.snat, family);
        if (which & block::kDnat)
            put_nat(w, v.dnat, family);
        if (which & block::kSeqOriginal)
            put_seq(w, v.seq_original);
        if (which & block::kSeqReply)
            put_seq(w, v.seq_reply);
    }
    if (u.fields & field::kHelper)
        put_name(w, sdk::helper_name_view(v.helper));
}

bool get_update(Reader& r, FlowUpdate& u) {
    u = FlowUpdate{};
    FlowState& v = u.values;
    u.flow_id = r.u32();
    u.fields = r.u8();
    if (!r.ok() || u.fields == 0 || (u.fields & ~field::kAll) != 0) {
        return false;
    }
    if (u.fields & field::kProtoState) {
        std::uint8_t which = r.u8();
        if ((which & ~block::kAllState) != 0)
            return false;
        if (which & block::kTcp)
            get_tcp(r, v.tcp);
        if (which & block::kSctp)
            get_sctp(r, v.sctp);
        if (which & block::kDccp)
            get_dccp(r, v.dccp);
        if (((which & block::kTcp) && v.tcp == sdk::TcpState{}) ||
            ((which & block::kSctp) && v.sctp == sdk::SctpState{}) ||
            ((which & block::kDccp) && v.dccp == sdk::DccpState{}))
            return false;
    }
    if (u.fields & field::kStatus)
        v.status = r.u32();
    if (u.fields & field::kTimeout)
        v.timeout = r.u32();
    if (u.fields & field::kMark)
        v.mark = r.u32();
    if (u.fields & field::kLabels)
        r.bytes(v.labels.data(), v.labels.size());
    if (u.fields & field::kNat) {
        std::uint8_t which = r.u8();
        if ((which & ~block::kAllNat) != 0)
            return false;
        Family family = Family::kIpv4;
        if (which & (block::kSnat | block::kDnat)) {
            std::uint8_t f = r.u8();
            if (!valid_family(f))
                return false;
            family = static_cast<Family>(f);
            v.original.family = family;  // so that the values re-encode with the same address size
        }
        if (which & block::kSnat)
            get_nat(r, v.snat, family);
        if (which & block::kDnat)
            get_nat(r, v.dnat, family);
        if (which & block::kSeqOriginal)
            get_seq(r, v.seq_original);
        if (which & block::kSeqReply)
            get_seq(r, v.seq_reply);
    }
    if ((u.fields & field::kHelper) && !get_name(r, v.helper, sdk::kHelperNameSize - 1, true))
        return false;
    return r.ok();
}

void put_expectation(Writer& w, const sdk::Expectation& e, bool full) {
    w.u16(e.zone.id);
    w.u8(e.zone.directions);
    put_full_tuple(w, e.master);
    put_full_tuple(w, e.expected);
    if (!full) {
        return;
    }
    put_full_tuple(w, e.mask);
    put_name(w, sdk::helper_name_view(e.helper));
    w.u32(e.expect_class);
    w.u32(e.flags);
    w.u32(e.timeout);
    w.u8(e.nat.present ? 1 : 0);
    if (e.nat.present) {
        Family f = e.expected.family;
        w.u8(static_cast<std::uint8_t>(f));
        put_nat(w, e.nat, f);
    }
    w.u8(e.nat_direction);
    std::size_t n = 0;
    while (n < e.function.size() && e.function[n] != '\0') {
        ++n;
    }
    put_name(w, std::string_view(e.function.data(), n));
}

bool get_expectation(Reader& r, sdk::Expectation& e, bool full) {
    e = sdk::Expectation{};
    e.zone.id = r.u16();
    e.zone.directions = r.u8();
    if (e.zone.directions > sdk::Zone::kDirBoth)
        return false;
    get_full_tuple(r, e.master);
    get_full_tuple(r, e.expected);
    if (!full) {
        return r.ok();
    }
    get_full_tuple(r, e.mask);
    if (!get_name(r, e.helper, sdk::kHelperNameSize - 1, true))
        return false;
    e.expect_class = r.u32();
    e.flags = r.u32();
    e.timeout = r.u32();
    std::uint8_t nat = r.u8();
    if (nat > 1)
        return false;
    if (nat == 1) {
        std::uint8_t f = r.u8();
        if (f != static_cast<std::uint8_t>(e.expected.family))  // the sender writes the expected family
            return false;
        get_nat(r, e.nat, static_cast<Family>(f));
    }
    e.nat_direction = r.u8();
    if (e.nat_direction > 1)
        return false;
    return get_name(r, e.function, sdk::kExpectFunctionNameSize - 1, true) && r.ok();
}

// [[maybe_unused]]: used only in discarded branches, which clang does not count.
template <class>
[[maybe_unused]] inline constexpr bool kAlwaysFalse = false;

RecordType type_of(const Record& record) {
    return std::visit(
        [](const auto& r) -> RecordType {
            using T = std::decay_t<decltype(r)>;
            if constexpr (std::is_same_v<T, FlowFull>)
                return RecordType::kFlowFull;
            else if constexpr (std::is_same_v<T, FlowUpdate>)
                return RecordType::kFlowUpdate;
            else if constexpr (std::is_same_v<T, FlowDelete>)
                return RecordType::kFlowDelete;
            else if constexpr (std::is_same_v<T, ExpectNew>)
                return RecordType::kExpectNew;
            else if constexpr (std::is_same_v<T, ExpectDelete>)
                return RecordType::kExpectDelete;
            else if constexpr (std::is_same_v<T, BulkStart>)
                return RecordType::kBulkStart;
            else if constexpr (std::is_same_v<T, BulkProgress>)
                return RecordType::kBulkProgress;
            else if constexpr (std::is_same_v<T, BulkEnd>)
                return RecordType::kBulkEnd;
            else if constexpr (std::is_same_v<T, Ack>)
                return RecordType::kAck;
            else if constexpr (std::is_same_v<T, Nack>)
                return RecordType::kNack;
            else if constexpr (std::is_same_v<T, Alive>)
                return RecordType::kAlive;
            else if constexpr (std::is_same_v<T, BulkRequest>)
                return RecordType::kBulkRequest;
            else if constexpr (std::is_same_v<T, FlowRelay>)
                return RecordType::kFlowRelay;
            else
                static_assert(kAlwaysFalse<T>);
        },
        record);
}

}  // namespace

const char* to_string(RecordType type) {
    switch (type) {
        case RecordType::kFlowFull:
            return "flow_full";
        case RecordType::kFlowUpdate:
            return "flow_update";
        case RecordType::kFlowDelete:
            return "flow_delete";
        case RecordType::kExpectNew:
            return "expect_new";
        case RecordType::kExpectDelete:
            return "expect_delete";
        case RecordType::kBulkStart:
            return "bulk_start";
        case RecordType::kBulkProgress:
            return "bulk_progress";
        case RecordType::kBulkEnd:
            return "bulk_end";
        case RecordType::kAck:
            return "ack";
        case RecordType::kNack:
            return "nack";
        case RecordType::kAlive:
            return "alive";
        case RecordType::kBulkRequest:
            return "bulk_request";
        case RecordType::kFlowRelay:
            return "flow_relay";
    }
    return "unknown";
}

void encode_header(Writer& w, const Header& h) {
    w.u32(kMagic);
    w.u8(kVersion);
    w.u8(static_cast<std::uint8_t>(h.type));
    w.u8(h.key_id);
    w.u8(h.flags);
    w.u32(h.node_id);
    w.u64(h.epoch);
    w.u64(h.packet);
    w.u16(h.length);
    w.u16(0);  // reserved
}

bool decode_header(std::span<const std::byte> datagram, Header& out, std::string& error) {
    Reader r(datagram);
    if (datagram.size() < kHeaderSize) {
        error = "truncated";
        return false;
    }
    if (r.u32() != kMagic) {
        error = "bad_magic";
        return false;
    }
    if (r.u8() != kVersion) {
        error = "bad_version";
        return false;
    }
    std::uint8_t type = r.u8();
    if (type != static_cast<std::uint8_t>(DatagramType::kData) &&
        type != static_cast<std::uint8_t>(DatagramType::kControl)) {
        error = "bad_type";
        return false;
    }
    out.type = static_cast<DatagramType>(type);
    out.key_id = r.u8();
    out.flags = r.u8();
    out.node_id = r.u32();
    out.epoch = r.u64();
    out.packet = r.u64();
    out.length = r.u16();
    if (r.u16() != 0 || (out.flags & ~kFlagEncrypted) != 0) {
        error = "bad_header";
        return false;
    }
    return true;
}

void encode_record(Writer& w, const Record& record) {
    w.u8(static_cast<std::uint8_t>(type_of(record)));
    const std::size_t length_at = w.size();
    w.u16(0);
    const std::size_t body_at = w.size();
    std::visit(
        [&w](const auto& r) {
            using T = std::decay_t<decltype(r)>;
            if constexpr (std::is_same_v<T, FlowFull>) {
                w.u32(r.flow_id);
                put_flow(w, r.flow);
            } else if constexpr (std::is_same_v<T, FlowUpdate>) {
                put_update(w, r);
            } else if constexpr (std::is_same_v<T, FlowDelete>) {
                w.u32(r.flow_id);
            } else if constexpr (std::is_same_v<T, ExpectNew>) {
                put_expectation(w, r.expectation, true);
            } else if constexpr (std::is_same_v<T, ExpectDelete>) {
                put_expectation(w, r.expectation, false);
            } else if constexpr (std::is_same_v<T, BulkStart>) {
                w.u32(r.requester);
                w.u32(r.bulk_id);
                w.u32(r.total);
                w.u32(r.origin);
            } else if constexpr (std::is_same_v<T, BulkProgress>) {
                w.u32(r.requester);
                w.u32(r.bulk_id);
                w.u32(r.sent);
                w.u32(r.total);
            } else if constexpr (std::is_same_v<T, BulkEnd>) {
                w.u32(r.requester);
                w.u32(r.bulk_id);
                w.u32(r.sent);
            } else if constexpr (std::is_same_v<T, Ack>) {
                w.u32(r.peer);
                w.u64(r.epoch);
                w.u64(r.seq);
            } else if constexpr (std::is_same_v<T, Nack>) {
                if (r.ranges.empty() || r.ranges.size() > kMaxNackRanges) {
                    throw std::length_error("NACK with 0 or more than 32 ranges");
                }
                w.u32(r.peer);
                w.u64(r.epoch);
                w.u8(static_cast<std::uint8_t>(r.ranges.size()));
                for (const auto& [first, last] : r.ranges) {
                    w.u64(first);
                    w.u64(last);
                }
            } else if constexpr (std::is_same_v<T, Alive>) {
                if (r.seen.size() > kMaxAliveSeen) {
                    throw std::length_error("ALIVE with more than 32 senders");
                }
                w.u8(r.role);
                w.u8(r.flags);
                w.u64(r.next_seq);
                w.u32(r.flows);
                w.u8(static_cast<std::uint8_t>(r.seen.size()));
                for (const auto& s : r.seen) {
                    w.u32(s.node);
                    w.u64(s.epoch);
                    w.u64(s.seq);
                }
            } else if constexpr (std::is_same_v<T, BulkRequest>) {
                w.u32(r.target);
                w.u32(r.request_id);
                w.u32(r.origin);
            } else if constexpr (std::is_same_v<T, FlowRelay>) {
                w.u32(r.origin);
                put_flow(w, r.flow);
            }
        },
        record);
    const std::size_t body = w.size() - body_at;
    if (body > 0xffff) {
        throw std::length_error("record body above 65535 bytes");
    }
    w.patch_u16(length_at, static_cast<std::uint16_t>(body));
}

bool decode_records(std::span<const std::byte> payload, std::vector<Record>& out, std::string& error) {
    Reader r(payload);
    std::size_t index = 0;
    while (r.remaining() > 0) {
        const auto type = static_cast<RecordType>(r.u8());
        const std::size_t length = r.u16();
        Reader body = r.sub(length);
        if (!r.ok()) {
            error = fmt::format("record {}: length {} runs past the datagram", index, length);
            return false;
        }
        bool ok = false;
        switch (type) {
            case RecordType::kFlowFull: {
                FlowFull f;
                f.flow_id = body.u32();
                ok = get_flow(body, f.flow) && f.flow_id != 0;
                if (ok)
                    out.emplace_back(std::move(f));
                break;
            }
            case RecordType::kFlowUpdate: {
                FlowUpdate u;
                ok = get_update(body, u) && u.flow_id != 0;
                if (ok)
                    out.emplace_back(std::move(u));
                break;
            }
            case RecordType::kFlowDelete: {
                FlowDelete d{body.u32()};
                ok = body.ok() && d.flow_id != 0;
                if (ok)
                    out.emplace_back(d);
                break;
            }
            case RecordType::kExpectNew: {
                ExpectNew e;
                ok = get_expectation(body, e.expectation, true);
                if (ok)
                    out.emplace_back(std::move(e));
                break;
            }
            case RecordType::kExpectDelete: {
                ExpectDelete e;
                ok = get_expectation(body, e.expectation, false);
                if (ok)
                    out.emplace_back(std::move(e));
                break;
            }
            case RecordType::kBulkStart: {
                BulkStart b{body.u32(), body.u32(), body.u32(), body.u32()};
                ok = body.ok();
                if (ok)
                    out.emplace_back(b);
                break;
            }
            case RecordType::kBulkProgress: {
                BulkProgress b{body.u32(), body.u32(), body.u32(), body.u32()};
                ok = body.ok();
                if (ok)
                    out.emplace_back(b);
                break;
            }
            case RecordType::kBulkEnd: {
                BulkEnd b{body.u32(), body.u32(), body.u32()};
                ok = body.ok();
                if (ok)
                    out.emplace_back(b);
                break;
            }
            case RecordType::kAck: {
                Ack a;
                a.peer = body.u32();
                a.epoch = body.u64();
                a.seq = body.u64();
                ok = body.ok();
                if (ok)
                    out.emplace_back(a);
                break;
            }
            case RecordType::kNack: {
                Nack n;
                n.peer = body.u32();
                n.epoch = body.u64();
                std::size_t count = body.u8();
                ok = body.ok() && count >= 1 && count <= kMaxNackRanges;
                for (std::size_t i = 0; ok && i < count; ++i) {
                    std::uint64_t first = body.u64();
                    std::uint64_t last = body.u64();
                    ok = body.ok() && first <= last;
                    n.ranges.emplace_back(first, last);
                }
                if (ok)
                    out.emplace_back(std::move(n));
                break;
            }
            case RecordType::kAlive: {
                Alive a;
                a.role = body.u8();
                a.flags = body.u8();
                a.next_seq = body.u64();
                a.flows = body.u32();
                std::size_t count = body.u8();
                ok = body.ok() && a.role <= 3 && (a.flags & ~kAliveHello) == 0 && count <= kMaxAliveSeen;
                for (std::size_t i = 0; ok && i < count; ++i) {
                    SeenSender s;
                    s.node = body.u32();
                    s.epoch = body.u64();
                    s.seq = body.u64();
                    ok = body.ok();
                    a.seen.push_back(s);
                }
                if (ok)
                    out.emplace_back(std::move(a));
                break;
            }
            case RecordType::kBulkRequest: {
                BulkRequest b{body.u32(), body.u32(), body.u32()};
                ok = body.ok();
                if (ok)
                    out.emplace_back(b);
                break;
            }
            case RecordType::kFlowRelay: {
                FlowRelay f;
                f.origin = body.u32();
                ok = get_flow(body, f.flow) && f.origin != 0;
                if (ok)
                    out.emplace_back(std::move(f));
                break;
            }
            default:
                error = fmt::format("record {}: unknown type {}", index, static_cast<unsigned>(type));
                return false;
        }
        if (!ok || !body.at_end()) {
            error = fmt::format("record {} ({}): malformed body of {} bytes", index, to_string(type), length);
            return false;
        }
        ++index;
    }
    return true;
}

std::uint8_t changed_fields(const sdk::FlowState& a, const sdk::FlowState& b) {
    if (a.reply != b.reply || a.zone != b.zone || a.original != b.original) {
        return field::kAll | kNeedsFull;
    }
    std::uint8_t f = 0;
    if (a.tcp != b.tcp || a.sctp != b.sctp || a.dccp != b.dccp)
        f |= field::kProtoState;
    if (a.status != b.status)
        f |= field::kStatus;
    if (a.timeout != b.timeout)
        f |= field::kTimeout;
    if (a.mark != b.mark)
        f |= field::kMark;
    if (a.labels != b.labels)
        f |= field::kLabels;
    if (a.snat != b.snat || a.dnat != b.dnat || a.seq_original != b.seq_original ||
        a.seq_reply != b.seq_reply) {
        f |= field::kNat;
    }
    if (a.helper != b.helper)
        f |= field::kHelper;
    return f;
}

void copy_fields(sdk::FlowState& to, const sdk::FlowState& from, std::uint8_t fields) {
    if (fields & field::kProtoState) {
        to.tcp = from.tcp;
        to.sctp = from.sctp;
        to.dccp = from.dccp;
    }
    if (fields & field::kStatus)
        to.status = from.status;
    if (fields & field::kTimeout)
        to.timeout = from.timeout;
    if (fields & field::kMark)
        to.mark = from.mark;
    if (fields & field::kLabels)
        to.labels = from.labels;
    if (fields & field::kNat) {
        to.snat = from.snat;
        to.dnat = from.dnat;
        to.seq_original = from.seq_original;
        to.seq_reply = from.seq_reply;
    }
    if (fields & field::kHelper)
        to.helper = from.helper;
}

}  // namespace ctsync::core::wire
