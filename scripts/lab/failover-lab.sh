#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The failover lab (issues #5, #11): live, NATed TCP connections over IPv4 and IPv6, TCP connections in their
# closing states, a UDP session and (with --sctp, in the test VM) an SCTP association through a stateful
# firewall pair survive a hard failover, with the new primary's kernel table complete before the virtual IPs
# move.
#
#   cli 192.0.2.10 ── LAN bridge ──┬── fw1 192.0.2.2 ─┐ sync veth 198.51.100.1/30 ─ .2/30 ┌─ fw2 192.0.2.3 ─┐
#   (gw: LAN VIP 192.0.2.1)        │                  └────────────────────────────────────┘                │
#   srv 203.0.113.10 ── WAN bridge ┴── fw1 203.0.113.2                                  fw2 203.0.113.3 ───┘
#   (VIPs 192.0.2.1 and 203.0.113.1 on the VRRP master; both bridges live in the "sw" namespace)
#   IPv6 alongside: LAN fd00:2::/64 (cli ::10, fw1 ::2, fw2 ::3, VIP ::1, the client's gateway), WAN
#   fd00:3::/64 (srv ::10, fw1 ::2, fw2 ::3, VIP ::1, the SNAT address); static, no router advertisements.
#
# Each firewall: nftables with a policy that makes the test honest (a backup without the state drops the
# stream instead of silently adopting it: non-SYN "new" TCP dropped, nf_conntrack_tcp_loose=0, input policy
# drop so that its own stack never answers with RST), SNAT of everything leaving the WAN side to the WAN VIP
# with `fully-random` port selection: a firewall without the connection's state picks a different source
# port for the next datagram of a UDP session, so the server sees another peer and the session is broken —
# only a firewall that holds the replicated NAT binding keeps the mapping. keepalived (VRRP sync group G1 of
# VI_LAN and VI_WAN, priorities 254/253, preempt) and ctsyncd (the build's binaries: source-ctnetlink,
# proto-tcp, proto-udp, proto-sctp, one
# transport over the sync veth, a key file, and in `--ha fifo` mode the ha-keepalived plugin, which reads
# keepalived's notify FIFO and holds this node's priority down through a track file until its table is
# complete).
#
# The run: a TCP stream (IPv4 and IPv6) and a UDP stream from cli to srv (a line / datagram every 20 ms, each
# echoed), three TCP connections in closing states (below), then a hard failover — every port of fw1 is cut (the switch-side ends of its LAN and WAN veths, and fw2's end of
# the sync veth, are set down: fw1 sees carrier loss everywhere) — measured from the cut until both VIPs are
# on fw2; the streams must go on with nothing lost. `--failback` restores fw1's ports and waits until fw1 is
# master again (it must not preempt before its table is complete). Verdicts: SURVIVED or BROKEN, the gap in
# milliseconds, and whether the gap stays within VRRP takeover + one TCP retransmission interval.
#
# Closing states (conntrack's names; docs in plugins/proto-tcp/README.md): a half-closed connection (:8081,
# the client's FIN at the start, the server streams on: CLOSE_WAIT) must go on streaming through the failover
# and end with a clean EOF; a connection in FIN_WAIT (:8082) and one in TIME_WAIT (:8083), both made right
# before the cut while the server's namespace holds back the answer to the client's FIN resp. the client's
# last ACK, must finish their close through fw2 once the hold is lifted at the takeover (the retransmitted FIN
# answered, the server's LAST-ACK socket answered): CLOSED, as without a failover. Without the state, fw2
# drops those retransmissions (BROKEN: the client never sees the EOF, the server's socket stays in LAST-ACK).
#
# SCTP (--sctp; docs in plugins/proto-sctp/README.md): one association (:8090, SOCK_STREAM, a line every
# 20 ms, echoed), NATed like the TCP stream; both firewalls also drop `ct state new` SCTP packets whose first
# chunk is not INIT, so fw2 passes it only with the replicated state and both verification tags. Its RESULT
# line counts fw2's "invalid" and "non-INIT new" drops.
#
# With `--sync conntrackd` the peer does the replication instead: conntrackd (FTFW over UDP on the sync veth,
# one per firewall in the foreground, its own lock file and socket), and keepalived's notify_master/backup/fault
# run Debian's own example script (conntrackd's doc/sync/primary-backup.sh: -c, -f, -R, -B on primary; -s, -t,
# -n on backup; -t on fault), copied into the lab's directory with its CONNTRACKD_BIN/CONFIG/LOCK set; its
# conntrackd calls go through a wrapper that logs when each starts and ends (the promotion's commit time).
#
# Usage: scripts/lab/failover-lab.sh [options]     (root; keepalived, nft, conntrack installed)
#   --sync ctsync|conntrackd|none
#                          state replication by ctsyncd (default), by conntrackd (the peer: FTFW over UDP, Debian's
#                          primary-backup.sh as keepalived's notify script), or
#                          none at all (the streams must break)
#   --cd-warm              with --sync conntrackd: `DisableExternalCache On` (the backup writes every entry
#                          into its kernel as it arrives); default Off (external cache, committed by `-c`
#                          when keepalived makes the backup master)
#   --ha fifo|script       ctsyncd follows keepalived through the ha-keepalived plugin (default) or
#                          keepalived's notify scripts call contrib/keepalived/primary-backup.sh
#   --transport mcast|tcp  ctsync transport on the sync veth (default mcast)
#   --standby warm|cold    ctsyncd's failover.standby (default: the daemon's default, warm)
#   --advert-int N         VRRP advertisement interval in seconds (default 1)
#   --failback             restore fw1 after the failover and wait until it is master again
#   --entries N            inject N NATed entries into fw1's kernel before the failover; measure how many are
#                          in fw2's kernel when the VIPs appear there (the failover waits, at most 120 s, until
#                          fw2 holds them: ctsync's or conntrackd's external cache, with --cd-warm its kernel)
#   --sctp                 an SCTP stream too (:8090, one association, SOCK_STREAM; the firewalls drop SCTP
#                          packets that would start an entry with any chunk but INIT, so only replicated state
#                          passes): needs a kernel with SCTP, i.e. the test VM (tests/lab/failover_lab_vm_test.cpp
#                          runs `scripts/vm/vm-run.sh -- scripts/lab/failover-lab.sh --sctp ...`)
#   --udp-burst N          before the failover, N one-shot UDP queries (DNS-like, each from its own port) from
#                          cli to srv (default 200, 0: none); with ctsync, fw2 must not receive any of them
#                          (proto-udp sends only assured UDP flows) and fw1 must count them held back
#   --build DIR            build directory (default $CTSYNC_BUILD or $CTSYNC_BUILD_DIR or <repo>/build)
#   --prefix P             namespace name prefix (default $CTSYNC_LAB_PREFIX or ctlab<pid>-)
#   --keep                 leave the lab running at the end and print how to remove it
#   --quiet                print only RESULT lines (and errors)
#   --demo                 narrative for humans, live replication progress every second
# Output: narrative lines, and "RESULT ..." lines for machines (tests/lab/failover_lab_test.cpp reads them).
# Exit: 0 when every verdict is SURVIVED or CLOSED (with ctsync, the burst's queries answered and not sent; when asked for, fw1 came back and the entries were in fw2's
# kernel before the VIPs moved); 1 otherwise (--sync none: BROKEN, exit 1, as expected); 2 on usage or
# set-up errors. Every wait is bounded; namespaces, processes (by PID) and files are removed on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=bench/conntrackd_conf.sh
source "${ROOT}/bench/conntrackd_conf.sh"
SYNC=ctsync
HA=fifo
TRANSPORT=mcast
STANDBY=""
CD_WARM=0
ADVERT_INT=1
FAILBACK=0
ENTRIES=0
UDP_BURST=200
SCTP=0
BUILD="${CTSYNC_BUILD:-${CTSYNC_BUILD_DIR:-${ROOT}/build}}"
PREFIX="${CTSYNC_LAB_PREFIX:-ctlab$$-}"
KEEP=0
QUIET=0
DEMO=0
INTERVAL_MS=20

usage() { sed -n '/^# Usage:/,/^# set-up errors/p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while (($#)); do
    case "$1" in
        --sync) SYNC="${2:?}"; shift ;;
        --ha) HA="${2:?}"; shift ;;
        --transport) TRANSPORT="${2:?}"; shift ;;
        --standby) STANDBY="${2:?}"; shift ;;
        --cd-warm) CD_WARM=1 ;;
        --advert-int) ADVERT_INT="${2:?}"; shift ;;
        --failback) FAILBACK=1 ;;
        --entries) ENTRIES="${2:?}"; shift ;;
        --udp-burst) UDP_BURST="${2:?}"; shift ;;
        --sctp) SCTP=1 ;;
        --build) BUILD="${2:?}"; shift ;;
        --prefix) PREFIX="${2:?}"; shift ;;
        --keep) KEEP=1 ;;
        --quiet) QUIET=1 ;;
        --demo) DEMO=1 ;;
        -h|--help) usage ;;
        *) echo "failover-lab: unknown option $1" >&2; usage ;;
    esac
    shift
done
[[ ${SYNC} =~ ^(ctsync|conntrackd|none)$ && ${HA} =~ ^(fifo|script)$ && ${TRANSPORT} =~ ^(mcast|tcp)$ &&
    ${STANDBY} =~ ^(|warm|cold)$ && ${ADVERT_INT} =~ ^[1-9][0-9]*$ && ${ENTRIES} =~ ^[0-9]+$ &&
    ${UDP_BURST} =~ ^[0-9]+$ ]] || usage
((CD_WARM == 0)) || [[ ${SYNC} == conntrackd ]] || { echo "failover-lab: --cd-warm needs --sync conntrackd" >&2; exit 2; }
[[ ${SYNC} != conntrackd || ${HA} == fifo ]] || { echo "failover-lab: --ha is for ctsync (conntrackd always runs its notify script)" >&2; exit 2; }
((ENTRIES <= 250000)) || { echo "failover-lab: --entries at most 250000 (nf_conntrack_max)" >&2; exit 2; }
((QUIET && DEMO)) && QUIET=0

