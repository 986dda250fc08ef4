// SPDX-License-Identifier: GPL-2.0-or-later
// The flow model: plain value types describing a conntrack entry and an expectation completely enough to
// recreate them on another node. No kernel or netlink types appear here; the source plugin translates.
// All types are regular values (copyable, comparable), safe to use from any thread once constructed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "ctsync/sdk/abi.hpp"

namespace ctsync::sdk {
inline namespace CTSYNC_SDK_ABI_NAMESPACE {

// Layer-3 family, with the kernel's AF_* values so that translation is a cast.
enum class Family : std::uint8_t { kUnspec = 0, kIpv4 = 2, kIpv6 = 10 };

// Layer-4 protocol numbers (IANA, as IPPROTO_*). Any other number is carried as-is (generic handler).
namespace l4 {
inline constexpr std::uint8_t kIcmp = 1;
inline constexpr std::uint8_t kTcp = 6;
inline constexpr std::uint8_t kUdp = 17;
inline constexpr std::uint8_t kDccp = 33;
inline constexpr std::uint8_t kGre = 47;
inline constexpr std::uint8_t kIcmpv6 = 58;
inline constexpr std::uint8_t kSctp = 132;
inline constexpr std::uint8_t kUdplite = 136;
}  // namespace l4

// An IPv4 or IPv6 address in network byte order; IPv4 uses the first 4 bytes, the rest stays zero so that
// comparison and hashing need not know the family.
struct Address {
    std::array<std::uint8_t, 16> bytes{};
    friend bool operator==(const Address&, const Address&) = default;
};

// One direction of a connection. Ports are in host byte order. For ICMP/ICMPv6, `src_port` holds the
// identifier and `icmp_type`/`icmp_code` the message; for GRE the ports hold the keys (PPTP call ids).
struct Tuple {
    Address src;
    Address dst;
    Family family = Family::kUnspec;
    std::uint8_t protocol = 0;
    std::uint16_t src_port = 0;
    std::uint16_t dst_port = 0;
    std::uint8_t icmp_type = 0;
    std::uint8_t icmp_code = 0;
    friend bool operator==(const Tuple&, const Tuple&) = default;
};

// Conntrack zone: the id and the directions it applies to (the kernel's NF_CT_ZONE_DIR_* bits).
struct Zone {
    static constexpr std::uint8_t kDirOriginal = 1;
    static constexpr std::uint8_t kDirReply = 2;
    static constexpr std::uint8_t kDirBoth = kDirOriginal | kDirReply;
    std::uint16_t id = 0;
    std::uint8_t directions = kDirBoth;
    friend bool operator==(const Zone&, const Zone&) = default;
};

// Identity of a flow in every cache: zone plus original tuple, as the kernel's own lookup.
struct FlowKey {
    Zone zone;
    Tuple original;
    friend bool operator==(const FlowKey&, const FlowKey&) = default;
};

// A hash of a flow key for unordered containers: every identifying field, read word by word (no padding
// byte is read), mixed with `seed`. Give each process its own random seed where peers or traffic choose
// the keys, so that nobody can precompute colliding tuples.
inline std::size_t hash_flow_key(const FlowKey& key, std::uint64_t seed) noexcept {
    auto word = [](const std::uint8_t* p) {
        std::uint64_t v = 0;
        for (int i = 7; i >= 0; --i) {
            v = (v << 8) | p[i];
        }
        return v;
    };
    auto mix = [](std::uint64_t h, std::uint64_t v) {
        h = (h ^ v) * 0x9e3779b97f4a7c15ull;
        return h ^ (h >> 31);
    };
    const Tuple& t = key.original;
    std::uint64_t h = seed ^ 0x243f6a8885a308d3ull;
    h = mix(h, word(t.src.bytes.data()));
    h = mix(h, word(t.src.bytes.data() + 8));
    h = mix(h, word(t.dst.bytes.data()));
    h = mix(h, word(t.dst.bytes.data() + 8));
    h = mix(h, std::uint64_t{static_cast<std::uint8_t>(t.family)} | std::uint64_t{t.protocol} << 8 |
                   std::uint64_t{t.src_port} << 16 | std::uint64_t{t.dst_port} << 32 |
                   std::uint64_t{t.icmp_type} << 48 | std::uint64_t{t.icmp_code} << 56);
    h = mix(h, std::uint64_t{key.zone.id} | std::uint64_t{key.zone.directions} << 16);
    // Final avalanche (splitmix64's), so that the low bits a bucket index uses depend on every input bit.
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    return static_cast<std::size_t>(h ^ (h >> 31));
}

// A NAT binding as the kernel's CTA_NAT_* attributes express it (address range collapsed to the bound
// address and port, which is what the reply tuple of an existing entry already fixes).
struct NatBinding {
    bool present = false;
    Address address;
    std::uint16_t port = 0;  // host order; 0 when the port is not translated
    friend bool operator==(const NatBinding&, const NatBinding&) = default;
};

// TCP sequence adjustment of one direction (helpers that rewrite payload, e.g. FTP with NAT).
struct SeqAdjust {
    bool present = false;
    std::uint32_t correction_pos = 0;
    std::int32_t offset_before = 0;
    std::int32_t offset_after = 0;
    friend bool operator==(const SeqAdjust&, const SeqAdjust&) = default;
};

// Protocol state. Only the member matching the tuple's protocol is meaningful; the others stay zero.
struct TcpState {
    std::uint8_t state = 0;  // kernel TCP_CONNTRACK_* value
    std::uint8_t wscale_original = 0;
    std::uint8_t wscale_reply = 0;
    std::uint8_t flags_original = 0;  // IP_CT_TCP_FLAG_* bits
    std::uint8_t flags_reply = 0;
    friend bool operator==(const TcpState&, const TcpState&) = default;
};
struct SctpState {
    std::uint8_t state = 0;  // kernel SCTP_CONNTRACK_* value
    std::uint32_t vtag_original = 0;
    std::uint32_t vtag_reply = 0;
    friend bool operator==(const SctpState&, const SctpState&) = default;
};
struct DccpState {
    std::uint8_t state = 0;
    std::uint8_t role = 0;
    std::uint64_t handshake_seq = 0;
    friend bool operator==(const DccpState&, const DccpState&) = default;
};

inline constexpr std::size_t kHelperNameSize = 16;  // NF_CT_HELPER_NAME_LEN, including the terminator
using HelperName = std::array<char, kHelperNameSize>;
using Labels = std::array<std::uint8_t, 16>;  // 128 conntrack label bits

// Sets a HelperName from a string; names longer than 15 bytes are refused (returns false, name unchanged).
inline bool set_helper_name(HelperName& out, std::string_view name) noexcept {
    if (name.size() >= kHelperNameSize) {
        return false;
    }
    out.fill('\0');
    for (std::size_t i = 0; i < name.size(); ++i) {
        out[i] = name[i];
    }
    return true;
}
inline std::string_view helper_name_view(const HelperName& name) noexcept {
    std::size_t n = 0;
    while (n < name.size() && name[n] != '\0') {
        ++n;
    }
    return {name.data(), n};
}

// Everything needed to recreate a conntrack entry on another node.
struct FlowState {
    Zone zone;
    Tuple original;
    Tuple reply;
    std::uint32_t status = 0;  // IPS_* bits as the kernel reports them
    std::uint32_t mark = 0;
    std::uint32_t timeout = 0;  // seconds left when read
    Labels labels{};
    HelperName helper{};
    NatBinding snat;
    NatBinding dnat;
    SeqAdjust seq_original;
    SeqAdjust seq_reply;
    TcpState tcp;
    SctpState sctp;
    DccpState dccp;
    std::uint32_t kernel_id = 0;  // CTA_ID on the node that read it; meaningless elsewhere

    FlowKey key() const noexcept { return FlowKey{zone, original}; }
    friend bool operator==(const FlowState&, const FlowState&) = default;
};

inline constexpr std::size_t kExpectFunctionNameSize = 32;
using ExpectFunctionName = std::array<char, kExpectFunctionNameSize>;

// A helper's expectation of a related connection (FTP data, SIP media...).
struct Expectation {
    Zone zone;
    Tuple master;    // original tuple of the master flow
    Tuple expected;  // tuple the related connection will have
    Tuple mask;      // which bits of `expected` must match
    HelperName helper{};
    std::uint32_t expect_class = 0;
    std::uint32_t flags = 0;    // NF_CT_EXPECT_* bits
    std::uint32_t timeout = 0;  // seconds left when read
    NatBinding nat;             // the address/port the NAT helper saved (the pre-NAT endpoint), if any
    std::uint8_t nat_direction = 0;
    ExpectFunctionName function{};  // what runs when the connection arrives ("nat-follow-master"), or empty
    friend bool operator==(const Expectation&, const Expectation&) = default;
};

// What happened to an entry, as the kernel reports it. kDump: the entry was listed by a full dump, which
// shows its state at some moment during the dump; an event for the same entry received during that dump is
// at least as recent and wins.
enum class EventKind : std::uint8_t { kNew = 1, kUpdate = 2, kDestroy = 3, kDump = 4 };

}  // namespace CTSYNC_SDK_ABI_NAMESPACE
}  // namespace ctsync::sdk
