// SPDX-License-Identifier: GPL-2.0-or-later
// The netlink flow codec of source-ctnetlink on whatever the socket could deliver: the input is a buffer of
// netlink messages (checked as the source checks a receive buffer, then walked as libmnl walks it); each
// conntrack or expectation message is parsed by libnetfilter_conntrack and decoded into the flow model
// exactly as the source decodes events and dumps. A decoded flow is then encoded for each kind of write
// (create, update, delete), built into a message as the source builds its batches, and that message decodes
// back to the same original tuple.
#include <dlfcn.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "flow_codec.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace ctnetlink;

namespace {

std::jmp_buf* library_refusal = nullptr;  // set while libnetfilter_conntrack parses the fuzzer's input

}  // namespace

// libnetfilter_conntrack 1.0.9 ends the process (exit(EXIT_FAILURE) after "ctnetlink kernel ABI is broken,
// contact your vendor") when an attribute's length does not fit its type (found by this target). The kernel
// never sends one, and ctsyncd keeps the library's behaviour (source-ctnetlink's README says so); here the
// input is anything, so the target takes over the library's exported function, which the library calls
// through its PLT, and jumps back to where it parses the input: the library refused the message. Only C
// frames lie between (no destructor is skipped). Anywhere else, parsing what the codec built, it is a
// finding.
extern "C" [[noreturn]] void __abi_breakage(const char* file, int line, const char* reason) {
    if (library_refusal != nullptr) {
        std::longjmp(*library_refusal, 1);
    }
    std::fprintf(stderr, "libnetfilter_conntrack: %s:%d %s\n", file, line, reason);
    ctsync::fuzz::finding("libnetfilter_conntrack refused a message the codec built");
}

// The same library asserts on some values in input it parses (nfexp_nlmsg_parse: an expectation function
// name longer than its buffer, found by this target): while it parses the fuzzer's input, that too is the
// library refusing the message; any other assertion goes to glibc's as usual.
extern "C" void __assert_fail(const char* assertion, const char* file, unsigned int line,
                              const char* function) noexcept {
    if (library_refusal != nullptr) {
        std::longjmp(*library_refusal, 1);
    }
    using AssertFail = void (*)(const char*, const char*, unsigned int, const char*);
    const auto next = reinterpret_cast<AssertFail>(::dlsym(RTLD_NEXT, "__assert_fail"));
    if (next != nullptr) {
        next(assertion, file, line, function);
    }
    std::abort();
}

namespace {

template <class Parse, class Object>
bool library_parses(Parse parse, const nlmsghdr* nlh, Object* object) {
    std::jmp_buf here;
    if (setjmp(here) != 0) {
        library_refusal = nullptr;
        return false;
    }
    library_refusal = &here;
    const bool parsed = parse(nlh, object) >= 0;
    library_refusal = nullptr;
    return parsed;
}

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
                if (library_parses(nfct_nlmsg_parse, nlh, ct.get()) && decode_flow(*ct, flow)) {
                    rebuild(flow, Purpose::kCreate);
                    rebuild(flow, Purpose::kUpdate);
                    rebuild(flow, Purpose::kDelete);
                }
            } else if (subsystem == NFNL_SUBSYS_CTNETLINK_EXP) {
                ExpectPtr exp = new_expect();
                ctsync::sdk::Expectation expectation;
                if (library_parses(nfexp_nlmsg_parse, nlh, exp.get()) &&
                    decode_expectation(*exp, expectation)) {
                    ExpectPtr encoded = encode_expectation(expectation);
                    CTSYNC_FUZZ_CHECK(encoded != nullptr);
                }
            }
        }
        nlh = mnl_nlmsg_next(nlh, &remaining);
    }
    return 0;
}