BIN="${BUILD}/bin"
CTSYNCD="${BIN}/ctsyncd"
CTSYNCCTL="${BIN}/ctsyncctl"
LAB_PEER="${BIN}/lab-peer"
CT_INJECT="${BIN}/ct-inject"
PRIMARY_BACKUP="${ROOT}/contrib/keepalived/primary-backup.sh"
CD_EXAMPLE=/usr/share/doc/conntrackd/examples/sync/primary-backup.sh  # Debian's conntrackd package

say() { ((QUIET)) || printf '%s\n' "$*"; }
explain() { ((DEMO)) && printf '    # %s\n' "$*"; return 0; }  # demo mode: what is going on, for humans
step() { ((QUIET)) || printf '\n==> %s\n' "$*"; }
result() { printf 'RESULT %s\n' "$*"; }
die() { printf 'failover-lab: %s\n' "$*" >&2; exit 2; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

[[ ${EUID} -eq 0 ]] || die "must run as root (network namespaces)"
for tool in ip nft conntrack keepalived sysctl; do
    command -v "${tool}" >/dev/null || die "${tool} is not installed (scripts/install-deps.sh installs it)"
done
[[ -x ${LAB_PEER} ]] || die "${LAB_PEER} is missing: build it first"
((SCTP == 0)) || [[ -d /proc/sys/net/sctp ]] || modprobe -q sctp 2>/dev/null ||
    die "--sctp needs a kernel with SCTP (this one has no sctp module): run the lab in the test VM, scripts/vm/vm-run.sh -- $0 --sctp ..."
((ENTRIES == 0)) || [[ -x ${CT_INJECT} ]] || die "${CT_INJECT} is missing: build it first"
if [[ ${SYNC} == ctsync ]]; then
    for f in "${CTSYNCD}" "${CTSYNCCTL}"; do [[ -x ${f} ]] || die "${f} is missing: build it first"; done
    [[ ${HA} == fifo || -x ${PRIMARY_BACKUP} ]] || die "${PRIMARY_BACKUP} is missing or not executable"
elif [[ ${SYNC} == conntrackd ]]; then
    CONNTRACKD="$(command -v conntrackd)" || die "conntrackd is not installed (Debian: apt-get install conntrackd)"
    [[ -f ${CD_EXAMPLE} || -f ${CD_EXAMPLE}.gz ]] || die "${CD_EXAMPLE} is missing (Debian's conntrackd package ships it)"
fi
KEEPALIVED="$(command -v keepalived)"

WORK="$(mktemp -d /tmp/ctlab-XXXXXX)"
PIDS=()
NAMESPACES=()

# Ends what this run started, by PID (SIGTERM first: keepalived removes its addresses, ctsyncd its files),
# then what still runs inside the namespaces it created (notify scripts keepalived started), then deletes
# those namespaces. Background processes are started as `ip netns exec NS PROGRAM &`: ip execs the program,
# so $! is the program's own PID.
cleanup() {
    local pid ns
    for pid in "${PIDS[@]}"; do kill -TERM "${pid}" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "${pid}" 2>/dev/null || true
        wait "${pid}" 2>/dev/null || true
    done
    PIDS=()
    for ns in "${NAMESPACES[@]}"; do
        for pid in $(ip netns pids "${ns}" 2>/dev/null); do kill -KILL "${pid}" 2>/dev/null || true; done
        ip netns del "${ns}" 2>/dev/null || true
    done
    NAMESPACES=()
}
on_exit() {
    local rc=$?
    if ((KEEP)); then
        {
            echo "#!/bin/sh"
            echo "# removes the failover lab left by --keep: what runs in its namespaces, the namespaces, its files"
            echo "for ns in ${NAMESPACES[*]}; do"
            echo "    for pid in \$(ip netns pids \${ns} 2>/dev/null); do kill \${pid} 2>/dev/null; done"
            echo "done"
            echo "sleep 2"
            echo "for ns in ${NAMESPACES[*]}; do"
            echo "    for pid in \$(ip netns pids \${ns} 2>/dev/null); do kill -9 \${pid} 2>/dev/null; done"
            echo "    ip netns del \${ns} 2>/dev/null"
            echo "done"
            echo "rm -rf ${WORK}"
        } >"${WORK}/cleanup.sh"
        chmod 700 "${WORK}/cleanup.sh"
        echo "lab kept: namespaces ${NAMESPACES[*]}; files in ${WORK}" >&2
        echo "remove it with: sh ${WORK}/cleanup.sh   (or scripts/lab-cleanup.sh, which also ends what runs in them)" >&2
    else
        cleanup
        rm -rf "${WORK}"
    fi
    exit "${rc}"
}
# A process this run waited for: its PID may be reused by anything, so it is never signalled again.
forget_pid() {
    local i
    for i in "${!PIDS[@]}"; do [[ ${PIDS[${i}]} == "$1" ]] && unset "PIDS[${i}]"; done
    return 0
}
trap on_exit EXIT
trap 'exit 130' INT TERM

NS_CLI="${PREFIX}cli"; NS_FW1="${PREFIX}fw1"; NS_FW2="${PREFIX}fw2"; NS_SRV="${PREFIX}srv"; NS_SW="${PREFIX}sw"
in_ns() { local ns="$1"; shift; ip netns exec "${ns}" "$@"; }
# IPv6 on the hosts and firewalls only (the switch bridges frames, it needs no addresses). Neighbour discovery
# and MLD create no conntrack entries (the kernel tracks no ICMPv6 but echo and node information), so the
# firewalls' entry counts stay comparable. No router advertisements: addresses and routes are static.
ns_new() { # NS [v6]
    ip netns add "$1"
    NAMESPACES+=("$1")
    if [[ ${2:-} == v6 ]]; then
        in_ns "$1" sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
            net.ipv6.conf.all.autoconf=0 net.ipv6.conf.default.autoconf=0
    else
        in_ns "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    fi
    ip -n "$1" link set lo up
}
fw_ns() { [[ $1 == fw1 ]] && echo "${NS_FW1}" || echo "${NS_FW2}"; }

LAN_VIP=192.0.2.1
WAN_VIP=203.0.113.1
CLIENT=192.0.2.10
SERVER=203.0.113.10
TCP_PORT=8080
SCTP_PORT=8090
UDP_PORT=9000
DNS_PORT=9053  # the burst's one-shot queries
# IPv6 (fd00::/8): a stream over it through the same pair, NATed to the WAN side's IPv6 virtual address.
LAN_VIP6=fd00:2::1
WAN_VIP6=fd00:3::1
CLIENT6=fd00:2::10
SERVER6=fd00:3::10
declare -A LAN_IP6=([fw1]=fd00:2::2 [fw2]=fd00:2::3)
declare -A WAN_IP6=([fw1]=fd00:3::2 [fw2]=fd00:3::3)
# TCP connections held in closing states through the failover (one server port each).
HALF_PORT=8081      # half-closed: the client's FIN at the start, the server's direction streams on (CLOSE_WAIT)
FINWAIT_PORT=8082   # the client's FIN, its answer held back by the server's side (FIN_WAIT)
TIMEWAIT_PORT=8083  # both FINs, the client's last ACK held back by the server's side (TIME_WAIT)
declare -A LAN_IP=([fw1]=192.0.2.2 [fw2]=192.0.2.3)
declare -A WAN_IP=([fw1]=203.0.113.2 [fw2]=203.0.113.3)
declare -A SYNC_IP=([fw1]=198.51.100.1 [fw2]=198.51.100.2)
declare -A PRIO=([fw1]=254 [fw2]=253)
declare -A NODE_ID=([fw1]=1 [fw2]=2)

# ---------------------------------------------------------------------------------------------------------
step "the lab: namespaces ${PREFIX}{cli,fw1,fw2,srv,sw}, files in ${WORK}"
explain "client ${CLIENT} -> LAN switch -> firewall pair (fw1, fw2) -> WAN switch -> server ${SERVER};"
explain "the firewall that is VRRP master holds the virtual IPs ${LAN_VIP} (the client's gateway) and"
explain "${WAN_VIP} (every connection leaves with this source address: SNAT, random ports)."
ns_new "${NS_SW}"
for ns in "${NS_CLI}" "${NS_FW1}" "${NS_FW2}" "${NS_SRV}"; do ns_new "${ns}" v6; done
# br_netfilter is loaded on the host: the bridges must not send frames through the switch's netfilter.
for k in iptables ip6tables arptables; do
    in_ns "${NS_SW}" sysctl -qw "net.bridge.bridge-nf-call-${k}=0" 2>/dev/null || true
done
for br in brlan brwan; do
    ip -n "${NS_SW}" link add "${br}" type bridge stp_state 0 mcast_snooping 0
    ip -n "${NS_SW}" link set "${br}" up
done
# port NS IFACE SWITCH_PORT BRIDGE
port() {
    ip link add "$2" netns "$1" type veth peer name "$3" netns "${NS_SW}"
    ip -n "${NS_SW}" link set "$3" master "$4" up
    ip -n "$1" link set "$2" up
}
port "${NS_CLI}" eth0 l-cli brlan
port "${NS_SRV}" eth0 w-srv brwan
ip -n "${NS_CLI}" addr add "${CLIENT}/24" dev eth0
ip -n "${NS_CLI}" route add default via "${LAN_VIP}"
ip -n "${NS_SRV}" addr add "${SERVER}/24" dev eth0
ip -n "${NS_CLI}" addr add "${CLIENT6}/64" dev eth0 nodad
ip -n "${NS_CLI}" -6 route add default via "${LAN_VIP6}"
ip -n "${NS_SRV}" addr add "${SERVER6}/64" dev eth0 nodad
for fw in fw1 fw2; do
    ns=$(fw_ns "${fw}")
    port "${ns}" lan0 "l-${fw}" brlan
    port "${ns}" wan0 "w-${fw}" brwan
    ip -n "${ns}" addr add "${LAN_IP[${fw}]}/24" dev lan0
    ip -n "${ns}" addr add "${WAN_IP[${fw}]}/24" dev wan0
    ip -n "${ns}" addr add "${LAN_IP6[${fw}]}/64" dev lan0 nodad
    ip -n "${ns}" addr add "${WAN_IP6[${fw}]}/64" dev wan0 nodad
done
ip link add sync0 netns "${NS_FW1}" type veth peer name sync0 netns "${NS_FW2}"
for fw in fw1 fw2; do
    ns=$(fw_ns "${fw}")
    ip -n "${ns}" addr add "${SYNC_IP[${fw}]}/30" dev sync0
    ip -n "${ns}" link set sync0 up
done

# The firewalls' policy (see the header): state or nothing. SCTP likewise: an entry starts with INIT only
# (a DATA or HEARTBEAT chunk for a flow the firewall does not know is dropped, not tracked from mid-stream).
SCTP_RULE=""
((SCTP == 0)) || SCTP_RULE='meta l4proto sctp ct state new sctp chunk init missing counter drop comment "dropped: non-INIT new"'
for fw in fw1 fw2; do
    ns=$(fw_ns "${fw}")
    in_ns "${ns}" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    in_ns "${ns}" sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0
    in_ns "${ns}" nft -f - <<NFT
table inet ctlab {
    chain raw_pre {
        type filter hook prerouting priority raw; policy accept;
        iifname "sync0" notrack
        ip protocol { 2, 112 } notrack
    }
    chain raw_out {
        type filter hook output priority raw; policy accept;
        oifname "sync0" notrack
        ip protocol { 2, 112 } notrack
    }
    chain input {
        type filter hook input priority filter; policy drop;
        iifname "lo" accept
        iifname "sync0" accept
        ip protocol 112 accept
        meta l4proto ipv6-icmp accept
        counter comment "dropped: to this node"
    }
    chain forward {
        type filter hook forward priority filter; policy drop;
        tcp flags & (fin | syn | rst | ack) != syn ct state new counter drop comment "dropped: non-SYN new"
        ${SCTP_RULE}
        ct state invalid counter drop comment "dropped: invalid"
        ct state established,related accept
        iifname "lan0" oifname "wan0" ct state new accept
        counter comment "dropped: other"
    }
}
table ip ctlab_nat {
    chain post {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan0" snat to ${WAN_VIP} fully-random
    }
}
table ip6 ctlab_nat6 {
    chain post {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan0" snat to ${WAN_VIP6} fully-random
    }
}
NFT
done
# TCP resets seen by the server, both directions.
in_ns "${NS_SRV}" nft -f - <<'NFT'
table inet ctlab_rst {
    counter rst_in { }
    counter rst_out { }
    chain in { type filter hook input priority filter; tcp flags & rst == rst counter name "rst_in"; }
    chain out { type filter hook output priority filter; tcp flags & rst == rst counter name "rst_out"; }
}
NFT
rst_count() {
    in_ns "${NS_SRV}" nft list counters table inet ctlab_rst | awk '/packets/ {s += $2} END {print s + 0}'
}
fw_drops() { # fw: "non-SYN new" and "invalid" drops of its forward chain
    in_ns "$(fw_ns "$1")" nft list chain inet ctlab forward |
        awk '/non-SYN new/ {for (i = 1; i < NF; i++) if ($i == "packets") n = $(i + 1)}
             /non-INIT new/ {for (i = 1; i < NF; i++) if ($i == "packets") s = $(i + 1)}
             /"dropped: invalid"/ {for (i = 1; i < NF; i++) if ($i == "packets") v = $(i + 1)}
             END {printf "%d non-SYN new, %d invalid", n, v; if (s != "") printf ", %d SCTP non-INIT new", s}'
}
fw_counter() { # fw comment: the packets of the forward chain's rule with that comment ("dropped: invalid")
    in_ns "$(fw_ns "$1")" nft list chain inet ctlab forward |
        awk -v c="\"$2\"" 'index($0, c) {for (i = 1; i < NF; i++) if ($i == "packets") n = $(i + 1)} END {print n + 0}'
}

ip netns exec "${NS_SRV}" "${LAB_PEER}" tcp-server "${TCP_PORT}" >"${WORK}/tcp-server.log" 2>&1 &
PIDS+=("$!")
ip netns exec "${NS_SRV}" "${LAB_PEER}" udp-stream-server "${UDP_PORT}" >"${WORK}/udp-server.log" 2>&1 &
PIDS+=("$!")
if ((SCTP)); then
    ip netns exec "${NS_SRV}" "${LAB_PEER}" sctp-server "${SCTP_PORT}" >"${WORK}/sctp-server.log" 2>&1 &
    PIDS+=("$!")
fi
ip netns exec "${NS_SRV}" "${LAB_PEER}" udp-server "${DNS_PORT}" >"${WORK}/dns-server.log" 2>&1 &
PIDS+=("$!")
UNTIL="${WORK}/stop-streams"  # the streams stop when it exists (the half-closed connection's server too)
ip netns exec "${NS_SRV}" "${LAB_PEER}" tcp-server "${HALF_PORT}" --stop-file "${UNTIL}" >"${WORK}/half-server.log" 2>&1 &
PIDS+=("$!")
for port in "${FINWAIT_PORT}" "${TIMEWAIT_PORT}"; do
    ip netns exec "${NS_SRV}" "${LAB_PEER}" tcp-server "${port}" >"${WORK}/close-server-${port}.log" 2>&1 &
    PIDS+=("$!")
done

# ---------------------------------------------------------------------------------------------------------
ctl() { local fw="$1"; shift; "${CTSYNCCTL}" -C "${WORK}/${fw}/ctsyncd.json" --timeout 10000 "$@"; }
json_number() { sed -n "s/.*\"$1\": *\([0-9][0-9]*\).*/\1/p" | head -1; }
external_flows() { ctl "$1" status --json 2>/dev/null | json_number external_flows; }
replication_complete() { ctl "$1" replication --json 2>/dev/null | sed -n 's/^  "complete": *\([a-z]*\).*/\1/p'; }
kernel_count() { in_ns "$(fw_ns "$1")" sysctl -n net.netfilter.nf_conntrack_count; }
# conntrackd's client mode talks to the daemon through its UNIX socket (a path: no namespace needed).
cd_ctl() { local fw="$1"; shift; timeout 20 "${CONNTRACKD}" -C "${WORK}/${fw}/conntrackd.conf" "$@"; }
cd_cache() { # fw internal|external: "current active connections" of that cache
    cd_ctl "$1" -s 2>/dev/null |
        awk -v c="cache $2:" 'index($0, c) {x = 1} x && /current active connections/ {print $NF; exit}'
}
# What fw2 holds of fw1's table before a failover: ctsync's external cache; conntrackd's external cache, or
# (--cd-warm) its kernel table.
fw2_held() {
    case ${SYNC} in
        ctsync) external_flows fw2 ;;
        conntrackd) if ((CD_WARM)); then kernel_count fw2; else cd_cache fw2 external; fi ;;
        *) echo 0 ;;
    esac
}
log_tail() { # fw
    for f in "${WORK}/$1/ctsyncd.log" "${WORK}/$1/conntrackd.log" "${WORK}/$1/keepalived.log" "${WORK}/$1/notify.log"; do
        [[ -f ${f} ]] && { echo "---- ${f} (tail)"; tail -n 25 "${f}"; }
    done >&2
}

