// SPDX-License-Identifier: GPL-2.0-or-later
#include "bpf.hpp"

#include <fmt/format.h>
#include <linux/filter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>

#include <array>
#include <cstring>

namespace filter_bpf {
namespace {

using ctsync::sdk::BpfInstruction;
using ctsync::sdk::Family;
namespace l4 = ctsync::sdk::l4;

// Where a ctnetlink message keeps what the program reads: nlmsghdr (16 bytes, host order), nfgenmsg (family
// at 16), then the attributes from 20. The netfilter subsystem is the high byte of nlmsg_type, byte 5 on a
// little-endian host (absolute loads read big-endian, so read the byte itself).
constexpr std::uint32_t kAttrsAt = 20;
constexpr std::uint32_t kFamilyAt = 16;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
constexpr std::uint32_t kSubsysAt = 5;
#else
constexpr std::uint32_t kSubsysAt = 4;
#endif
constexpr std::uint32_t kNlattr = static_cast<std::uint32_t>(SKF_AD_OFF + SKF_AD_NLATTR);
constexpr std::uint32_t kNlattrNest = static_cast<std::uint32_t>(SKF_AD_OFF + SKF_AD_NLATTR_NEST);
constexpr std::uint32_t kIpsSrcNat = 1u << 4;
constexpr std::uint32_t kIpsDstNat = 1u << 5;

// Code with symbolic forward jumps, laid out at the end (with `ja` trampolines where a conditional jump
// would reach further than its 8-bit offset).
class Emitter {
  public:
    int label() {
        labels_.push_back(-1);
        uses_.push_back(0);
        return static_cast<int>(labels_.size()) - 1;
    }
    void bind(int l) { pending_.push_back(l); }
    bool used(int l) const { return uses_[static_cast<std::size_t>(l)] > 0; }

    void stmt(std::uint16_t code, std::uint32_t k) { push({code, k, -1, -1}); }
    void cond(std::uint16_t code, std::uint32_t k, int jt, int jf) {
        ++uses_[static_cast<std::size_t>(jt)];
        ++uses_[static_cast<std::size_t>(jf)];
        push({code, k, jt, jf});
    }
    // A conditional jump to `jt` when taken; otherwise on to the next instruction.
    void jump_if(std::uint16_t code, std::uint32_t k, int jt) {
        const int next = label();
        cond(code, k, jt, next);
        bind(next);
    }
    // A conditional jump to `jf` when not taken; otherwise on to the next instruction.
    void jump_unless(std::uint16_t code, std::uint32_t k, int jf) {
        const int next = label();
        cond(code, k, next, jf);
        bind(next);
    }
    void ja(int target) {
        ++uses_[static_cast<std::size_t>(target)];
        push({static_cast<std::uint16_t>(BPF_JMP | BPF_JA), 0, target, -1});
    }
    std::size_t size() const { return code_.size(); }

