#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Replication benchmark (issue #4): ctsync against conntrackd (FTFW over UDP), same lab, same loads, one run.
#   (a) N NATed TCP entries injected by ctnetlink (ct-inject) into the primary's kernel;
#   (b) C real short TCP connections (connect, one line each way, close) from a client namespace through the
#       primary acting as a NAT firewall to a server namespace.
# Reported for each: CPU microseconds per kernel event on the primary and on the backup (utime + stime of the
# daemon over the load, divided by the events a `conntrack -E` listener saw on the primary in (b), and by N in
# (a), where a burst of N inserts overruns every listener), bytes the
# primary put on the sync link per entry or flow (IP and UDP headers included, from the interface counters),
# and datagrams per entry or flow.
#
# Usage: bench/replication_bench.sh [N] [C]   (default 100000 10000; needs root and a build in build/)
# ctsync's backup runs a cold standby (external cache only), as conntrackd's backup does by default: like for
# like. STANDBY=warm measures ctsync's default warm standby, whose backup also writes every entry into its
# kernel, against conntrackd with DisableExternalCache On (which does the same); the backup then counts as
# holding an entry once it is in its kernel.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${CTSYNC_BUILD_DIR:-${ROOT}/build}/bin"
N="${1:-100000}"
C="${2:-10000}"
source "${ROOT}/bench/lib.sh"
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# The lab: primary and backup on a sync veth; for (b) a client and a server on either side of the primary.
lab() {
    ns_new pri; ns_new bak; ns_new cli; ns_new srv
    ip link add sy0 netns "${PREFIX}pri" type veth peer sy0 netns "${PREFIX}bak"
    in_ns pri ip addr add 198.51.100.1/24 dev sy0; in_ns pri ip link set sy0 up
    in_ns bak ip addr add 198.51.100.2/24 dev sy0; in_ns bak ip link set sy0 up
    ip link add lan netns "${PREFIX}pri" type veth peer c0 netns "${PREFIX}cli"
    ip link add wan netns "${PREFIX}pri" type veth peer s0 netns "${PREFIX}srv"
    in_ns pri ip addr add 192.0.2.1/24 dev lan; in_ns pri ip link set lan up
    in_ns pri ip addr add 203.0.113.1/24 dev wan; in_ns pri ip link set wan up
    in_ns cli ip addr add 192.0.2.2/24 dev c0; in_ns cli ip link set c0 up
    in_ns cli ip route add default via 192.0.2.1
    in_ns srv ip addr add 203.0.113.2/24 dev s0; in_ns srv ip link set s0 up
    in_ns pri sysctl -qw net.ipv4.ip_forward=1
    in_ns pri nft 'add table ip nat; add chain ip nat post { type nat hook postrouting priority 100; }; add rule ip nat post oifname "wan" masquerade'
    ip netns exec "${PREFIX}srv" "${BIN}/lab-peer" tcp-server 8080 >/dev/null & PIDS+=("$!")
}

ctsync_config() { # name node_id role
    (umask 077; printf '%064d\n' 7 >"${WORK}/sync.key")
    cat >"${WORK}/$1.json" <<JSON
{"node": {"id": $2}, "daemon": {"lock_file": "${WORK}/$1.lock", "control_socket": "${WORK}/$1.sock",
 "log": {"level": "warn", "file": "${WORK}/$1.log"}},
 "source": {"plugin": "source-ctnetlink", "config": {"expectations": false, "resync_interval_s": 0,
            "event_buffer_max_bytes": 268435456${EXTRA_SOURCE:-}}},
 "transports": [{"plugin": "transport-mcast", "config": {"interface": "sy0", "group": "239.255.0.1"}}],
 "replication": {"initial_role": "$3"}, "failover": {"standby": "${STANDBY:-cold}"},
 "security": {"keys": [{"id": 1, "file": "${WORK}/sync.key"}]}}
JSON
}
ctsync_external() { "${BIN}/ctsyncctl" -C "${WORK}/$1.json" --timeout 60000 status --json | sed -n 's/.*"external_flows": \([0-9]*\).*/\1/p'; }
ctsync_complete() { "${BIN}/ctsyncctl" -C "${WORK}/$1.json" replication --json | sed -n 's/^  "complete": \(.*\),$/\1/p'; }
# conntrackd's caches through its unix socket (a path: no need to enter its namespace).
cd_cache() { conntrackd -C "${WORK}/$1.conf" -s 2>/dev/null | awk -v c="cache $2:" '$0 ~ c {x=1} x && /current active connections/ {print $NF; exit}'; }
# Waits (bounded) until a command prints a number of at least `want`; polls every 100 ms (the polling costs
# both daemons the same).
wait_ge() {
    local want="$1" limit="$2"; shift 2
    for _ in $(seq "$((limit * 10))"); do
        local v; v=$("$@" 2>/dev/null || true)
        [[ -n "${v}" && "${v}" -ge "${want}" ]] && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$*' to reach ${want} (last: $("$@" 2>&1 | tail -1))" >&2
}
kernel_count() { in_ns "$1" sysctl -n net.netfilter.nf_conntrack_count; }
counters() { in_ns pri cat /sys/class/net/sy0/statistics/tx_bytes /sys/class/net/sy0/statistics/tx_packets | paste -sd' '; }