for fw in fw1 fw2; do mkdir -m 700 "${WORK}/${fw}"; done
if [[ ${SYNC} == ctsync ]]; then
    (umask 077; printf '%064x\n' "$(((RANDOM << 15) | RANDOM))" >"${WORK}/sync.key")
    for fw in fw1 fw2; do
        other=$([[ ${fw} == fw1 ]] && echo fw2 || echo fw1)
        dir="${WORK}/${fw}"
        if [[ ${TRANSPORT} == mcast ]]; then
            transport='{"plugin": "transport-mcast", "config": {"interface": "sync0", "group": "239.255.0.1"}}'
        else
            transport="{\"plugin\": \"transport-tcp\", \"config\": {\"listen\": \"${SYNC_IP[${fw}]}:3782\",
                        \"peers\": [\"${SYNC_IP[${other}]}:3782\"]}}"
        fi
        ha=""
        if [[ ${HA} == fifo ]]; then
            ha=", \"ha\": {\"plugin\": \"ha-keepalived\", \"config\": {\"fifo\": \"${dir}/keepalived.fifo\",
                 \"groups\": [\"G1\"], \"track_file\": \"${dir}/ready\"}}"
        fi
        failover=""
        [[ -n ${STANDBY} ]] && failover=", \"failover\": {\"standby\": \"${STANDBY}\"}"
        cat >"${dir}/ctsyncd.json" <<JSON
{
  "node": {"id": ${NODE_ID[${fw}]}, "name": "${fw}"},
  "daemon": {"lock_file": "${dir}/ctsyncd.lock", "control_socket": "${dir}/ctsyncd.sock",
             "plugin_dirs": ["${BUILD}/lib/ctsync/plugins"],
             "log": {"level": "info", "file": "${dir}/ctsyncd.log"}},
  "source": {"plugin": "source-ctnetlink", "config": {"event_buffer_max_bytes": 268435456}},
  "protos": [{"plugin": "proto-tcp"}, {"plugin": "proto-udp"}, {"plugin": "proto-sctp"}],
  "transports": [${transport}],
  "security": {"keys": [{"id": 1, "file": "${WORK}/sync.key"}]}${failover}${ha}
}
JSON
        "${CTSYNCD}" --check-config "${dir}/ctsyncd.json" >"${dir}/check-config.txt" 2>&1 ||
            { cat "${dir}/check-config.txt" >&2; die "ctsyncd refused ${fw}'s config"; }
    done
    step "ctsyncd on fw1 and fw2 (transport-${TRANSPORT}, ha: ${HA})"
    explain "ctsyncd reads its firewall's connection table from the kernel and replicates it to the other"
    explain "over the dedicated sync link (${SYNC_IP[fw1]} <-> ${SYNC_IP[fw2]}); a backup writes what it receives"
    explain "into its own kernel as it arrives (warm standby), so it is ready before it is needed."
    for fw in fw1 fw2; do
        ip netns exec "$(fw_ns "${fw}")" "${CTSYNCD}" -C "${WORK}/${fw}/ctsyncd.json" \
            >"${WORK}/${fw}/ctsyncd.stderr" 2>&1 &
        PIDS+=("$!")
    done
    for fw in fw1 fw2; do
        ok=0
        for _ in $(seq 100); do
            if ctl "${fw}" status >/dev/null 2>&1; then ok=1; break; fi
            sleep 0.1
        done
        ((ok)) || { log_tail "${fw}"; cat "${WORK}/${fw}/ctsyncd.stderr" >&2; die "ctsyncd on ${fw} did not start within 10 s"; }
    done
    say "both daemons answer on their control sockets"
