// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/filter_chain.hpp"

#include <fmt/format.h>
#include <linux/filter.h>
#include <linux/netfilter/nfnetlink_compat.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace ctsync::core {
namespace {

// Why a program cannot be chained, or empty: every return must be a constant (a "ret a" has no fixed
// verdict to turn into a jump) and every jump must stay inside the program.
std::string unchainable(const std::vector<sdk::BpfInstruction>& p) {
    if (p.empty() || BPF_CLASS(p.back().code) != BPF_RET) {
        return "the program does not end with a return";
    }
    for (std::size_t pc = 0; pc < p.size(); ++pc) {
        const auto& in = p[pc];
        if (BPF_CLASS(in.code) == BPF_RET && BPF_RVAL(in.code) != BPF_K) {
            return fmt::format("instruction {} returns a register, not a constant verdict", pc);
        }
        if (BPF_CLASS(in.code) == BPF_JMP) {
            const bool ja = BPF_OP(in.code) == BPF_JA;
            const std::size_t far = ja ? std::size_t{in.k} : std::max<std::size_t>(in.jt, in.jf);
            if (pc + 1 + far >= p.size()) {
                return fmt::format("instruction {} jumps past the end", pc);
            }
        }
    }
    return {};
}

}  // namespace

FilterChain::FilterChain(std::vector<FilterSlot> slots) {
    std::vector<std::vector<sdk::BpfInstruction>> programs;
    std::size_t total = 0;
    for (auto& slot : slots) {
        Entry entry{std::move(slot), "none", {}, 0};
        auto program = entry.slot.filter->kernel_program();
        if (!program) {
            entry.reason = "the filter has no kernel-side program: everything in process";
        } else if (std::string why = unchainable(*program); !why.empty()) {
            entry.kernel = "left out";
            entry.reason = why;
        } else if (total + program->size() + (programs.empty() ? 0 : 2) > kMaxChainInstructions) {
            entry.kernel = "left out";
            entry.reason =
                fmt::format("the chained program would exceed {} instructions", kMaxChainInstructions);
        } else {
            entry.kernel = "attached";
            entry.instructions = program->size();
            total += program->size() + (programs.empty() ? 0 : 2);
            programs.push_back(std::move(*program));
        }
        entries_.push_back(std::move(entry));
    }
    for (std::size_t e = 0; e < entries_.size(); ++e) {
        if (entries_[e].kernel == "attached") {
            attached_entries_.push_back(e);
        }
    }
    for (std::size_t i = 0; i < programs.size(); ++i) {
        if (i > 0) {
            // The next program starts as a program does: A and X zero.
            program_.push_back({static_cast<std::uint16_t>(BPF_LD | BPF_IMM), 0, 0, 0});
            program_.push_back({static_cast<std::uint16_t>(BPF_LDX | BPF_IMM), 0, 0, 0});
        }
        append(program_, programs[i], i + 1 == programs.size() ? Last::kKeep : Last::kOnToNext);
    }
    // The k-th witness: the programs before it as in the chain (a drop there is not the k-th's), then the
    // k-th with its verdicts turned round. It returns the whole message or nothing, never a part: a
    // shortened copy that fails to queue would be handed on to the next socket shortened.
    for (std::size_t k = 0; k < programs.size(); ++k) {
        std::vector<sdk::BpfInstruction> w;
        for (std::size_t i = 0; i <= k; ++i) {
            if (i > 0) {
                w.push_back({static_cast<std::uint16_t>(BPF_LD | BPF_IMM), 0, 0, 0});
                w.push_back({static_cast<std::uint16_t>(BPF_LDX | BPF_IMM), 0, 0, 0});
            }
            append(w, programs[i], i < k ? Last::kOnToNext : Last::kInvert);
        }
        witnesses_.push_back(std::move(w));
    }
}

void FilterChain::append(std::vector<sdk::BpfInstruction>& out, const std::vector<sdk::BpfInstruction>& p,
                         Last how) {
    const std::size_t start = out.size();
    const std::size_t end = start + p.size();  // where whatever follows begins
    for (std::size_t pc = 0; pc < p.size(); ++pc) {
        sdk::BpfInstruction in = p[pc];
        if (BPF_CLASS(in.code) == BPF_RET) {
            if (how == Last::kInvert) {
                in.k = in.k == 0 ? 0xffffffffu : 0;
            } else if (how == Last::kOnToNext && in.k != 0) {
                // Accepted by this filter: on to the next one.
                in = {static_cast<std::uint16_t>(BPF_JMP | BPF_JA), 0, 0,
                      static_cast<std::uint32_t>(end - (start + pc) - 1)};
            }
        }
        out.push_back(in);
    }
}

FilterChain::~FilterChain() {
    if (witness_timer_) {
        witness_timer_->cancel();
    }
    for (auto& e : entries_) {
        if (e.witness_fd >= 0) {
            ::close(e.witness_fd);
        }
    }
}

void FilterChain::attach(sdk::Source& source, sdk::Logger& log) {
    if (program_.empty()) {
        return;
    }
    std::string error;
    if (source.attach_event_filter(program_, error)) {
        attached_ = true;
        log.info(fmt::format("event=filters_in_kernel instructions={} filters={}", program_.size(),
                             attached_entries_.size()));
        return;
    }
    attach_error_ = error;
    for (auto& e : entries_) {
        if (e.kernel == "attached") {
            e.kernel = "refused";
            e.reason = "the source refused the program: " + error;
        }
    }
    log.warn(fmt::format("event=filters_kernel_refused reason=\"{}\" action=evaluate_in_process", error));
}