    Program layout() const {
        const std::size_t n = code_.size();
        // needs[i][0] / [1]: the true / false branch of instruction i goes through a trampoline after it.
        std::vector<std::array<bool, 2>> needs(n, {false, false});
        std::vector<std::size_t> pos(n);
        for (;;) {
            std::size_t at = 0;
            for (std::size_t i = 0; i < n; ++i) {
                pos[i] = at;
                at += 1 + needs[i][0] + needs[i][1];
            }
            bool changed = false;
            for (std::size_t i = 0; i < n; ++i) {
                const Insn& in = code_[i];
                if (BPF_CLASS(in.code) != BPF_JMP || BPF_OP(in.code) == BPF_JA) {
                    continue;
                }
                for (int b = 0; b < 2; ++b) {
                    if (needs[i][b]) {
                        continue;
                    }
                    const std::size_t target = pos[target_of(b == 0 ? in.jt : in.jf)];
                    if (target - (pos[i] + 1) > 255) {
                        needs[i][b] = true;
                        changed = true;
                    }
                }
            }
            if (!changed) {
                break;
            }
        }
        Program out;
        for (std::size_t i = 0; i < n; ++i) {
            const Insn& in = code_[i];
            const std::size_t here = pos[i];
            if (BPF_CLASS(in.code) != BPF_JMP) {
                out.push_back({in.code, 0, 0, in.k});
            } else if (BPF_OP(in.code) == BPF_JA) {
                out.push_back({in.code, 0, 0, static_cast<std::uint32_t>(pos[target_of(in.jt)] - here - 1)});
            } else {
                std::size_t tramp = here + 1;
                auto offset = [&](int b, int lbl) -> std::uint8_t {
                    if (needs[i][b]) {
                        return static_cast<std::uint8_t>(tramp++ - here - 1);
                    }
                    return static_cast<std::uint8_t>(pos[target_of(lbl)] - here - 1);
                };
                const std::uint8_t jt = offset(0, in.jt);
                const std::uint8_t jf = offset(1, in.jf);
                out.push_back({in.code, jt, jf, in.k});
                for (int b = 0; b < 2; ++b) {
                    if (needs[i][b]) {
                        const std::size_t self = out.size();
                        out.push_back(
                            {static_cast<std::uint16_t>(BPF_JMP | BPF_JA), 0, 0,
                             static_cast<std::uint32_t>(pos[target_of(b == 0 ? in.jt : in.jf)] - self - 1)});
                    }
                }
            }
        }
        return out;
    }

  private:
    struct Insn {
        std::uint16_t code;
        std::uint32_t k;
        int jt;  // label (conditional jumps' true branch; ja's target)
        int jf;  // label (conditional jumps' false branch)
    };
    void push(Insn in) {
        for (int l : pending_) {
            labels_[static_cast<std::size_t>(l)] = static_cast<int>(code_.size());
        }
        pending_.clear();
        code_.push_back(in);
    }
    std::size_t target_of(int lbl) const {
        return static_cast<std::size_t>(labels_[static_cast<std::size_t>(lbl)]);
    }