elif [[ ${SYNC} == conntrackd ]]; then
    step "conntrackd on fw1 and fw2 (FTFW over UDP on sync0, DisableExternalCache $( ((CD_WARM)) && echo On || echo Off))"
    explain "conntrackd replicates its firewall's table over the sync link; the backup keeps what it receives in"
    explain "$( ((CD_WARM)) && echo "its kernel (DisableExternalCache On)" || echo "an external cache, committed into its kernel by 'conntrackd -c' when keepalived makes it master")."
    for fw in fw1 fw2; do
        other=$([[ ${fw} == fw1 ]] && echo fw2 || echo fw1)
        dir="${WORK}/${fw}"
        # The benchmarks' conntrackd configuration (bench/conntrackd_conf.sh), with this lab's addresses and files.
        conntrackd_conf "${dir}/conntrackd" "${SYNC_IP[${fw}]}" "${SYNC_IP[${other}]}" sync0 \
            "$( ((CD_WARM)) && echo warm)" >"${dir}/conntrackd.conf"
        # Debian's primary-backup.sh, unchanged but for its three variables. Its conntrackd calls go through
        # a wrapper that logs their start and end (epoch ms) to calls.log; its logger(1) messages go to
        # notify.log instead of the host's syslog.
        mkdir -m 700 "${dir}/bin"
        if [[ -f ${CD_EXAMPLE} ]]; then cat "${CD_EXAMPLE}"; else zcat "${CD_EXAMPLE}.gz"; fi |
            sed -e "s|^CONNTRACKD_BIN=.*|CONNTRACKD_BIN=${dir}/bin/conntrackd-timed|" \
                -e "s|^CONNTRACKD_LOCK=.*|CONNTRACKD_LOCK=${dir}/conntrackd.lock|" \
                -e "s|^CONNTRACKD_CONFIG=.*|CONNTRACKD_CONFIG=${dir}/conntrackd.conf|" >"${dir}/primary-backup.sh"
        [[ $(grep -c "^CONNTRACKD_[A-Z]*=${dir}/" "${dir}/primary-backup.sh") == 3 ]] ||
            die "${CD_EXAMPLE}: its CONNTRACKD_BIN/LOCK/CONFIG lines were not found"
        cat >"${dir}/bin/conntrackd-timed" <<SH
#!/bin/sh
t0=\$(date +%s%3N)
"${CONNTRACKD}" "\$@"
rc=\$?
echo "call \${NOTIFY_STATE:-?} \$* start_ms=\${t0} end_ms=\$(date +%s%3N) rc=\${rc}" >>"${dir}/calls.log"
exit \${rc}
SH
        printf '#!/bin/sh\necho "logger: $*" >>"%s/notify.log"\n' "${dir}" >"${dir}/bin/logger"
        cat >"${dir}/notify.sh" <<SH
#!/bin/sh
PATH="${dir}/bin:\${PATH:-/usr/sbin:/usr/bin:/sbin:/bin}"
NOTIFY_STATE=\$1
export PATH NOTIFY_STATE
echo "notify \$1 start_ms=\$(date +%s%3N)" >>"${dir}/notify.log"
/bin/sh "${dir}/primary-backup.sh" "\$@" >>"${dir}/notify.log" 2>&1
rc=\$?
echo "notify \$1 end_ms=\$(date +%s%3N) rc=\${rc}" >>"${dir}/notify.log"
SH
        chmod 700 "${dir}/notify.sh" "${dir}/primary-backup.sh" "${dir}/bin/conntrackd-timed" "${dir}/bin/logger"
    done
    for fw in fw1 fw2; do
        ip netns exec "$(fw_ns "${fw}")" "${CONNTRACKD}" -C "${WORK}/${fw}/conntrackd.conf" \
            >"${WORK}/${fw}/conntrackd.stderr" 2>&1 &
        PIDS+=("$!")
    done
    for fw in fw1 fw2; do
        ok=0
        for _ in $(seq 100); do
            if cd_ctl "${fw}" -s >/dev/null 2>&1; then ok=1; break; fi
            sleep 0.1
        done
        ((ok)) || { log_tail "${fw}"; cat "${WORK}/${fw}/conntrackd.stderr" >&2; die "conntrackd on ${fw} did not start within 10 s"; }
    done
    say "both conntrackd answer on their UNIX sockets"
fi

# keepalived: one per firewall, its own pid files and config, in the foreground.
for fw in fw1 fw2; do
    dir="${WORK}/${fw}"
    global="" group_extra="" track=""
    if [[ ${SYNC} == ctsync && ${HA} == fifo ]]; then
        global="    vrrp_notify_fifo ${dir}/keepalived.fifo
    fifo_write_vrrp_states_on_reload"
        track="track_file ctsync_ready {
    file \"${dir}/ready\"
    weight 1
    init_file -253
}"
        group_extra="    track_file {
        ctsync_ready weight 1
    }"
    elif [[ ${SYNC} == conntrackd ]]; then
        global="    enable_script_security
    script_user root"
        group_extra="    notify_master \"${dir}/notify.sh primary\"
    notify_backup \"${dir}/notify.sh backup\"
    notify_fault \"${dir}/notify.sh fault\""
    elif [[ ${HA} == script ]]; then
        # keepalived runs notify scripts with its own environment: a wrapper names the daemon's config.
        cat >"${dir}/notify.sh" <<SH
#!/bin/sh
echo "\$(date +%T.%N) primary-backup.sh \$*" >>"${dir}/notify.log"
CTSYNCCTL="${CTSYNCCTL}" CTSYNC_CONFIG="${dir}/ctsyncd.json" "${PRIMARY_BACKUP}" "\$@" >>"${dir}/notify.log" 2>&1
SH
        chmod 700 "${dir}/notify.sh"
        global="    enable_script_security
    script_user root"
        if [[ ${SYNC} == ctsync ]]; then
            group_extra="    notify_master \"${dir}/notify.sh primary\"
    notify_backup \"${dir}/notify.sh backup\"
    notify_fault \"${dir}/notify.sh fault\""
        fi
    fi
    cat >"${dir}/keepalived.conf" <<CONF
global_defs {
    router_id ${fw}
${global}
}
${track}
vrrp_sync_group G1 {
    group {
        VI_LAN
        VI_WAN
    }
${group_extra}
}
vrrp_instance VI_LAN {
    state BACKUP
    interface lan0
    virtual_router_id 51
    priority ${PRIO[${fw}]}
    advert_int ${ADVERT_INT}
    virtual_ipaddress {
        ${LAN_VIP}/24 dev lan0
    }
    virtual_ipaddress_excluded {
        ${LAN_VIP6}/64 dev lan0
    }
}
vrrp_instance VI_WAN {
    state BACKUP
    interface wan0
    virtual_router_id 52
    priority ${PRIO[${fw}]}
    advert_int ${ADVERT_INT}
    virtual_ipaddress {
        ${WAN_VIP}/24 dev wan0
    }
    virtual_ipaddress_excluded {
        ${WAN_VIP6}/64 dev wan0
    }
}
CONF
done
step "keepalived on fw1 (priority 254) and fw2 (253), sync group G1 = {VI_LAN, VI_WAN}, advert_int ${ADVERT_INT}"
if [[ ${SYNC} == ctsync && ${HA} == fifo ]]; then
    explain "keepalived tells ctsyncd every state change through a FIFO; ctsyncd holds its node's VRRP"
    explain "priority down (track file -253) until its table is complete."
fi
for fw in fw1 fw2; do
    dir="${WORK}/${fw}"
    ip netns exec "$(fw_ns "${fw}")" "${KEEPALIVED}" -n -l -D -G --vrrp -f "${dir}/keepalived.conf" \
        -p "${dir}/keepalived.pid" -r "${dir}/vrrp.pid" >"${dir}/keepalived.log" 2>&1 &
    PIDS+=("$!")
done

# conntrackd mode: fw $1's notify script for state $2 has finished (since epoch ms $3, default 0).
notify_done() {
    awk -v s="$2" -v t="${3:-0}" '$1 == "notify" && $2 == s && $3 ~ /^end_ms=/ && substr($3, 8) + 0 > t {f = 1}
                                  END {exit !f}' "${WORK}/$1/notify.log" 2>/dev/null
}
# VIPs held by a firewall: "lan wan", "lan", "wan" or "".
vips() {
    ip -n "$(fw_ns "$1")" -4 -o addr show 2>/dev/null |
        awk -v l="${LAN_VIP}/" -v w="${WAN_VIP}/" 'index($0, l) {a = "lan"} index($0, w) {b = "wan"}
                                                  END {printf "%s", a; if (a != "" && b != "") printf " "; printf "%s\n", b}'
}
# Waits (bounded, seconds) until fw $1 holds both VIPs and the other none; polls every 10 ms.
wait_master() {
    local fw="$1" limit_ms=$(($2 * 1000)) other start
    other=$([[ $1 == fw1 ]] && echo fw2 || echo fw1)
    start=$(now_ms)
    while (($(now_ms) - start < limit_ms)); do
        [[ "$(vips "${fw}")" == "lan wan" && -z "$(vips "${other}")" ]] && return 0
        sleep 0.01
    done
    return 1
}
t0=$(now_ms)
if ! wait_master fw1 40; then
    log_tail fw1; log_tail fw2
    die "fw1 did not become master holding both VIPs within 40 s (fw1: '$(vips fw1)', fw2: '$(vips fw2)')"
fi
say "fw1 is master and holds ${LAN_VIP} and ${WAN_VIP} ($(($(now_ms) - t0)) ms after keepalived started)"

if [[ ${SYNC} == ctsync ]]; then
    ok=0
    for _ in $(seq 300); do
        [[ "$(replication_complete fw2)" == true ]] && { ok=1; break; }
        sleep 0.1
    done
    ((ok)) || { log_tail fw2; die "fw2's table is not complete within 30 s"; }
    say "fw2's replicated table is complete"