# run IMPL SCENARIO: sets CPU_PRI_US CPU_BAK_US EVENTS BYTES PACKETS UNITS
run() {
    local impl="$1" scenario="$2" pri_pid bak_pid
    lab
    if [[ ${impl} == ctsync ]]; then
        ctsync_config pri 1 primary; ctsync_config bak 2 backup
        ip netns exec "${PREFIX}pri" "${BIN}/ctsyncd" -C "${WORK}/pri.json" & PIDS+=("$!"); pri_pid=$!
        ip netns exec "${PREFIX}bak" "${BIN}/ctsyncd" -C "${WORK}/bak.json" & PIDS+=("$!"); bak_pid=$!
        wait_for true 20 ctsync_complete bak
    else
        local warm=""; [[ ${STANDBY:-cold} == warm ]] && warm=1
        CD_WARM=${warm} conntrackd_config cp 198.51.100.1 198.51.100.2 sy0
        CD_WARM=${warm} conntrackd_config cb 198.51.100.2 198.51.100.1 sy0
        ip netns exec "${PREFIX}pri" conntrackd -C "${WORK}/cp.conf" & PIDS+=("$!"); pri_pid=$!
        ip netns exec "${PREFIX}bak" conntrackd -C "${WORK}/cb.conf" & PIDS+=("$!"); bak_pid=$!
        wait_for 0 20 cd_cache cp internal
    fi
    sleep 1
    ip netns exec "${PREFIX}pri" conntrack -E >"${WORK}/events.txt" 2>/dev/null & PIDS+=("$!")
    sleep 0.5
    local p0 b0 c0 p1 b1 c1
    local perf_pid=""
    if [[ -n ${PERF_PRIMARY:-} ]]; then  # investigating: a profile of the primary during the load
        if [[ ${PERF_PRIMARY} == strace ]]; then strace -c -f -p "${pri_pid}" -o "${WORK}/${scenario}-${impl}.strace" & else perf record -F 2000 -g -p "${pri_pid}" -o "${WORK}/${scenario}-${impl}.perf" >/dev/null 2>&1 & fi
        perf_pid=$!
        sleep 0.5
    fi
    p0=$(cpu_ticks "${pri_pid}"); b0=$(cpu_ticks "${bak_pid}"); c0=$(counters)
    local w0; w0=$(awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/${pri_pid}/status")
    if [[ ${scenario} == a ]]; then
        in_ns pri "${BIN}/ct-inject" --count "${N}" --nat >/dev/null
        UNITS=${N}
        if [[ ${STANDBY:-cold} == warm ]]; then wait_ge "${N}" 120 kernel_count bak
        elif [[ ${impl} == ctsync ]]; then wait_ge "${N}" 120 ctsync_external bak
        else wait_ge "${N}" 120 cd_cache cb external; fi
    else
        LAB_PEER_QUIET=1 in_ns cli "${BIN}/lab-peer" tcp-client 203.0.113.2 8080 --send hello --repeat "${C}" >/dev/null
        UNITS=${C}
    fi
    sleep 3  # what is still queued goes out (acknowledgements, the last batches)
    p1=$(cpu_ticks "${pri_pid}"); b1=$(cpu_ticks "${bak_pid}"); c1=$(counters)
    echo "  [${scenario}] ${impl}: primary slept $(( $(awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/${pri_pid}/status") - w0 )) times" >&2
    if [[ -n ${perf_pid} ]]; then kill -INT "${perf_pid}"; wait "${perf_pid}" || true; fi
    EVENTS=$(wc -l <"${WORK}/events.txt")
    # A burst of N inserts overruns any listener (conntrack -E included): the kernel raised N NEW events.
    [[ ${scenario} == a ]] && EVENTS=${N}
    CPU_PRI_US=$(( (p1 - p0) * TICK_US )); CPU_BAK_US=$(( (b1 - b0) * TICK_US ))
    BYTES=$(( ${c1% *} - ${c0% *} )); PACKETS=$(( ${c1#* } - ${c0#* } ))
    if [[ ${STANDBY:-cold} == warm ]]; then
        HELD=$(kernel_count bak)
        [[ ${impl} == ctsync ]] && for n in pri bak; do "${BIN}/ctsyncctl" -C "${WORK}/${n}.json" stats >"${WORK}/${scenario}-${n}.stats"; done
    elif [[ ${impl} == ctsync ]]; then
        HELD=$(ctsync_external bak)
        for n in pri bak; do "${BIN}/ctsyncctl" -C "${WORK}/${n}.json" stats >"${WORK}/${scenario}-${n}.stats"; done
    else
        HELD=$(cd_cache cb external)
    fi
    cleanup
}

echo "# ctsync replication benchmark"
echo "command: ${STANDBY:+STANDBY=${STANDBY} }bench/replication_bench.sh ${N} ${C}"
echo "machine: $(uname -r), $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
echo "conntrackd: $(conntrackd -v 2>&1 | head -1)"
echo
echo "| load | daemon | events | CPU µs/event primary | CPU µs/event backup | wire bytes per entry/flow | datagrams per entry/flow | backup held |"
echo "|---|---|---|---|---|---|---|---|"
declare -A R
for scenario in a b; do
    for impl in ctsync conntrackd; do
        [[ -n ${ONLY:-} && ${ONLY} != "${scenario}.${impl}" ]] && continue  # one case, when investigating
        echo "  [${scenario}] ${impl}" >&2
        run "${impl}" "${scenario}"
        label=$([[ ${scenario} == a ]] && echo "(a) ${N} injected NATed TCP entries" || echo "(b) ${C} short TCP connections")
        pri=$(awk -v c="${CPU_PRI_US}" -v e="${EVENTS}" 'BEGIN {printf "%.2f", c / e}')
        bak=$(awk -v c="${CPU_BAK_US}" -v e="${EVENTS}" 'BEGIN {printf "%.2f", c / e}')
        bpu=$(awk -v b="${BYTES}" -v u="${UNITS}" 'BEGIN {printf "%.1f", b / u}')
        dpu=$(awk -v p="${PACKETS}" -v u="${UNITS}" 'BEGIN {printf "%.3f", p / u}')
        R["${scenario}.${impl}"]="${pri} ${bak} ${bpu} ${dpu}"
        echo "| ${label} | ${impl} | ${EVENTS} | ${pri} | ${bak} | ${bpu} | ${dpu} | ${HELD} |"
    done
done
echo
echo "Ratios ctsync / conntrackd (lower is better):"
for scenario in a b; do
    read -r cp cb cw cd <<<"${R[${scenario}.ctsync]}"
    read -r dp db dw dd <<<"${R[${scenario}.conntrackd]}"
    awk -v s="${scenario}" -v cp="${cp}" -v dp="${dp}" -v cb="${cb}" -v db="${db}" -v cw="${cw}" -v dw="${dw}" \
        -v cd="${cd}" -v dd="${dd}" 'BEGIN {printf "(%s) CPU primary %.2f, CPU backup %.2f, wire bytes %.2f, datagrams %.2f\n", s, cp / dp, cb / db, cw / dw, cd / dd}'
done
echo
echo "CPU: utime + stime of the daemon over the load and 3 s after it, in ticks of ${TICK_US} µs, divided by the"
echo "kernel events a conntrack -E listener saw on the primary ((b)), or N ((a): N NEW events). Wire: bytes and packets the primary's sync"
echo "interface sent (ctsync: multicast, authenticated; conntrackd: UDP, FTFW), headers included."
