// SPDX-License-Identifier: GPL-2.0-or-later
// ct-inject: the smallest batched ctnetlink writer we can write — the kernel's insert ceiling for the
// benchmarks, and the event-burst generator for the overrun test. Deliberately independent of ctsync's own
// writer (source-ctnetlink), so that it can measure it.
//
//   ct-inject --count N [--first K] [--delete] [--nat | --snat-to ADDR | --sources S] [--batch-bytes B]
//             [--rate R]
//
// Entry i (from K): TCP ESTABLISHED 192.0.2.(1+i/60000):(1024+i%60000) -> 198.51.100.10:80, timeout 600 s;
// with --nat, SNAT to 203.0.113.(1+i/60000):(1024+i%60000); with --snat-to ADDR, SNAT to the one IPv4
// address ADDR (a firewall's virtual IP) port 1024+i%60000, the destination port then being 80+i/60000 so
// that every reply tuple stays unique. With --rate R, batches are paced so that entry i is not sent before
// i / R seconds (a burst at a target rate, not the kernel's fastest). With --sources S (1-250, no NAT), the
// source is 192.0.2.(1+i%S):(1024+(i/S)%60000): each source address holds 1/S of the entries (the filter
// benchmark's share). Prints one line: entries, ms,
// entries/s, errors.
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Options {
    long count = 0;
    long first = 0;
    bool del = false;
    bool nat = false;
    std::uint32_t snat_to = 0;  // network order; 0: per-entry addresses (--nat)
    long sources = 0;           // 0: the default addressing
    std::size_t batch_bytes = 128 * 1024;
    double rate = 0;  // entries per second; 0: as fast as the kernel takes them
};

std::uint32_t v4(int a, int b, int c, int d) {
    return htonl(static_cast<std::uint32_t>((a << 24) | (b << 16) | (c << 8) | d));
}

