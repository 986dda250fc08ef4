// SPDX-License-Identifier: GPL-2.0-or-later
// filter-bpf's expression language (docs/FILTERS.md): a pcap-filter-like boolean expression over the
// attributes of a conntrack entry. One tree, three readers: the in-process evaluator (every event and dump
// entry the daemon sees), the compiler to classic BPF (expr_compile.cpp, the part the kernel can decide) and
// the kernel-view evaluator, which says what that compiled program decides for a flow.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctsync/sdk/flow.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace filter_bpf {

// Which tuple of the entry an address or port atom reads.
enum class Dir : std::uint8_t { kOrig, kReply };
// Which end of that tuple.
enum class Side : std::uint8_t { kSrc, kDst };

// One node of the tree. Parsing expands the shorthand forms ("host X" = either end of either tuple,
// "state established" = TCP's or SCTP's established), so every atom here reads exactly one attribute.
struct Node {
    enum class Kind : std::uint8_t {
        kAnd,     // all of `kids`
        kOr,      // any of `kids`
        kNot,     // kids[0] is false
        kFamily,  // the entry's layer 3: `family`
        kProto,   // the original tuple's layer-4 protocol: `proto`
        kNet,     // `dir`'s `side` address within `address`/`prefix` (of `family`)
        kPort,    // `dir`'s `side` port within [lo, hi]; false for protocols without ports
        kZone,    // the conntrack zone id: `zone`
        kNat,     // the kernel set up source (`snat`) or destination NAT: IPS_SRC_NAT / IPS_DST_NAT
        kState,   // protocol `proto` in state `state` (TCP_CONNTRACK_*, SCTP_CONNTRACK_*, DCCP)
        kStatus,  // every bit of `bits` set in the status (IPS_*)
        kMark,    // (mark & mask) == value
        kHelper,  // the helper's name is `helper` ("" = any helper)
    };
    Kind kind = Kind::kAnd;
    std::vector<std::shared_ptr<const Node>> kids;
    ctsync::sdk::Family family = ctsync::sdk::Family::kUnspec;
    std::uint8_t proto = 0;
    Dir dir = Dir::kOrig;
    Side side = Side::kSrc;
    ctsync::sdk::Address address;
    unsigned prefix = 0;
    std::uint16_t lo = 0;
    std::uint16_t hi = 0;
    std::uint16_t zone = 0;
    bool snat = true;
    std::uint8_t state = 0;
    std::uint32_t bits = 0;
    std::uint32_t value = 0;
    std::uint32_t mask = 0;
    std::string helper;
};
using NodePtr = std::shared_ptr<const Node>;

struct ParseError {
    std::size_t column = 0;  // 1-based, into the expression text
    std::string message;     // what was expected and what was found
};

// Parses an expression; nullopt with `error` filled on the first problem.
std::optional<NodePtr> parse(std::string_view text, ParseError& error);

// "column 12: expected ..." (what config errors and tools print).
std::string format(const ParseError& error);

// The whole expression over a flow: the filter's one meaning.
bool evaluate(const Node& node, const ctsync::sdk::FlowState& flow) noexcept;

// Three-valued (Kleene) logic: what the kernel-side program can know.
enum class Tri : std::uint8_t { kFalse, kTrue, kUnknown };

// Atoms the kernel decides: what never changes during an entry's life and is in every event message
// (family, protocol, addresses, ports, zone, NAT). The others (state, status flags, mark, helper) change
// with the entry's life, so an event dropped in the kernel for them could hide a later change the process
// must see: they are unknown to the kernel and decided in process.
bool decided_in_kernel(Node::Kind kind) noexcept;

// The expression with the atoms the kernel cannot decide taken as unknown. The compiled program accepts a
// flow exactly when this is kTrue or kUnknown (the property test holds the two to that).
Tri evaluate_kernel_view(const Node& node, const ctsync::sdk::FlowState& flow) noexcept;

// True when every atom is decided in the kernel, so the kernel's verdict is the whole verdict.
bool kernel_exact(const Node& node) noexcept;

// Canonical text of the tree (explicit direction, side and parentheses); parses back to the same tree.
std::string to_string(const Node& node);

// The atoms of the tree, as text, split by where they are decided (for `ctsyncctl filters`).
struct Placement {
    std::vector<std::string> in_kernel;
    std::vector<std::string> in_process_only;
};
Placement placement(const Node& node);

// Protocols whose tuples carry ports in ctnetlink (CTA_PROTO_SRC_PORT/DST_PORT).
bool has_ports(std::uint8_t protocol) noexcept;

}  // namespace filter_bpf