elif [[ ${SYNC} == conntrackd ]]; then
    # fw1's notify_master (-c, -f, -R, -B) must be done before the streams start: its -f empties the caches.
    ok=0
    for _ in $(seq 300); do notify_done fw1 primary && { ok=1; break; }; sleep 0.1; done
    ((ok)) || { log_tail fw1; die "fw1's notify_master script did not finish within 30 s"; }
    say "fw1's notify script (primary) is done: $(grep -c '^call primary' "${WORK}/fw1/calls.log") conntrackd calls"
fi

# ---------------------------------------------------------------------------------------------------------
step "streams from cli ${CLIENT} to srv ${SERVER}: TCP :${TCP_PORT} and UDP :${UDP_PORT}, one line every ${INTERVAL_MS} ms, echoed; TCP over IPv6 ${CLIENT6} -> ${SERVER6}"
ip netns exec "${NS_CLI}" "${LAB_PEER}" tcp-stream "${SERVER}" "${TCP_PORT}" --interval-ms "${INTERVAL_MS}" \
    --until "${UNTIL}" --max-ms 120000 --stall-ms 20000 >"${WORK}/tcp.json" 2>"${WORK}/tcp.err" &
TCP_PID=$!
PIDS+=("${TCP_PID}")
ip netns exec "${NS_CLI}" "${LAB_PEER}" udp-stream "${SERVER}" "${UDP_PORT}" --interval-ms "${INTERVAL_MS}" \
    --until "${UNTIL}" --max-ms 120000 >"${WORK}/udp.json" 2>"${WORK}/udp.err" &
UDP_PID=$!
PIDS+=("${UDP_PID}")
ip netns exec "${NS_CLI}" "${LAB_PEER}" tcp-stream "${SERVER6}" "${TCP_PORT}" --interval-ms "${INTERVAL_MS}" \
    --until "${UNTIL}" --max-ms 120000 --stall-ms 20000 >"${WORK}/tcp6.json" 2>"${WORK}/tcp6.err" &
TCP6_PID=$!
PIDS+=("${TCP6_PID}")
SCTP_PID=""
if ((SCTP)); then
    ip netns exec "${NS_CLI}" "${LAB_PEER}" sctp-stream "${SERVER}" "${SCTP_PORT}" --interval-ms "${INTERVAL_MS}" \
        --until "${UNTIL}" --max-ms 120000 --stall-ms 20000 >"${WORK}/sctp.json" 2>"${WORK}/sctp.err" &
    SCTP_PID=$!
    PIDS+=("${SCTP_PID}")
    say "SCTP: one association from ${CLIENT} to ${SERVER}:${SCTP_PORT}, a line every ${INTERVAL_MS} ms, echoed"
fi
# The closing connections: half-closed at once (its close-when file exists), the two others when told to,
# just before the cut.
touch "${WORK}/close-half"
ip netns exec "${NS_CLI}" "${LAB_PEER}" tcp-close "${SERVER}" "${HALF_PORT}" --close-when "${WORK}/close-half" \
    --until "${UNTIL}" --halfclose-ms "${INTERVAL_MS}" >"${WORK}/half.json" 2>"${WORK}/half.err" &
HALF_PID=$!
PIDS+=("${HALF_PID}")
declare -A CLOSE_PID
for port in "${FINWAIT_PORT}" "${TIMEWAIT_PORT}"; do
    ip netns exec "${NS_CLI}" "${LAB_PEER}" tcp-close "${SERVER}" "${port}" --close-when "${WORK}/close-now" \
        --until "${UNTIL}" >"${WORK}/close-${port}.json" 2>"${WORK}/close-${port}.err" &
    CLOSE_PID[${port}]=$!
    PIDS+=("$!")
done
t_streams=$(now_ms)

if [[ ${SYNC} != none ]]; then
    # fw2 must hold both streams' flows (their NAT bindings included) before anything fails: ctsync's and
    # conntrackd's external cache, or the kernel of a conntrackd that writes there directly.
    if [[ ${SYNC} == ctsync ]]; then where="external cache"; fw2_table() { ctl fw2 dump --external; }
    elif ((CD_WARM)); then where=kernel; fw2_table() { in_ns "${NS_FW2}" conntrack -L; }
    else where="conntrackd's external cache"; fw2_table() { cd_ctl fw2 -e; }; fi
    ok=0
    for _ in $(seq 100); do
        table=$(fw2_table 2>/dev/null || true)
        if grep -q "src=${CLIENT} .*dport=${TCP_PORT} " <<<"${table}" && grep -q "dport=${UDP_PORT} " <<<"${table}" &&
            grep -q "src=${CLIENT6} .*dport=${TCP_PORT} " <<<"${table}" &&
            { ((SCTP == 0)) || grep -q "src=${CLIENT} .*dport=${SCTP_PORT} " <<<"${table}"; }; then
            ok=1
            break
        fi
        sleep 0.1
    done
    ((ok)) || { log_tail fw1; log_tail fw2; die "fw2's ${where} did not get the streams' flows within 10 s"; }
    say "fw2's ${where} holds the streams' flows:"
    ((QUIET)) || grep -E "dport=(${TCP_PORT}|${UDP_PORT}|${SCTP_PORT}) " <<<"${table}" | sed 's/^/    /' | head -6
fi

burst_ok=1
if ((UDP_BURST > 0)); then
    step "a DNS-like burst: ${UDP_BURST} one-shot UDP queries from cli to srv :${DNS_PORT}, each from its own port"
    explain "Each query and its answer is a flow of its own in fw1's kernel, replied but never assured (the kernel"
    explain "assures a UDP flow after ~2 s of traffic both ways). proto-udp keeps such one-shot flows off the sync"
    explain "link by default: fw2 should hold none of them, and fw1 should count them held back."
    held_back() { { ctl "$1" stats 2>/dev/null || true; } | awk '$1 == "replication.flows_held_back" {print $2}'; }
    [[ ${SYNC} == ctsync ]] && held_before=$(held_back fw1)
    burst=$(ip netns exec "${NS_CLI}" "${LAB_PEER}" udp-burst "${SERVER}" "${DNS_PORT}" "${UDP_BURST}" \
        2>"${WORK}/udp-burst.err" || true)
    answered=$(sed -n 's/.*"answered":\([0-9]*\).*/\1/p' <<<"${burst}")
    answered=${answered:-0}
    fw1_flows=$(in_ns "${NS_FW1}" conntrack -L -p udp --dport "${DNS_PORT}" 2>/dev/null | grep -c "dport=${DNS_PORT} " || true)
    ((answered == UDP_BURST)) || burst_ok=0
    if [[ ${SYNC} == ctsync ]]; then
        sleep 0.5  # replication takes milliseconds here: a record sent by mistake would have arrived
        held_after=$(held_back fw1)
        held=$((${held_after:-0} - ${held_before:-0}))
        fw2_flows=$(ctl fw2 dump --external 2>/dev/null | grep -c "dport=${DNS_PORT} " || true)
        burst_verdict=NOT_SENT
        ((fw2_flows == 0 && held >= UDP_BURST)) || { burst_verdict=SENT; burst_ok=0; }
        say "burst: ${answered} of ${UDP_BURST} answered; fw1's kernel holds ${fw1_flows} of their flows, fw1 held back ${held} new flows, fw2's external cache holds ${fw2_flows}"
        result "udp_burst verdict=${burst_verdict} sent=${UDP_BURST} answered=${answered} fw1_flows=${fw1_flows} held_back=${held} fw2_external=${fw2_flows}"
    else
        say "burst: ${answered} of ${UDP_BURST} answered; fw1's kernel holds ${fw1_flows} of their flows"
        result "udp_burst sent=${UDP_BURST} answered=${answered} fw1_flows=${fw1_flows}"
    fi
fi

if ((ENTRIES > 0)); then
    step "${ENTRIES} NATed entries (SNAT to ${WAN_VIP}) injected into fw1's kernel"
    before_fw2=$(fw2_held || true)
    before_fw2=${before_fw2:-0}
    t_start=$(now_ms)
    ip netns exec "${NS_FW1}" "${CT_INJECT}" --count "${ENTRIES}" --snat-to "${WAN_VIP}" >"${WORK}/ct-inject.txt" 2>&1 &
    inject_pid=$!
    PIDS+=("${inject_pid}")
    # Until ct-inject is done and fw2 holds every entry (ctsync's or conntrackd's external cache, with
    # --cd-warm fw2's kernel); in demo mode a line every half second.
    want=$((before_fw2 + ENTRIES))
    ok=0 last=${before_fw2} t_last=${t_start} injecting=1
    for i in $(seq 1200); do
        if ((injecting)) && ! kill -0 "${inject_pid}" 2>/dev/null; then
            injecting=0
            inject_rc=0
            wait "${inject_pid}" || inject_rc=$?
            forget_pid "${inject_pid}"
            ((inject_rc == 0)) || die "ct-inject failed: $(cat "${WORK}/ct-inject.txt")"
            say "$(cat "${WORK}/ct-inject.txt")"
        fi
        n=$(fw2_held || echo 0)
        if ((!injecting)) && [[ ${SYNC} == none || ${n:-0} -ge ${want} ]]; then ok=1; break; fi
        if ((DEMO && i % 5 == 0)); then
            t=$(now_ms)
            printf '    live: fw1 kernel %7d entries | fw2 holds %7d | fw2 kernel %7d | %6d entries/s replicated\n' \
                "$(kernel_count fw1)" "${n:-0}" "$(kernel_count fw2)" "$(((${n:-0} - last) * 1000 / (t - t_last + 1)))"
            last=${n:-0} t_last=${t}
        fi
        sleep 0.1
    done
    elapsed=$(($(now_ms) - t_start))
    if ((!ok)) && [[ ${SYNC} == conntrackd ]]; then
        # The peer is measured, not required: the failover goes ahead with what fw2 has.
        say "fw2 holds ${n:-0} of ${want} flows after ${elapsed} ms: failing over anyway"
    elif ((!ok)); then
        log_tail fw2
        die "fw2's external cache holds $(external_flows fw2) of ${want} flows after 120 s"
    fi
    if [[ ${SYNC} != none ]]; then
        ((ok)) && say "fw2 holds all of them, ${elapsed} ms after the injection started ($((ENTRIES * 1000 / (elapsed + 1))) entries/s end to end)"
        result "replication held=$(($(fw2_held || echo 0) - before_fw2)) of=${ENTRIES} complete=$( ((ok)) && echo yes || echo no) ms=${elapsed}"
        ((DEMO)) && printf '    live: fw1 kernel %7d entries | fw2 holds %7d | fw2 kernel %7d\n' \
            "$(kernel_count fw1)" "$(fw2_held)" "$(kernel_count fw2)"
    fi