nf_conntrack* make_entry(long i, bool nat, std::uint32_t snat_to, long sources) {
    nf_conntrack* ct = nfct_new();
    const int host = static_cast<int>(sources > 0 ? 1 + i % sources : 1 + i / 60000);
    const auto port =
        static_cast<std::uint16_t>(sources > 0 ? 1024 + (i / sources) % 60000 : 1024 + i % 60000);
    nfct_set_attr_u8(ct, ATTR_L3PROTO, AF_INET);
    nfct_set_attr_u8(ct, ATTR_L4PROTO, IPPROTO_TCP);
    nfct_set_attr_u32(ct, ATTR_IPV4_SRC, v4(192, 0, 2, host));
    nfct_set_attr_u32(ct, ATTR_IPV4_DST, v4(198, 51, 100, 10));
    nfct_set_attr_u16(ct, ATTR_PORT_SRC, htons(port));
    nfct_set_attr_u16(ct, ATTR_PORT_DST,
                      htons(static_cast<std::uint16_t>(snat_to != 0 ? 80 + i / 60000 : 80)));
    nfct_setobjopt(ct, NFCT_SOPT_SETUP_REPLY);
    nfct_set_attr_u8(ct, ATTR_TCP_STATE, 3);  // ESTABLISHED
    nfct_set_attr_u32(ct, ATTR_TIMEOUT, 600);
    nfct_set_attr_u32(ct, ATTR_STATUS, IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED);
    if (nat) {
        nfct_set_attr_u32(ct, ATTR_SNAT_IPV4, snat_to != 0 ? snat_to : v4(203, 0, 113, host));
        nfct_set_attr_u16(ct, ATTR_SNAT_PORT, htons(port));
    }
    return ct;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> const char* {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "ct-inject: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--count") {
            o.count = std::atol(next());
        } else if (a == "--first") {
            o.first = std::atol(next());
        } else if (a == "--delete") {
            o.del = true;
        } else if (a == "--nat") {
            o.nat = true;
        } else if (a == "--snat-to") {
            const char* addr = next();
            if (inet_pton(AF_INET, addr, &o.snat_to) != 1 || o.snat_to == 0) {
                std::fprintf(stderr, "ct-inject: --snat-to needs an IPv4 address, not %s\n", addr);
                return 2;
            }
            o.nat = true;
        } else if (a == "--sources") {
            o.sources = std::atol(next());
            if (o.sources < 1 || o.sources > 250) {
                std::fprintf(stderr, "ct-inject: --sources must be 1..250\n");
                return 2;
            }
        } else if (a == "--batch-bytes") {
            o.batch_bytes = static_cast<std::size_t>(std::atol(next()));
        } else if (a == "--rate") {
            o.rate = std::atof(next());
            if (!(o.rate > 0 && o.rate <= 1e8)) {
                std::fprintf(stderr, "ct-inject: --rate must be a number of entries/s in (0, 1e8]\n");
                return 2;
            }
        } else {
            std::fprintf(stderr,
                         "usage: ct-inject --count N [--first K] [--delete] [--nat | --snat-to ADDR | "
                         "--sources S] [--batch-bytes B] [--rate R]\n");
            return 2;
        }
    }
    if (o.sources > 0 && o.nat) {
        std::fprintf(stderr, "ct-inject: --sources does not combine with --nat or --snat-to\n");
        return 2;
    }
    if (o.sources > 0 && o.first + o.count > 60000L * o.sources) {
        std::fprintf(stderr, "ct-inject: with --sources %ld, entries stay unique up to %ld\n", o.sources,
                     60000L * o.sources);
        return 2;
    }
    if (o.count <= 0 || o.count > 60000L * 250) {
        std::fprintf(stderr, "ct-inject: --count must be 1..15000000\n");
        return 2;
    }
    mnl_socket* nl = mnl_socket_open(NETLINK_NETFILTER);
    if (nl == nullptr || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        std::perror("ct-inject: netlink");
        return 1;
    }
    int one = 1;
    setsockopt(mnl_socket_get_fd(nl), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
    std::vector<char> buffer(o.batch_bytes + 4096);
    std::vector<char> reply(1 << 16);
    std::uint32_t seq = 1;
    long errors = 0;
    const auto start = std::chrono::steady_clock::now();
    long i = o.first;
    const long end = o.first + o.count;
    while (i < end) {
        if (o.rate > 0) {
            std::this_thread::sleep_until(start +
                                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                              std::chrono::duration<double>((i - o.first) / o.rate)));
        }
        std::size_t used = 0;
        nlmsghdr* last = nullptr;
        const std::uint32_t first_seq = seq;
        while (i < end && o.batch_bytes - used >= 1024) {
            nf_conntrack* ct = make_entry(i++, o.nat && !o.del, o.snat_to, o.sources);
            nlmsghdr* nlh = mnl_nlmsg_put_header(buffer.data() + used);
            nlh->nlmsg_type =
                (NFNL_SUBSYS_CTNETLINK << 8) | (o.del ? IPCTNL_MSG_CT_DELETE : IPCTNL_MSG_CT_NEW);
            nlh->nlmsg_flags = NLM_F_REQUEST | (o.del ? 0 : NLM_F_CREATE | NLM_F_EXCL);
            nlh->nlmsg_seq = seq++;
            auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
            nfg->nfgen_family = AF_INET;
            nfg->version = NFNETLINK_V0;
            nfg->res_id = 0;
            nfct_nlmsg_build(nlh, ct);
            nfct_destroy(ct);
            used += NLMSG_ALIGN(nlh->nlmsg_len);
            last = nlh;
        }
        last->nlmsg_flags |= NLM_F_ACK;
        const std::uint32_t last_seq = last->nlmsg_seq;
        if (mnl_socket_sendto(nl, buffer.data(), used) < 0) {
            std::perror("ct-inject: sendmsg");
            return 1;
        }
        bool done = false;
        while (!done) {
            ssize_t n = mnl_socket_recvfrom(nl, reply.data(), reply.size());
            if (n < 0) {
                std::perror("ct-inject: recv");
                return 1;
            }
            int remaining = static_cast<int>(n);
            for (auto* nlh = reinterpret_cast<const nlmsghdr*>(reply.data()); mnl_nlmsg_ok(nlh, remaining);
                 nlh = mnl_nlmsg_next(nlh, &remaining)) {
                if (nlh->nlmsg_type == NLMSG_ERROR && nlh->nlmsg_seq >= first_seq) {
                    const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
                    if (err->error != 0) {
                        ++errors;
                    }
                    done = done || nlh->nlmsg_seq == last_seq;
                }
            }
        }
    }
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("ct-inject: %s %ld entries in %.1f ms = %.0f entries/s, %ld errors\n",
                o.del ? "deleted" : "created", o.count, ms, static_cast<double>(o.count) / (ms / 1000.0),
                errors);
    mnl_socket_close(nl);
    return errors == 0 ? 0 : 1;
}
