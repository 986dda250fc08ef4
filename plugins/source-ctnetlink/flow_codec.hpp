// SPDX-License-Identifier: GPL-2.0-or-later
// Translation between libnetfilter_conntrack objects and the SDK's flow model. The only place where the two
// meet; nothing of libnetfilter_conntrack leaves this plugin.
#pragma once

#include <cstddef>
#include <ctsync/sdk/flow.hpp>
#include <memory>
#include <string>

struct nf_conntrack;
struct nlmsghdr;
struct nf_expect;

namespace ctnetlink {

struct ConntrackDeleter {
    void operator()(nf_conntrack* ct) const noexcept;
};
struct ExpectDeleter {
    void operator()(nf_expect* exp) const noexcept;
};
using ConntrackPtr = std::unique_ptr<nf_conntrack, ConntrackDeleter>;
using ExpectPtr = std::unique_ptr<nf_expect, ExpectDeleter>;

ConntrackPtr new_conntrack();
ExpectPtr new_expect();

// Reads every attribute the flow model carries. Returns false when the entry lacks an original tuple of a
// known family (the caller counts it as malformed).
bool decode_flow(const nf_conntrack& ct, ctsync::sdk::FlowState& out) noexcept;
bool decode_expectation(const nf_expect& exp, ctsync::sdk::Expectation& out) noexcept;

// What a write is for: a new entry (NAT set up by the kernel from the bindings, reply tuple derived), an
// update of an existing one (only what ctnetlink lets change: status, timeout, mark, labels, protocol
// state, sequence adjustment), or a delete (identity only).
enum class Purpose { kCreate, kUpdate, kDelete };
ConntrackPtr encode_flow(const ctsync::sdk::FlowState& flow, Purpose purpose);
ExpectPtr encode_expectation(const ctsync::sdk::Expectation& expectation);

// A create's NAT bindings for SCTP, DCCP and UDP-Lite, which nfct_nlmsg_build (1.0.9) would write without
// their ports: encode_flow leaves them out, this appends them, ports included, to the message it built.
void append_flow_attributes(nlmsghdr* nlh, const ctsync::sdk::FlowState& flow, Purpose purpose);

// libnetfilter_conntrack 1.0.9's nfexp_nlmsg_build leaves out the class, NAT and expectation function;
// this appends them to a message it built.
void append_expectation_attributes(nlmsghdr* nlh, const ctsync::sdk::Expectation& expectation);

// Walks the headers of a buffer of netlink messages as read from a socket and says what is wrong with it, or
// an empty string when every message's length is at least a header and fits in what is left (a tail
// shorter than a header is ignored, as libmnl ignores it). libmnl's
// mnl_nlmsg_ok compares the length as a signed int, so a length of 2^31 or more passes it and the walk goes
// past the buffer: the kernel never sends one, but a buffer is checked before libmnl walks it.
std::string check_message_lengths(const void* buffer, std::size_t size);

// The reply tuple a kernel entry without NAT would have.
ctsync::sdk::Tuple invert(const ctsync::sdk::Tuple& tuple) noexcept;

}  // namespace ctnetlink