fi

# The streams run for at least 2 s before the failure.
while (($(now_ms) - t_streams < 2000)); do sleep 0.05; done
kill -0 "${TCP_PID}" 2>/dev/null || { cat "${WORK}/tcp.json" "${WORK}/tcp.err" >&2; die "the TCP stream ended before the failover"; }
kill -0 "${UDP_PID}" 2>/dev/null || { cat "${WORK}/udp.json" "${WORK}/udp.err" >&2; die "the UDP stream ended before the failover"; }
kill -0 "${TCP6_PID}" 2>/dev/null || { cat "${WORK}/tcp6.json" "${WORK}/tcp6.err" >&2; die "the IPv6 TCP stream ended before the failover"; }
[[ -z ${SCTP_PID} ]] || kill -0 "${SCTP_PID}" 2>/dev/null ||
    { cat "${WORK}/sctp.json" "${WORK}/sctp.err" >&2; die "the SCTP stream ended before the failover"; }

# fw2's priority: its ctsyncd holds it at 1 (track file -253) while its table is incomplete.
fw2_ready=n/a
if [[ ${SYNC} == ctsync && ${HA} == fifo ]]; then
    for _ in $(seq 100); do [[ "$(cat "${WORK}/fw2/ready" 2>/dev/null)" == 0 ]] && break; sleep 0.1; done
    track=$(cat "${WORK}/fw2/ready" 2>/dev/null || echo missing)
    fw2_ready=$([[ ${track} == 0 ]] && echo yes || echo no)
    say "fw2's track file: ${track} ($([[ ${fw2_ready} == yes ]] && echo "ready: VRRP priority ${PRIO[fw2]}" || echo "held: VRRP priority 1, a slower takeover"))"
fi

# ---------------------------------------------------------------------------------------------------------
step "TCP in closing states: half-closed since the start (:${HALF_PORT}); FIN_WAIT (:${FINWAIT_PORT}) and TIME_WAIT (:${TIMEWAIT_PORT}) made right before the cut"
explain "A slow or lossy server side holds two connections in the middle of their close: the answers to"
explain "the client's FIN (:${FINWAIT_PORT}), the client's last ACK (:${TIMEWAIT_PORT}) are dropped in the server's namespace"
explain "until the VIPs have moved, so the retransmissions that finish each close must pass fw2."
# The client's source port of its connection to srv port $1 ("" when none), and that connection's
# conntrack state in fw $2's kernel ("none": no entry).
client_port() { in_ns "${NS_CLI}" ss -Htan "( dport = :$1 )" 2>/dev/null | awk '{n = split($4, a, ":"); print a[n]; exit}'; }
ct_state() { # fw port
    local sport=${CPORT[$2]:-}
    [[ -n ${sport} ]] || { echo none; return 0; }
    { in_ns "$(fw_ns "$1")" conntrack -G -p tcp -s "${CLIENT}" -d "${SERVER}" --sport "${sport}" --dport "$2" 2>/dev/null || true; } |
        awk 'NR == 1 {print $4; f = 1} END {if (!f) print "none"}'
}
server_last_ack() { in_ns "${NS_SRV}" ss -Htan state last-ack "( sport = :${TIMEWAIT_PORT} )" 2>/dev/null | grep -c . || true; }
in_ns "${NS_SRV}" nft -f - <<NFT
table inet ctlab_hold {
    chain out { type filter hook output priority filter; policy accept; tcp sport ${FINWAIT_PORT} counter drop; }
    chain in {
        type filter hook input priority filter; policy accept;
        tcp dport ${TIMEWAIT_PORT} tcp flags & (fin | syn | rst | psh) == 0 counter drop
    }
}
NFT

# ---------------------------------------------------------------------------------------------------------
step "hard failover: every port of fw1 cut (LAN, WAN, sync)"
explain "no goodbye: fw2 notices only when fw1's VRRP adverts stop (3 x advert_int), then takes the VIPs."
fw1_entries=$(kernel_count fw1)
# The burst's one-shot flows are in fw1's kernel but, with ctsync, deliberately not replicated (proto-udp):
# they do not count as entries fw2 should hold.
fw1_unsent=0
if ((UDP_BURST > 0)) && [[ ${SYNC} == ctsync ]]; then
    fw1_unsent=$(in_ns "${NS_FW1}" conntrack -L -p udp --dport "${DNS_PORT}" 2>/dev/null | grep -c "dport=${DNS_PORT} " || true)
    fw1_entries=$((fw1_entries - fw1_unsent))
fi
fw2_entries_before=$(kernel_count fw2)
# Promotions fw2 went through before the cut (a start-up one, when fw2's VRRP instance won the first
# election before fw1 was ready and preempted it): the failover's own are counted from here.
promotions_before=0
if [[ ${SYNC} == ctsync ]]; then
    promotions_before=$(ctl fw2 stats 2>/dev/null | awk '$1 == "failover.promotions" {print $2}')
    promotions_before=${promotions_before:-0}
    ((promotions_before == 0)) || say "fw2 was promoted ${promotions_before} time(s) before the cut (start-up election)"
fi
# LAN and WAN in one ip call (microseconds apart): fw1's keepalived must not get to resign on one while the
# other is still up (a priority-0 advert would make the takeover look faster than a dead node allows).
cut_fw1() { # down|up
    printf 'link set l-fw1 %s\nlink set w-fw1 %s\n' "$1" "$1" | ip -n "${NS_SW}" -batch -
    ip -n "${NS_FW2}" link set sync0 "$1"
}
# The two closes start now, right before the cut: FIN_WAIT lasts until the client's first retransmission of
# its FIN (RTO 200 ms), which the kernel's table records as LAST_ACK (a FIN in each direction, the last ACK
# due); the cut comes as soon as both firewalls show the states (exact lookups, a few ms each).
declare -A CPORT FW1_STATE FW2_STATE_BEFORE FW2_STATE_AT_VIP
for port in "${HALF_PORT}" "${FINWAIT_PORT}" "${TIMEWAIT_PORT}"; do CPORT[${port}]=$(client_port "${port}"); done
touch "${WORK}/close-now"
t_close=$(now_ms)
while (($(now_ms) - t_close < 5000)); do
    [[ $(ct_state fw1 "${FINWAIT_PORT}") =~ ^(FIN_WAIT|LAST_ACK)$ && $(ct_state fw1 "${TIMEWAIT_PORT}") == TIME_WAIT ]] && break
    sleep 0.005
done
for port in "${HALF_PORT}" "${FINWAIT_PORT}" "${TIMEWAIT_PORT}"; do FW1_STATE[${port}]=$(ct_state fw1 "${port}"); done
# A warm standby has them in fw2's kernel milliseconds later (bounded wait; a cold one holds them in its
# external cache until the promotion).
while :; do
    same=1
    for port in "${HALF_PORT}" "${FINWAIT_PORT}" "${TIMEWAIT_PORT}"; do
        FW2_STATE_BEFORE[${port}]=$(ct_state fw2 "${port}")
        [[ ${FW2_STATE_BEFORE[${port}]} == "${FW1_STATE[${port}]}" ]] || same=0
    done
    ((same == 0)) || break
    [[ ${SYNC} == none || ${STANDBY} == cold || (${SYNC} == conntrackd && ${CD_WARM} == 0) ]] && break
    (($(now_ms) - t_close < 8000)) || break
    sleep 0.005
done
t_cut=$(now_ms)
cut_fw1 down
# Read after the cut (an ss call costs milliseconds): the held-back ACK keeps the socket in LAST-ACK.
last_ack_before=$(server_last_ack)
say "closing connections at the cut ($((t_cut - t_close)) ms after the FINs): fw1's kernel :${HALF_PORT} ${FW1_STATE[${HALF_PORT}]}, :${FINWAIT_PORT} ${FW1_STATE[${FINWAIT_PORT}]}, :${TIMEWAIT_PORT} ${FW1_STATE[${TIMEWAIT_PORT}]}; fw2's kernel ${FW2_STATE_BEFORE[${HALF_PORT}]}, ${FW2_STATE_BEFORE[${FINWAIT_PORT}]}, ${FW2_STATE_BEFORE[${TIMEWAIT_PORT}]}; the server's :${TIMEWAIT_PORT} socket in LAST-ACK: ${last_ack_before}"
takeover_ms=""
while (($(now_ms) - t_cut < 20000)); do
    if [[ "$(vips fw2)" == "lan wan" ]]; then
        t_vip=$(now_ms)
        takeover_ms=$((t_vip - t_cut))
        fw2_entries_at_vip=$(kernel_count fw2)
        fw2_track_at_vip=$(cat "${WORK}/fw2/ready" 2>/dev/null || echo n/a)
        break
    fi
    sleep 0.01
done
[[ -n ${takeover_ms} ]] || { log_tail fw2; die "fw2 did not take both VIPs within 20 s"; }
say "fw2 holds both VIPs ${takeover_ms} ms after the cut; its kernel then held ${fw2_entries_at_vip} entries (fw1 had ${fw1_entries})"
result "failover takeover_ms=${takeover_ms} fw2_ready=${fw2_ready} fw2_track_at_vip=${fw2_track_at_vip}"
if [[ ${SYNC} != none ]]; then
    in_kernel=$(in_ns "${NS_FW2}" conntrack -L -p tcp --dport "${TCP_PORT}" 2>/dev/null | grep -c ESTABLISHED || true)
    say "fw2's kernel holds the TCP stream's entry: $([[ ${in_kernel} -ge 1 ]] && echo yes || echo no)"