    std::vector<Insn> code_;
    std::vector<int> labels_;
    std::vector<int> uses_;
    std::vector<int> pending_;
};

std::uint32_t be32(const std::uint8_t* p) {
    return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

class Compiler {
  public:
    explicit Compiler(Emitter& e) : e_(e) {}

    void gen(const Node& n, int t, int f, int u) {
        if (e_.size() > kMaxProgram) {
            return;  // too large already: the caller gives up
        }
        switch (n.kind) {
            case Node::Kind::kAnd:
                gen_and(n, t, f, u);
                return;
            case Node::Kind::kOr:
                gen_or(n, t, f, u);
                return;
            case Node::Kind::kNot:
                gen(*n.kids[0], f, t, u);
                return;
            default:
                if (!decided_in_kernel(n.kind)) {
                    e_.ja(u);
                    return;
                }
                gen_atom(n, t, f, u);
                return;
        }
    }

  private:
    // Kleene's and: false as soon as one is false; true only if all are true; unknown otherwise. Each kid
    // after the first may be reached with "so far true" or "so far unknown"; the second copy exists only
    // when the two outcomes differ (t != u) and something jumps to it.
    void gen_and(const Node& n, int t, int f, int u) {
        int cur_n = -1;
        int cur_u = -1;
        for (std::size_t i = 0; i < n.kids.size(); ++i) {
            const bool last = i + 1 == n.kids.size();
            const int next_n = last ? t : e_.label();
            const int next_u = last ? u : (t == u ? next_n : e_.label());
            if (i == 0) {
                gen(*n.kids[i], next_n, f, next_u);
            } else {
                if (e_.used(cur_n)) {  // no copy for a path nothing reaches
                    e_.bind(cur_n);
                    gen(*n.kids[i], next_n, f, next_u);
                }
                if (cur_u != cur_n && e_.used(cur_u)) {
                    e_.bind(cur_u);
                    gen(*n.kids[i], next_u, f, next_u);
                }
            }
            cur_n = next_n;
            cur_u = next_u;
        }
    }
    void gen_or(const Node& n, int t, int f, int u) {
        int cur_n = -1;
        int cur_u = -1;
        for (std::size_t i = 0; i < n.kids.size(); ++i) {
            const bool last = i + 1 == n.kids.size();
            const int next_n = last ? f : e_.label();
            const int next_u = last ? u : (f == u ? next_n : e_.label());
            if (i == 0) {
                gen(*n.kids[i], t, next_n, next_u);
            } else {
                if (e_.used(cur_n)) {
                    e_.bind(cur_n);
                    gen(*n.kids[i], t, next_n, next_u);
                }
                if (cur_u != cur_n && e_.used(cur_u)) {
                    e_.bind(cur_u);
                    gen(*n.kids[i], t, next_u, next_u);
                }
            }
            cur_n = next_n;
            cur_u = next_u;
        }
    }

    // A = offset of top-level attribute `type`; jumps to `miss` when absent.
    void find_top(std::uint32_t type, int miss) {
        e_.stmt(BPF_LD | BPF_IMM, kAttrsAt);
        e_.stmt(BPF_LDX | BPF_IMM, type);
        e_.stmt(BPF_LD | BPF_W | BPF_ABS, kNlattr);
        e_.jump_if(BPF_JMP | BPF_JEQ | BPF_K, 0, miss);
    }
    // A = offset of attribute `type` nested in the attribute at A; jumps to `miss` when absent.
    void find_nested(std::uint32_t type, int miss) {
        e_.stmt(BPF_LDX | BPF_IMM, type);
        e_.stmt(BPF_LD | BPF_W | BPF_ABS, kNlattrNest);
        e_.jump_if(BPF_JMP | BPF_JEQ | BPF_K, 0, miss);
    }
    void tuple(Dir d, int miss) { find_top(d == Dir::kOrig ? CTA_TUPLE_ORIG : CTA_TUPLE_REPLY, miss); }

    void gen_atom(const Node& n, int t, int f, int u) {
        switch (n.kind) {
            case Node::Kind::kFamily:
                e_.stmt(BPF_LD | BPF_B | BPF_ABS, kFamilyAt);
                e_.cond(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(n.family), t, f);
                return;
            case Node::Kind::kProto:
                tuple(Dir::kOrig, u);
                find_nested(CTA_TUPLE_PROTO, u);
                find_nested(CTA_PROTO_NUM, u);
                e_.stmt(BPF_MISC | BPF_TAX, 0);
                e_.stmt(BPF_LD | BPF_B | BPF_IND, 4);
                e_.cond(BPF_JMP | BPF_JEQ | BPF_K, n.proto, t, f);
                return;
            case Node::Kind::kNet: {
                if (n.prefix == 0) {
                    // Any address of the family: the family byte decides.
                    e_.stmt(BPF_LD | BPF_B | BPF_ABS, kFamilyAt);
                    e_.cond(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(n.family), t, f);
                    return;
                }
                const bool v4 = n.family == Family::kIpv4;
                const std::uint32_t attr = v4 ? (n.side == Side::kSrc ? CTA_IP_V4_SRC : CTA_IP_V4_DST)
                                              : (n.side == Side::kSrc ? CTA_IP_V6_SRC : CTA_IP_V6_DST);
                tuple(n.dir, u);
                find_nested(CTA_TUPLE_IP, u);
                find_nested(attr, f);  // the other family's address attributes
                e_.stmt(BPF_MISC | BPF_TAX, 0);
                const unsigned words = (n.prefix + 31) / 32;
                for (unsigned w = 0; w < words; ++w) {
                    const unsigned bits = std::min(32u, n.prefix - 32 * w);
                    const std::uint32_t mask = bits == 32 ? 0xffffffffu : ~(0xffffffffu >> bits);
                    e_.stmt(BPF_LD | BPF_W | BPF_IND, 4 + 4 * w);
                    if (mask != 0xffffffffu) {
                        e_.stmt(BPF_ALU | BPF_AND | BPF_K, mask);
                    }
                    const std::uint32_t value = be32(n.address.bytes.data() + 4 * w) & mask;
                    if (w + 1 == words) {
                        e_.cond(BPF_JMP | BPF_JEQ | BPF_K, value, t, f);
                    } else {
                        e_.jump_unless(BPF_JMP | BPF_JEQ | BPF_K, value, f);
                    }
                }
                return;
            }
            case Node::Kind::kPort: {
                const int no_port = e_.label();
                tuple(n.dir, u);
                find_nested(CTA_TUPLE_PROTO, u);
                find_nested(n.side == Side::kSrc ? CTA_PROTO_SRC_PORT : CTA_PROTO_DST_PORT, no_port);
                e_.stmt(BPF_MISC | BPF_TAX, 0);
                e_.stmt(BPF_LD | BPF_H | BPF_IND, 4);
                if (n.lo == n.hi) {
                    e_.cond(BPF_JMP | BPF_JEQ | BPF_K, n.lo, t, f);
                } else {
                    if (n.lo > 0) {
                        e_.jump_unless(BPF_JMP | BPF_JGE | BPF_K, n.lo, f);
                    }
                    if (n.hi < 65535) {
                        e_.cond(BPF_JMP | BPF_JGT | BPF_K, n.hi, f, t);
                    } else {
                        e_.ja(t);
                    }
                }
                // No port attribute: false for a protocol without ports (ICMP's identifier is no port);
                // unknown for one with ports that the kernel tracks without them (its generic tracker,
                // when that protocol's is not built), which the process reads as port 0.
                e_.bind(no_port);
                tuple(n.dir, u);
                find_nested(CTA_TUPLE_PROTO, u);
                find_nested(CTA_PROTO_NUM, u);
                e_.stmt(BPF_MISC | BPF_TAX, 0);
                e_.stmt(BPF_LD | BPF_B | BPF_IND, 4);
                for (std::uint8_t p : {l4::kTcp, l4::kUdp, l4::kUdplite, l4::kSctp, l4::kDccp, l4::kGre}) {
                    e_.jump_if(BPF_JMP | BPF_JEQ | BPF_K, p, u);
                }
                e_.ja(f);
                return;
            }
            case Node::Kind::kZone: {
                // CTA_ZONE for a zone of both directions; a zone of one direction only inside that
                // direction's tuple (CTA_TUPLE_ZONE); nothing for zone 0.
                const int no_zone = e_.label();
                const int no_orig_zone = e_.label();
                const int zone_zero = e_.label();
                const int compare = e_.label();
                find_top(CTA_ZONE, no_zone);
                e_.ja(compare);
                e_.bind(no_zone);
                tuple(Dir::kOrig, u);
                find_nested(CTA_TUPLE_ZONE, no_orig_zone);
                e_.ja(compare);
                e_.bind(no_orig_zone);
                tuple(Dir::kReply, u);
                find_nested(CTA_TUPLE_ZONE, zone_zero);
                e_.ja(compare);
                e_.bind(zone_zero);
                e_.ja(n.zone == 0 ? t : f);
                e_.bind(compare);
                e_.stmt(BPF_MISC | BPF_TAX, 0);
                e_.stmt(BPF_LD | BPF_H | BPF_IND, 4);
                e_.cond(BPF_JMP | BPF_JEQ | BPF_K, n.zone, t, f);
                return;
            }
            case Node::Kind::kNat:
                find_top(CTA_STATUS, u);
                e_.stmt(BPF_MISC | BPF_TAX, 0);
                e_.stmt(BPF_LD | BPF_W | BPF_IND, 4);
                e_.cond(BPF_JMP | BPF_JSET | BPF_K, n.snat ? kIpsSrcNat : kIpsDstNat, t, f);
                return;
            default:
                e_.ja(u);
                return;
        }
    }
    Emitter& e_;
};

// ---- interpreter ----

std::uint16_t host16(const std::uint8_t* p) {
    std::uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

// nla_find() over [at, at + len): the offset of the first attribute of `type`, or 0.
std::uint32_t nla_find(std::span<const std::uint8_t> pkt, std::size_t at, long len, std::uint32_t type) {
    constexpr std::uint16_t kTypeMask = static_cast<std::uint16_t>(~(NLA_F_NESTED | NLA_F_NET_BYTEORDER));
    while (len >= 4) {
        const std::uint16_t nla_len = host16(pkt.data() + at);
        if (nla_len < 4 || nla_len > len) {
            return 0;
        }
        if ((host16(pkt.data() + at + 2) & kTypeMask) == type) {
            return static_cast<std::uint32_t>(at);
        }
        const long step = (nla_len + 3) & ~3L;
        at += static_cast<std::size_t>(step);
        len -= step;
    }
    return 0;
}

std::uint32_t ancillary(std::uint32_t k, std::uint32_t a, std::uint32_t x, std::span<const std::uint8_t> p,
                        bool& ok) {
    const std::size_t len = p.size();
    if (k == kNlattr) {
        if (len < 4 || a > len - 4) {
            return 0;
        }
        return nla_find(p, a, static_cast<long>(len - a), x);
    }
    if (k == kNlattrNest) {
        if (len < 4 || a > len - 4) {
            return 0;
        }
        const std::uint16_t nla_len = host16(p.data() + a);
        if (nla_len > len - a) {
            return 0;
        }
        return nla_find(p, a + 4, static_cast<long>(nla_len) - 4, x);
    }
    if (k == static_cast<std::uint32_t>(SKF_AD_OFF + SKF_AD_PROTOCOL) ||
        k == static_cast<std::uint32_t>(SKF_AD_OFF + SKF_AD_PKTTYPE)) {
        return 0;  // netlink skbs carry neither
    }
    ok = false;
    return 0;
}

bool load(std::span<const std::uint8_t> p, std::uint64_t at, unsigned size, std::uint32_t& out) {
    if (at + size > p.size()) {
        return false;
    }
    out = 0;
    for (unsigned i = 0; i < size; ++i) {
        out = out << 8 | p[at + i];
    }
    return true;
}

}  // namespace

std::optional<Program> compile(const Node& node, std::string& why) {
    Emitter e;
    const int accept = e.label();
    const int drop = e.label();
    // Anything but a conntrack flow event (an expectation, a short message) goes to the process.
    e.stmt(BPF_LD | BPF_W | BPF_LEN, 0);
    e.jump_unless(BPF_JMP | BPF_JGE | BPF_K, kAttrsAt, accept);
    e.stmt(BPF_LD | BPF_B | BPF_ABS, kSubsysAt);
    e.jump_unless(BPF_JMP | BPF_JEQ | BPF_K, NFNL_SUBSYS_CTNETLINK, accept);
    Compiler(e).gen(node, accept, drop, accept);
    if (e.size() > kMaxProgram) {
        why = fmt::format("the compiled program would exceed {} instructions", kMaxProgram);
        return std::nullopt;
    }
    e.bind(drop);
    e.stmt(BPF_RET | BPF_K, kDrop);
    e.bind(accept);
    e.stmt(BPF_RET | BPF_K, kAccept);
    Program out = e.layout();
    if (out.size() > kMaxProgram) {
        why = fmt::format("the compiled program would exceed {} instructions", kMaxProgram);
        return std::nullopt;
    }
    return out;
}

bool check(std::span<const BpfInstruction> prog, std::string& error) {
    if (prog.empty() || prog.size() > BPF_MAXINSNS) {
        error =
            fmt::format("a classic program has 1 to {} instructions, found {}", BPF_MAXINSNS, prog.size());
        return false;
    }
    // The opcodes the kernel accepts (net/core/filter.c, chk_code_allowed).
    auto allowed = [](std::uint16_t code) {
        switch (code) {
            case BPF_ALU | BPF_ADD | BPF_K:
            case BPF_ALU | BPF_ADD | BPF_X:
            case BPF_ALU | BPF_SUB | BPF_K:
            case BPF_ALU | BPF_SUB | BPF_X:
            case BPF_ALU | BPF_MUL | BPF_K:
            case BPF_ALU | BPF_MUL | BPF_X:
            case BPF_ALU | BPF_DIV | BPF_K:
            case BPF_ALU | BPF_DIV | BPF_X:
            case BPF_ALU | BPF_MOD | BPF_K:
            case BPF_ALU | BPF_MOD | BPF_X:
            case BPF_ALU | BPF_AND | BPF_K:
            case BPF_ALU | BPF_AND | BPF_X:
            case BPF_ALU | BPF_OR | BPF_K:
            case BPF_ALU | BPF_OR | BPF_X:
            case BPF_ALU | BPF_XOR | BPF_K:
            case BPF_ALU | BPF_XOR | BPF_X:
            case BPF_ALU | BPF_LSH | BPF_K:
            case BPF_ALU | BPF_LSH | BPF_X:
            case BPF_ALU | BPF_RSH | BPF_K:
            case BPF_ALU | BPF_RSH | BPF_X:
            case BPF_ALU | BPF_NEG:
            case BPF_LD | BPF_W | BPF_ABS:
            case BPF_LD | BPF_H | BPF_ABS:
            case BPF_LD | BPF_B | BPF_ABS:
            case BPF_LD | BPF_W | BPF_IND:
            case BPF_LD | BPF_H | BPF_IND:
            case BPF_LD | BPF_B | BPF_IND:
            case BPF_LD | BPF_W | BPF_LEN:
            case BPF_LD | BPF_W | BPF_MEM:
            case BPF_LD | BPF_IMM:
            case BPF_LDX | BPF_W | BPF_LEN:
            case BPF_LDX | BPF_W | BPF_MEM:
            case BPF_LDX | BPF_IMM:
            case BPF_LDX | BPF_B | BPF_MSH:
            case BPF_ST:
            case BPF_STX:
            case BPF_MISC | BPF_TAX:
            case BPF_MISC | BPF_TXA:
            case BPF_RET | BPF_K:
            case BPF_RET | BPF_A:
            case BPF_JMP | BPF_JA:
            case BPF_JMP | BPF_JEQ | BPF_K:
            case BPF_JMP | BPF_JEQ | BPF_X:
            case BPF_JMP | BPF_JGE | BPF_K:
            case BPF_JMP | BPF_JGE | BPF_X:
            case BPF_JMP | BPF_JGT | BPF_K:
            case BPF_JMP | BPF_JGT | BPF_X:
            case BPF_JMP | BPF_JSET | BPF_K:
            case BPF_JMP | BPF_JSET | BPF_X:
                return true;
            default:
                return false;
        }
    };
    for (std::size_t pc = 0; pc < prog.size(); ++pc) {
        const auto& in = prog[pc];
        auto bad = [&](const char* what) {
            error = fmt::format("instruction {} (code 0x{:02x}): {}", pc, in.code, what);
            return false;
        };
        if (!allowed(in.code)) {
            return bad("not an opcode the kernel accepts");
        }
        switch (BPF_CLASS(in.code)) {
            case BPF_LD:
            case BPF_LDX:
                if (BPF_MODE(in.code) == BPF_MEM && in.k >= BPF_MEMWORDS) {
                    return bad("scratch memory index out of range");
                }
                if (BPF_CLASS(in.code) == BPF_LD && BPF_MODE(in.code) == BPF_ABS &&
                    in.k >= static_cast<std::uint32_t>(SKF_AD_OFF) && in.k != kNlattr &&
                    in.k != kNlattrNest && in.k != static_cast<std::uint32_t>(SKF_AD_OFF + SKF_AD_PROTOCOL) &&
                    in.k != static_cast<std::uint32_t>(SKF_AD_OFF + SKF_AD_PKTTYPE)) {
                    return bad("an extension load this interpreter does not implement");
                }
                break;
            case BPF_ST:
            case BPF_STX:
                if (in.k >= BPF_MEMWORDS) {
                    return bad("scratch memory index out of range");
                }
                break;
            case BPF_ALU:
                if ((BPF_OP(in.code) == BPF_DIV || BPF_OP(in.code) == BPF_MOD) && BPF_SRC(in.code) == BPF_K &&
                    in.k == 0) {
                    return bad("division by the constant 0");
                }
                if ((BPF_OP(in.code) == BPF_LSH || BPF_OP(in.code) == BPF_RSH) && BPF_SRC(in.code) == BPF_K &&
                    in.k >= 32) {
                    return bad("a shift by 32 or more");
                }
                break;
            case BPF_JMP:
                if (BPF_OP(in.code) == BPF_JA) {
                    if (in.k >= prog.size() - pc - 1) {
                        return bad("jump past the end");
                    }
                } else if (pc + 1 + in.jt >= prog.size() || pc + 1 + in.jf >= prog.size()) {
                    return bad("jump past the end");
                }
                break;
            default:
                break;
        }
    }
    if (BPF_CLASS(prog.back().code) != BPF_RET) {
        error = "the last instruction is not a return";
        return false;
    }
    return true;
}

std::uint32_t run(std::span<const BpfInstruction> prog, std::span<const std::uint8_t> p) {
    std::uint32_t a = 0;
    std::uint32_t x = 0;
    std::array<std::uint32_t, BPF_MEMWORDS> mem{};
    for (std::size_t pc = 0; pc < prog.size(); ++pc) {
        const auto& in = prog[pc];
        const std::uint32_t src = BPF_SRC(in.code) == BPF_X ? x : in.k;
        switch (BPF_CLASS(in.code)) {
            case BPF_LD:
            case BPF_LDX: {
                const bool to_x = BPF_CLASS(in.code) == BPF_LDX;
                std::uint32_t v = 0;
                const unsigned size = BPF_SIZE(in.code) == BPF_W ? 4 : BPF_SIZE(in.code) == BPF_H ? 2 : 1;
                switch (BPF_MODE(in.code)) {
                    case BPF_IMM:
                        v = in.k;
                        break;
                    case BPF_LEN:
                        v = static_cast<std::uint32_t>(p.size());
                        break;
                    case BPF_MEM:
                        v = mem[in.k];
                        break;
                    case BPF_ABS:
                        if (in.k >= static_cast<std::uint32_t>(SKF_AD_OFF)) {
                            bool ok = true;
                            v = ancillary(in.k, a, x, p, ok);
                            if (!ok) {
                                return 0;
                            }
                        } else if (!load(p, in.k, size, v)) {
                            return 0;
                        }
                        break;
                    case BPF_IND:
                        if (!load(p, static_cast<std::uint32_t>(x + in.k), size, v)) {
                            return 0;
                        }
                        break;
                    case BPF_MSH: {
                        std::uint32_t b = 0;
                        if (!load(p, in.k, 1, b)) {
                            return 0;
                        }
                        v = (b & 0xf) << 2;
                        break;
                    }
                    default:
                        return 0;
                }
                (to_x ? x : a) = v;
                break;
            }
            case BPF_ST:
                mem[in.k] = a;
                break;
            case BPF_STX:
                mem[in.k] = x;
                break;
            case BPF_ALU:
                switch (BPF_OP(in.code)) {
                    case BPF_ADD:
                        a += src;
                        break;
                    case BPF_SUB:
                        a -= src;
                        break;
                    case BPF_MUL:
                        a *= src;
                        break;
                    case BPF_DIV:
                        if (src == 0) {
                            return 0;
                        }
                        a /= src;
                        break;
                    case BPF_MOD:
                        if (src == 0) {
                            return 0;
                        }
                        a %= src;
                        break;
                    case BPF_OR:
                        a |= src;
                        break;
                    case BPF_AND:
                        a &= src;
                        break;
                    case BPF_XOR:
                        a ^= src;
                        break;
                    case BPF_LSH:
                        a <<= src & 31;  // as the kernel's x86 JIT masks a register count
                        break;
                    case BPF_RSH:
                        a >>= src & 31;
                        break;
                    case BPF_NEG:
                        a = 0u - a;
                        break;
                    default:
                        return 0;
                }
                break;
            case BPF_JMP: {
                if (BPF_OP(in.code) == BPF_JA) {
                    pc += in.k;
                    break;
                }
                bool taken = false;
                switch (BPF_OP(in.code)) {
                    case BPF_JEQ:
                        taken = a == src;
                        break;
                    case BPF_JGT:
                        taken = a > src;
                        break;
                    case BPF_JGE:
                        taken = a >= src;
                        break;
                    case BPF_JSET:
                        taken = (a & src) != 0;
                        break;
                    default:
                        return 0;
                }
                pc += taken ? in.jt : in.jf;
                break;
            }
            case BPF_RET:
                return BPF_RVAL(in.code) == BPF_A ? a : BPF_RVAL(in.code) == BPF_X ? x : in.k;
            case BPF_MISC:
                if (in.code == (BPF_MISC | BPF_TAX)) {
                    x = a;
                } else {
                    a = x;
                }
                break;
            default:
                return 0;
        }
    }
    return 0;
}

std::string disassemble(std::span<const BpfInstruction> prog) {
    std::string out;
    for (std::size_t pc = 0; pc < prog.size(); ++pc) {
        const auto& in = prog[pc];
        std::string text;
        auto k_or_x = [&] {
            return BPF_SRC(in.code) == BPF_X ? std::string("x") : fmt::format("#0x{:x}", in.k);
        };
        const char* sz = BPF_SIZE(in.code) == BPF_W ? "" : BPF_SIZE(in.code) == BPF_H ? "h" : "b";
        switch (BPF_CLASS(in.code)) {
            case BPF_LD:
            case BPF_LDX: {
                const char* op = BPF_CLASS(in.code) == BPF_LDX ? "ldx" : "ld";
                switch (BPF_MODE(in.code)) {
                    case BPF_IMM:
                        text = fmt::format("{:<8} #0x{:x}", op, in.k);
                        break;
                    case BPF_LEN:
                        text = fmt::format("{:<8} #pktlen", op);
                        break;
                    case BPF_MEM:
                        text = fmt::format("{:<8} M[{}]", op, in.k);
                        break;
                    case BPF_ABS:
                        if (in.k == kNlattr) {
                            text = fmt::format("{:<8} #nla", op);
                        } else if (in.k == kNlattrNest) {
                            text = fmt::format("{:<8} #nlan", op);
                        } else {
                            text = fmt::format("{:<8} [{}]", fmt::format("{}{}", op, sz), in.k);
                        }
                        break;
                    case BPF_IND:
                        text = fmt::format("{:<8} [x + {}]", fmt::format("{}{}", op, sz), in.k);
                        break;
                    case BPF_MSH:
                        text = fmt::format("{:<8} 4*([{}]&0xf)", "ldxb", in.k);
                        break;
                    default:
                        text = "?";
                }
                break;
            }
            case BPF_ST:
                text = fmt::format("{:<8} M[{}]", "st", in.k);
                break;
            case BPF_STX:
                text = fmt::format("{:<8} M[{}]", "stx", in.k);
                break;
            case BPF_ALU: {
                static const char* const kOps[] = {"add", "sub", "mul", "div", "or", "and",
                                                   "lsh", "rsh", "neg", "mod", "xor"};
                const unsigned op = BPF_OP(in.code) >> 4;
                text = op == 8 ? std::string("neg")
                               : fmt::format("{:<8} {}", op < 11 ? kOps[op] : "?", k_or_x());
                break;
            }
            case BPF_JMP: {
                if (BPF_OP(in.code) == BPF_JA) {
                    text = fmt::format("{:<8} {}", "ja", pc + 1 + in.k);
                    break;
                }
                static const char* const kOps[] = {"ja", "jeq", "jgt", "jge", "jset"};
                const unsigned op = BPF_OP(in.code) >> 4;
                text = fmt::format("{:<8} {:<12} jt {}\tjf {}", op < 5 ? kOps[op] : "?", k_or_x(),
                                   pc + 1 + in.jt, pc + 1 + in.jf);
                break;
            }
            case BPF_RET:
                text = BPF_RVAL(in.code) == BPF_A ? std::string("ret      a")
                                                  : fmt::format("{:<8} #{}", "ret", in.k);
                break;
            case BPF_MISC:
                text = in.code == (BPF_MISC | BPF_TAX) ? "tax" : "txa";
                break;
        }
        out += fmt::format("({:03}) {}\n", pc, text);
    }
    return out;
}

}  // namespace filter_bpf