void FilterChain::count_kernel_drops(boost::asio::any_io_executor executor, MetricsRegistry& metrics,
                                     sdk::Logger& log) {
    if (!attached_) {
        return;
    }
    for (std::size_t k = 0; k < attached_entries_.size(); ++k) {
        Entry& e = entries_[attached_entries_[k]];
        // A filter whose socket cannot be set up goes uncounted (said by status()); the others are counted.
        auto fail = [&](const char* what) {
            counting_error_ = fmt::format("{}: {}: {}", e.slot.instance, what, std::strerror(errno));
            log.warn(fmt::format("event=filters_kernel_drops_not_counted instance={} reason=\"{}\"",
                                 e.slot.instance, counting_error_));
        };
        const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_NETFILTER);
        if (fd < 0) {
            fail("cannot open a counting socket");
            continue;
        }
        // The smallest buffer the kernel allows, no ENOBUFS reports: nearly every event overflows it.
        const int one = 1;
        const int tiny = 0;
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &tiny, sizeof(tiny));
        ::setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one));
        const auto& w = witnesses_[k];
        sock_fprog fprog{static_cast<unsigned short>(w.size()),
                         const_cast<sock_filter*>(reinterpret_cast<const sock_filter*>(w.data()))};
        sockaddr_nl addr{};
        addr.nl_family = AF_NETLINK;
        addr.nl_groups =
            NF_NETLINK_CONNTRACK_NEW | NF_NETLINK_CONNTRACK_UPDATE | NF_NETLINK_CONNTRACK_DESTROY;
        // The program first, so that no unfiltered event is queued in between.
        if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog)) != 0) {
            fail("the kernel refused a counting program");
            ::close(fd);
            continue;
        }
        if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
            fail("cannot subscribe a counting socket to conntrack events");
            ::close(fd);
            continue;
        }
        e.witness_fd = fd;
        e.dropped_in_kernel = &metrics.counter(
            e.slot.instance + ".dropped_in_kernel",
            "events this filter's kernel-side program dropped (the first filter of the chain to drop them)",
            {e.slot.plugin, e.slot.instance, "dropped_in_kernel"});
    }
    if (std::none_of(entries_.begin(), entries_.end(), [](const Entry& x) { return x.witness_fd >= 0; })) {
        return;
    }
    witness_timer_ = std::make_unique<boost::asio::steady_timer>(executor);
    wait_witness();
}

void FilterChain::wait_witness() {
    witness_timer_->expires_after(std::chrono::seconds(1));
    witness_timer_->async_wait([this](const boost::system::error_code& ec) {
        if (!ec) {
            read_witnesses();
            wait_witness();
        }
    });
}

void FilterChain::read_witnesses() {
    for (auto& e : entries_) {
        if (e.witness_fd < 0) {
            continue;
        }
        // What overflowed (the kernel's count, modulo 2^32), plus the few that fit, read and let go.
        std::array<std::uint32_t, SK_MEMINFO_VARS> meminfo{};
        socklen_t len = sizeof(meminfo);
        std::uint64_t more = 0;
        if (::getsockopt(e.witness_fd, SOL_SOCKET, SO_MEMINFO, meminfo.data(), &len) == 0) {
            more += static_cast<std::uint32_t>(meminfo[SK_MEMINFO_DROPS] - e.kernel_drops);
            e.kernel_drops = meminfo[SK_MEMINFO_DROPS];
        }
        std::array<std::uint8_t, 16> sink{};
        while (::recv(e.witness_fd, sink.data(), sink.size(), MSG_DONTWAIT | MSG_TRUNC) >= 0) {
            ++more;
        }
        if (more > 0) {
            e.dropped_in_kernel->add(more);
        }
    }
}

nlohmann::json FilterChain::status() {
    read_witnesses();
    nlohmann::json filters = nlohmann::json::array();
    for (const auto& e : entries_) {
        nlohmann::json f = {{"instance", e.slot.instance},
                            {"plugin", e.slot.plugin},
                            {"kernel", e.kernel},
                            {"kernel_instructions", e.instructions}};
        if (!e.reason.empty()) {
            f["reason"] = e.reason;
        }
        if (e.dropped_in_kernel != nullptr) {
            f["dropped_in_kernel"] = e.dropped_in_kernel->value();
        }
        // Filter::describe exists from ABI 1.3 on.
        f["describe"] = e.slot.abi_minor >= 3 ? e.slot.filter->describe() : nlohmann::json::object();
        filters.push_back(std::move(f));
    }
    nlohmann::json kernel = {{"attached", attached_},
                             {"instructions", program_.size()},
                             {"counting_drops", witness_timer_ != nullptr}};
    if (!attach_error_.empty()) {
        kernel["error"] = attach_error_;
    }
    if (!counting_error_.empty()) {
        kernel["counting_error"] = counting_error_;
    }
    return {{"kernel_program", std::move(kernel)}, {"filters", std::move(filters)}};
}

}  // namespace ctsync::core