fi
for port in "${HALF_PORT}" "${FINWAIT_PORT}" "${TIMEWAIT_PORT}"; do FW2_STATE_AT_VIP[${port}]=$(ct_state fw2 "${port}"); done
# The server's side recovers: the retransmissions that finish the two closes may pass now (through fw2).
# The time is taken before the lift: a close that ends right after it (a busy machine can take longer to
# return from nft than the FIN takes to arrive) must still count as after the lift.
t_lift=$(now_ms)
in_ns "${NS_SRV}" nft delete table inet ctlab_hold

# Until both streams resumed after the cut (bounded: 10 s after the VIPs moved), then 2 s more.
resumed() { # file: "<ms after the cut> <gap ms>" of the first "resumed" event after the cut
    awk -v t="${t_cut}" '/"resumed"/ {
        match($0, /"at_epoch_ms":[0-9]+/); at = substr($0, RSTART + 14, RLENGTH - 14) + 0
        match($0, /"gap_ms":[0-9]+/); gap = substr($0, RSTART + 9, RLENGTH - 9) + 0
        if (at > t) {print at - t, gap; exit}}' "$1"
}
tcp_resumed="" udp_resumed="" tcp6_resumed="" sctp_resumed=""
((SCTP)) || sctp_resumed=n/a
while (($(now_ms) - t_vip < 10000)); do
    if [[ -z ${sctp_resumed} ]]; then
        sctp_resumed=$(resumed "${WORK}/sctp.err")
        [[ -n ${sctp_resumed} ]] && say "SCTP stream: echoes again ${sctp_resumed% *} ms after the cut (no echo for ${sctp_resumed#* } ms)"
    fi
    if [[ -z ${tcp6_resumed} ]]; then
        tcp6_resumed=$(resumed "${WORK}/tcp6.err")
        [[ -n ${tcp6_resumed} ]] && say "IPv6 TCP stream: echoes again ${tcp6_resumed% *} ms after the cut (no echo for ${tcp6_resumed#* } ms)"
    fi
    if [[ -z ${tcp_resumed} ]]; then
        tcp_resumed=$(resumed "${WORK}/tcp.err")
        [[ -n ${tcp_resumed} ]] && say "TCP stream: echoes again ${tcp_resumed% *} ms after the cut (no echo for ${tcp_resumed#* } ms)"
    fi
    if [[ -z ${udp_resumed} ]]; then
        udp_resumed=$(resumed "${WORK}/udp.err")
        [[ -n ${udp_resumed} ]] && say "UDP stream: echoes again ${udp_resumed% *} ms after the cut (no echo for ${udp_resumed#* } ms)"
    fi
    [[ -n ${tcp_resumed} && -n ${udp_resumed} && -n ${tcp6_resumed} && -n ${sctp_resumed} ]] && break
    kill -0 "${TCP_PID}" 2>/dev/null || break
    sleep 0.05
done
[[ -n ${tcp_resumed} ]] || say "TCP stream: no echo within 10 s after the VIPs moved (fw2 dropped: $(fw_drops fw2))"
[[ -n ${udp_resumed} ]] || say "UDP stream: no echo within 10 s after the VIPs moved"
[[ -n ${tcp6_resumed} ]] || say "IPv6 TCP stream: no echo within 10 s after the VIPs moved"
[[ -n ${sctp_resumed} ]] || say "SCTP stream: no echo within 10 s after the VIPs moved (fw2 dropped: $(fw_drops fw2))"
# The two closes: the FIN_WAIT client reads the server's end of file, the server's LAST-ACK socket of the
# TIME_WAIT connection gets its ACK (bounded: 15 s after the lift; retransmissions back off exponentially).
finwait_done=0 timewait_done=0
while (($(now_ms) - t_lift < 15000)); do
    ((finwait_done)) || kill -0 "${CLOSE_PID[${FINWAIT_PORT}]}" 2>/dev/null || finwait_done=$(now_ms)
    ((timewait_done)) || (($(server_last_ack) > 0)) || timewait_done=$(now_ms)
    ((finwait_done && timewait_done)) && break
    sleep 0.05
done
say "FIN_WAIT connection: $( ((finwait_done)) && echo "closed $((finwait_done - t_lift)) ms after the server's side recovered" || echo "not closed 15 s after the server's side recovered")"
say "TIME_WAIT connection: the server's LAST-ACK socket $( ((timewait_done)) && echo "got its ACK $((timewait_done - t_lift)) ms after the server's side recovered" || echo "still waits for its ACK 15 s after the server's side recovered")"
sleep 2

if [[ ${SYNC} == conntrackd ]]; then
    # fw2's promotion: keepalived ran notify_master after it took the VIPs; Debian's script commits the
    # external cache (-c), flushes the caches (-f), resyncs with the kernel (-R) and sends a bulk (-B). Until it
    # is done (bounded), then the times its wrapper logged.
    ok=0
    for _ in $(seq 1200); do notify_done fw2 primary "${t_cut}" && { ok=1; break; }; sleep 0.1; done
    epoch_of() { # file first-field second-field key: the first "key=ms" value after the cut
        awk -v a="$2" -v b="$3" -v k="$4=" -v t="${t_cut}" '$1 == a && $2 == b {
            for (i = 3; i <= NF; i++) if (index($i, k) == 1 && substr($i, length(k) + 1) + 0 > t) {print substr($i, length(k) + 1); exit}}' "$1"
    }
    n_start=$(epoch_of "${WORK}/fw2/notify.log" notify primary start_ms)
    n_end=$(epoch_of "${WORK}/fw2/notify.log" notify primary end_ms)
    c_line=$(awk -v t="${t_cut}" '$1 == "call" && $2 == "primary" && $5 == "-c" && substr($6, 10) + 0 > t {print; exit}' \
        "${WORK}/fw2/calls.log" 2>/dev/null || true)
    if ((ok)) && [[ -n ${n_start} && -n ${c_line} ]]; then
        c_start=$(sed -n 's/.* start_ms=\([0-9]*\).*/\1/p' <<<"${c_line}")
        c_end=$(sed -n 's/.* end_ms=\([0-9]*\).*/\1/p' <<<"${c_line}")
        c_rc=$(sed -n 's/.* rc=\([0-9]*\).*/\1/p' <<<"${c_line}")
        say "fw2's notify_master started $((n_start - t_vip)) ms after the VIPs moved; 'conntrackd -c' took $((c_end - c_start)) ms (exit ${c_rc}): all committed $((c_end - t_vip)) ms after the VIPs moved; the script took $((n_end - n_start)) ms"
        ((QUIET)) || grep -iE 'commit' "${WORK}/fw2/conntrackd.log" | tail -4 | sed 's/^/    conntrackd.log: /'
        result "promotion commit_ms=$((c_end - c_start)) commit_rc=${c_rc} notify_after_vip_ms=$((n_start - t_vip)) committed_after_vip_ms=$((c_end - t_vip)) promotion_to_committed_ms=$((c_end - n_start)) script_ms=$((n_end - n_start))"
    else
        say "fw2's notify_master script did not finish within 120 s after the streams resumed (or logged no commit)"
        log_tail fw2
        result "promotion commit_ms=none"
    fi
fi

if ((ENTRIES > 0)); then
    committed=no
    ((fw2_entries_at_vip >= fw1_entries)) && committed=yes
    injected=$(in_ns "${NS_FW2}" conntrack -L -p tcp -d 198.51.100.10 2>/dev/null | grep -c "src=${WAN_VIP} \|dst=${WAN_VIP} " || true)
    say "fw2's kernel: ${fw2_entries_before} entries before the cut, ${fw2_entries_at_vip} when the VIPs appeared (fw1 had ${fw1_entries}); ${injected} of the ${ENTRIES} injected NATed entries now"
    say "committed_before_vip=${committed} present=${fw2_entries_at_vip} of ${fw1_entries}"
    result "entries committed_before_vip=${committed} present=${fw2_entries_at_vip} primary=${fw1_entries} primary_unsent=${fw1_unsent} injected_present=${injected} injected=${ENTRIES} before_cut=${fw2_entries_before}"
fi
if [[ ${SYNC} == ctsync ]]; then
    ctl fw2 stats >"${WORK}/fw2-stats-failover.txt" 2>&1 || true
    steps=$(awk '$1 ~ /^failover\.(promote_|promotions|standby_written)/ {printf "%s%s=%s", sep, $1, $2; sep = " "}' \
        "${WORK}/fw2-stats-failover.txt")
    promotions_now=$(awk '$1 == "failover.promotions" {print $2}' "${WORK}/fw2-stats-failover.txt")
    steps="${steps} promotions_before_cut=${promotions_before} promotions_at_failover=$((${promotions_now:-0} - promotions_before))"
    say "fw2's promotion steps (ctsyncctl stats): ${steps}"
    result "promotion ${steps}"
fi

# ---------------------------------------------------------------------------------------------------------
failback_ok=1
if ((FAILBACK)); then
    step "failback: fw1's ports restored; fw1 must take the VIPs back only with a complete table"
    failback_ok=0
    t_restore=$(now_ms)
    cut_fw1 up
    fw1_complete_at_vip=""
    while (($(now_ms) - t_restore < 30000)); do
        if [[ "$(vips fw1)" == "lan wan" ]]; then
            [[ ${SYNC} == ctsync ]] && fw1_complete_at_vip=$(replication_complete fw1)
            break
        fi
        sleep 0.01
    done
    if wait_master fw1 $((30 - ($(now_ms) - t_restore) / 1000)); then
        failback_ok=1
        failback_ms=$(($(now_ms) - t_restore))
        say "fw1 is master again ${failback_ms} ms after its ports came back${fw1_complete_at_vip:+ (its table complete when it took the VIPs: ${fw1_complete_at_vip})}"
        failback_result="takeover_ms=${failback_ms} fw1_complete=${fw1_complete_at_vip:-n/a}"
    else
        say "fw1 is not master 30 s after its ports came back (fw1: '$(vips fw1)', fw2: '$(vips fw2)')"
        log_tail fw1
        failback_result="takeover_ms=none"
    fi
    sleep 2
    # What fw1 dropped after it came back: "invalid" here means its kernel entry of the stream was stale
    # (TCP window tracking from before the failover) and was not replaced by the replicated one.
    drops=$(fw_drops fw1)
    say "fw1's forward chain dropped since the start: ${drops}"
    result "failback ${failback_result} fw1_invalid_drops=$(awk -F', ' '{print $2 + 0}' <<<"${drops}")"
fi

# ---------------------------------------------------------------------------------------------------------
step "stop the streams"
touch "${UNTIL}"
for pid in "${TCP_PID}" "${UDP_PID}" "${TCP6_PID}" ${SCTP_PID} "${HALF_PID}" "${CLOSE_PID[${FINWAIT_PORT}]}" "${CLOSE_PID[${TIMEWAIT_PORT}]}"; do
    for _ in $(seq 150); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.1; done
    kill -0 "${pid}" 2>/dev/null && kill -KILL "${pid}" 2>/dev/null
    wait "${pid}" 2>/dev/null || true
    forget_pid "${pid}"
done
rst=$(rst_count)
tcp=$(cat "${WORK}/tcp.json")
udp=$(cat "${WORK}/udp.json")
say "tcp: ${tcp}"
say "udp: ${udp}"
field() { sed -n "s/.*\"$2\":\(\"\([^\"]*\)\"\|\([-0-9]*\)\).*/\2\3/p" <<<"$1"; }
[[ -n ${tcp} && -n ${udp} ]] || die "a stream printed no summary (see ${WORK}/tcp.err, ${WORK}/udp.err)"

exit_code=0
# TCP: no error, nothing lost, and echoes after the VIPs moved.
tcp_gap=$(field "${tcp}" max_gap_ms)
tcp_lost=$(field "${tcp}" lost)
tcp_rto=$(field "${tcp}" max_rto_ms)
tcp_error=$(field "${tcp}" error)
tcp_last=$(field "${tcp}" last_echo_epoch_ms)
tcp_verdict=BROKEN
[[ -z ${tcp_error} && ${tcp_lost} -eq 0 && ${tcp_last} -gt ${t_vip} ]] && tcp_verdict=SURVIVED
bound=$((takeover_ms + tcp_rto + 250))
within=no
((tcp_gap <= bound)) && within=yes
[[ ${tcp_verdict} == SURVIVED ]] || exit_code=1
result "tcp verdict=${tcp_verdict} gap_ms=${tcp_gap} lost=${tcp_lost} sent=$(field "${tcp}" sent) max_rto_ms=${tcp_rto} retrans=$(field "${tcp}" retrans) bound_ms=${bound} within_bound=${within} error=\"${tcp_error}\""
# UDP: echoes after the VIPs moved, and the server saw one source (the NAT mapping held).
udp_gap=$(field "${udp}" max_gap_ms)
udp_last=$(field "${udp}" last_echo_epoch_ms)
udp_mappings=$(sed -n 's/.*"mappings":\[\([^]]*\)\].*/\1/p' <<<"${udp}")
udp_count=$(tr ',' '\n' <<<"${udp_mappings}" | grep -c . || true)
udp_verdict=BROKEN
[[ ${udp_last} -gt ${t_vip} && ${udp_count} -eq 1 ]] && udp_verdict=SURVIVED
[[ ${udp_verdict} == SURVIVED ]] || exit_code=1
result "udp verdict=${udp_verdict} gap_ms=${udp_gap} lost=$(field "${udp}" lost) sent=$(field "${udp}" sent) mappings=${udp_count} seen=${udp_mappings//\"/}"
# IPv6: the same checks as the IPv4 stream.
tcp6=$(cat "${WORK}/tcp6.json")
tcp6_verdict=BROKEN
[[ -n ${tcp6} && -z $(field "${tcp6}" error) && $(field "${tcp6}" lost) -eq 0 && $(field "${tcp6}" last_echo_epoch_ms) -gt ${t_vip} ]] &&
    tcp6_verdict=SURVIVED
[[ ${tcp6_verdict} == SURVIVED ]] || exit_code=1
result "tcp6 verdict=${tcp6_verdict} gap_ms=$(field "${tcp6}" max_gap_ms) lost=$(field "${tcp6}" lost) sent=$(field "${tcp6}" sent) max_rto_ms=$(field "${tcp6}" max_rto_ms) error=\"$(field "${tcp6}" error)\""
if ((SCTP)); then
    sctp=$(cat "${WORK}/sctp.json")
    sctp_verdict=BROKEN
    [[ -n ${sctp} && -z $(field "${sctp}" error) && $(field "${sctp}" lost) -eq 0 && $(field "${sctp}" last_echo_epoch_ms) -gt ${t_vip} ]] &&
        sctp_verdict=SURVIVED
    [[ ${sctp_verdict} == SURVIVED ]] || exit_code=1
    result "sctp verdict=${sctp_verdict} gap_ms=$(field "${sctp}" max_gap_ms) lost=$(field "${sctp}" lost) sent=$(field "${sctp}" sent) max_rto_ms=$(field "${sctp}" max_rto_ms) sends_deferred=$(field "${sctp}" sends_deferred) fw2_invalid=$(fw_counter fw2 "dropped: invalid") fw2_non_init_new=$(fw_counter fw2 "dropped: non-INIT new") error=\"$(field "${sctp}" error)\""
fi
# Closing states. Half-closed (CLOSE_WAIT): the server's direction went on through the failover with
# nothing lost and ended with its FIN. FIN_WAIT: the close finished after the failover (the client read the
# server's end of file). TIME_WAIT: the closed connection's late retransmission (the server's FIN, its last
# ACK lost) was answered through fw2, as the primary would have let it. Each "as TCP would without a failover".
half=$(cat "${WORK}/half.json")
half_verdict=BROKEN
[[ -n ${half} && -z $(field "${half}" error) && $(field "${half}" lost) -eq 0 && $(field "${half}" eof_epoch_ms) -gt 0 &&
    $(field "${half}" last_echo_epoch_ms) -gt ${t_vip} ]] && half_verdict=SURVIVED
finwait=$(cat "${WORK}/close-${FINWAIT_PORT}.json")
finwait_verdict=BROKEN
[[ -n ${finwait} && -z $(field "${finwait}" error) && $(field "${finwait}" eof_epoch_ms) -gt ${t_lift} ]] && finwait_verdict=CLOSED
timewait=$(cat "${WORK}/close-${TIMEWAIT_PORT}.json")
timewait_verdict=BROKEN
[[ -n ${timewait} && $(field "${timewait}" eof_epoch_ms) -gt 0 && $(field "${timewait}" eof_epoch_ms) -lt ${t_cut} &&
    ${last_ack_before} -eq 1 ]] && ((timewait_done)) && timewait_verdict=CLOSED
[[ ${half_verdict} == SURVIVED && ${finwait_verdict} == CLOSED && ${timewait_verdict} == CLOSED ]] || exit_code=1
result "tcp_half_closed verdict=${half_verdict} fw1=${FW1_STATE[${HALF_PORT}]} fw2_before_cut=${FW2_STATE_BEFORE[${HALF_PORT}]} fw2_at_vip=${FW2_STATE_AT_VIP[${HALF_PORT}]} lines=$(field "${half}" lines) lost=$(field "${half}" lost) gap_ms=$(field "${half}" max_gap_ms) error=\"$(field "${half}" error)\""
result "tcp_fin_wait verdict=${finwait_verdict} fw1=${FW1_STATE[${FINWAIT_PORT}]} fw2_before_cut=${FW2_STATE_BEFORE[${FINWAIT_PORT}]} fw2_at_vip=${FW2_STATE_AT_VIP[${FINWAIT_PORT}]} closed_after_lift_ms=$( ((finwait_done)) && echo $((finwait_done - t_lift)) || echo none) error=\"$(field "${finwait}" error)\""
result "tcp_time_wait verdict=${timewait_verdict} fw1=${FW1_STATE[${TIMEWAIT_PORT}]} fw2_before_cut=${FW2_STATE_BEFORE[${TIMEWAIT_PORT}]} fw2_at_vip=${FW2_STATE_AT_VIP[${TIMEWAIT_PORT}]} server_last_ack_before=${last_ack_before} answered_after_lift_ms=$( ((timewait_done)) && echo $((timewait_done - t_lift)) || echo none)"
result "rst=${rst}"
((FAILBACK && !failback_ok)) && exit_code=1
((burst_ok)) || exit_code=1
if ((ENTRIES > 0)) && [[ ${committed} != yes || ${injected} -ne ${ENTRIES} ]]; then exit_code=1; fi

step "verdict"
explain "SURVIVED: the same TCP connection went on with nothing lost and no reset, and the UDP session kept"
explain "its NAT mapping (the server saw one source); BROKEN: it did not."
say "TCP: ${tcp_verdict} — longest gap ${tcp_gap} ms, ${tcp_lost} lines lost; VRRP takeover ${takeover_ms} ms + largest TCP RTO ${tcp_rto} ms (+250 ms) = ${bound} ms: gap within it: ${within}"
say "UDP: ${udp_verdict} — longest gap ${udp_gap} ms; the server saw ${udp_count} source(s): ${udp_mappings//\"/}"
say "IPv6 TCP: ${tcp6_verdict} — longest gap $(field "${tcp6}" max_gap_ms) ms, $(field "${tcp6}" lost) lines lost"
((SCTP == 0)) || say "SCTP: ${sctp_verdict} — longest gap $(field "${sctp}" max_gap_ms) ms, $(field "${sctp}" lost) lines lost"
say "TCP half-closed (${FW1_STATE[${HALF_PORT}]}): ${half_verdict} — the server's direction: $(field "${half}" lines) lines, $(field "${half}" lost) lost, longest gap $(field "${half}" max_gap_ms) ms"
say "TCP FIN_WAIT (${FW1_STATE[${FINWAIT_PORT}]} on fw1, ${FW2_STATE_AT_VIP[${FINWAIT_PORT}]} on fw2 at the takeover): ${finwait_verdict}"
say "TCP TIME_WAIT (${FW1_STATE[${TIMEWAIT_PORT}]} on fw1, ${FW2_STATE_AT_VIP[${TIMEWAIT_PORT}]} on fw2 at the takeover): ${timewait_verdict}"
say "TCP resets seen by the server: ${rst}"
if [[ ${SYNC} == none ]]; then
    say "(no state replication: fw2 dropped the stream's segments ($(fw_drops fw2)) and gave the UDP session a new source port — the expected BROKEN)"
fi
exit "${exit_code}"
