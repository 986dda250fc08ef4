#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Transport comparison (issue 10), the part that runs inside the test VM (Debian's stock kernel: TIPC):
# bench/transport_compare.sh boots the VM and runs this, then turns its RESULT lines into the table and plot.
# The same replication workload over each transport, same kernel, same settings, fresh labs for every
# repetition. Run it directly while iterating:
#
#   sudo scripts/vm/vm-run.sh --timeout 3000 -- bench/transport_compare_vm.sh [--runs R] [--entries N]
#        [--transports "mcast tcp tipc"] [--latency-count C] [--latency-rate PER_S] [--loss PCT]
#
# Lab: three nodes (network namespaces pri, bk1, bk2), each with a veth sync0 on one bridge in a switch
# namespace (multicast snooping and STP off), 198.51.100.1-3/24; one ctsyncd each (node ids 1-3, pri primary,
# backups warm standby: each replicated entry is written into the backup's own kernel as it arrives), one
# transport, the same replication settings for all (alive 100 ms, peer_timeout 1500 ms, link_silence 600 ms).
# Per transport and repetition, four labs:
#   A  latency (bench/ct_latency.cpp: entries created one by one on pri at a paced rate, timed to their NEW
#      event in bk1's kernel), then throughput and CPU (N NATed entries injected at once on pri by ct-inject;
#      the time until both backups' kernels hold them; utime+stime of the daemons over that and 2 s after,
#      divided by N), then failure detection after SIGKILL of bk2's ctsyncd;
#   B  convergence under PCT % random loss on every node's ingress from sync0 (nftables netdev ingress,
#      numgen: the same hook for IP and for TIPC, which is not IP), same injection, and whether the backups'
#      external caches then equal the primary's internal cache exactly;
#   C  failure detection when bk2 vanishes from the network: its cable is cut (its port on the switch down);
#   D  the same when bk2 takes its own sync0 down (ip link set sync0 down inside it): bk2's kernel sees the
#      device go, so this need not be silent (TIPC's primary hears of it at once, see docs/BENCHMARKS.md).
# Failure detection is read from the primary's log (event=peer_lost node=3, millisecond timestamps), measured
# from the moment just before the kill or the link change (both on the same clock: CLOCK_REALTIME).
#
# Output: one line per measurement,
#   RESULT transport=T run=I metric=M value=V [key=value...]
# and, when something could not be measured, value=NA reason="..." (never a made-up number). Progress goes to
# standard error. Exit code: 0 when the runs completed (NA lines included), 2 usage, 3 nothing selected could
# run (e.g. only tipc, and its plugin is missing).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${CTSYNC_BUILD_DIR:-${ROOT}/build}/bin"
RUNS=3
N=20000
TRANSPORTS="mcast tcp tipc"
LAT_COUNT=2000
LAT_RATE=500
LOSS=5
usage() {
    sed -n '8,9p' "$0" | sed 's/^# *//' >&2
    exit 2
}
while (($#)); do
    case "$1" in
        --runs) RUNS="${2:?}"; shift 2 ;;
        --entries) N="${2:?}"; shift 2 ;;
        --transports) TRANSPORTS="${2:?}"; shift 2 ;;
        --latency-count) LAT_COUNT="${2:?}"; shift 2 ;;
        --latency-rate) LAT_RATE="${2:?}"; shift 2 ;;
        --loss) LOSS="${2:?}"; shift 2 ;;
        -h | --help) usage ;;
        *) echo "transport_compare_vm: unknown argument '$1'" >&2; usage ;;
    esac
done
for v in RUNS N LAT_COUNT LAT_RATE LOSS; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || { echo "transport_compare_vm: ${v} must be a positive integer" >&2; usage; }
done
((LOSS < 100)) || { echo "transport_compare_vm: --loss must be below 100" >&2; usage; }
for t in ${TRANSPORTS}; do
    [[ ${t} == mcast || ${t} == tcp || ${t} == tipc ]] || { echo "transport_compare_vm: unknown transport '${t}'" >&2; usage; }
done
[[ ${EUID} -eq 0 ]] || { echo "transport_compare_vm: must run as root (namespaces)" >&2; exit 2; }
for b in ctsyncd ctsyncctl ct-inject ct-latency; do
    [[ -x ${BIN}/${b} ]] || { echo "transport_compare_vm: ${BIN}/${b} is missing: build first" >&2; exit 2; }
done
# shellcheck source=bench/lib.sh
source "${ROOT}/bench/lib.sh"
TICK_US=$((1000000 / $(getconf CLK_TCK)))
NODES=(pri bk1 bk2)
T=""  # the transport and repetition the RESULT lines are about
R=0

say() { echo "[$(date +%T)] $*" >&2; }
result() { echo "RESULT transport=${T} run=${R} metric=$1 value=$2${3:+ $3}"; }
na() { echo "RESULT transport=${T} run=${R} metric=$1 value=NA reason=\"$2\""; }
# Microseconds on CLOCK_REALTIME without a fork (the logs' timestamps are on the same clock).
now_us() { local -n _o=$1; _o=${EPOCHREALTIME/./}; }
# The conntrack count of the network namespace a process is in, without a fork (the first field of the
# first per-CPU line of /proc/PID/net/stat/nf_conntrack is the namespace's count, in hex).
kcount() {
    local -n _k=$1
    local line=""
    { read -r _ && read -r line; } <"/proc/$2/net/stat/nf_conntrack" 2>/dev/null || { _k=-1; return; }
    _k=$((16#${line%% *}))
}
ctl() { timeout 30 "${BIN}/ctsyncctl" -C "${WORK}/$1.json" --timeout 20000 "${@:2}"; }
json_num() { sed -n "s/.*\"$1\": \([0-9]*\).*/\1/p" | head -n1; }
ext_flows() { ctl "$1" status --json 2>/dev/null | json_num external_flows; }
int_flows() { ctl "$1" status --json 2>/dev/null | json_num internal_flows; }
# Live peers the node's engine knows of (ctsyncctl replication --json; keys are sorted: "live" precedes "node").
live_peers() { ctl "$1" replication --json 2>/dev/null | grep -c '"live": true' || true; }
complete() { ctl "$1" replication --json 2>/dev/null | sed -n 's/^  "complete": \(.*\),$/\1/p'; }
stat_of() { ctl "$1" stats 2>/dev/null | awk -v k="$2" '$1 == k {print $2; exit}'; }
# Bounded wait: until a command succeeds, at most $1 seconds, polling every $2 seconds.
wait_until() {
    local limit="$1" every="$2" end
    shift 2
    end=$((SECONDS + limit))
    while ((SECONDS < end)); do
        "$@" && return 0
        sleep "${every}"
    done
    "$@"
}
tipc_links_up() { # every node sees its two peers' links up (plus the broadcast link)
    local n ups
    for n in "${NODES[@]}"; do
        ups=$(in_ns "${n}" tipc link list 2>/dev/null | grep -c ': up$' || true)
        ((ups >= 3)) || return 1
    done
}
ready() { # the daemons answer, both backups completed their bulk, the primary hears both
    [[ "$(complete bk1)" == true && "$(complete bk2)" == true && "$(live_peers pri)" -ge 2 ]]
}

declare -A PID
slot() { # transport node-index
    case "$1" in
        mcast) printf '{"plugin": "transport-mcast", "config": {"interface": "sync0", "group": "239.255.0.1"}}' ;;
        tcp)
            local peers="" j
            for j in 0 1 2; do
                ((j == $2)) || peers+="${peers:+, }\"198.51.100.$((j + 1)):3782\""
            done
            printf '{"plugin": "transport-tcp", "config": {"listen": "198.51.100.%d:3782", "peers": [%s]}}' "$(($2 + 1))" "${peers}" ;;
        tipc) printf '{"plugin": "transport-tipc", "config": {}}' ;;
    esac
}
config() { # transport node-index
    local n=${NODES[$2]} role=backup
    ((${2} == 0)) && role=primary
    cat >"${WORK}/${n}.json" <<JSON
{"node": {"id": $(($2 + 1))}, "daemon": {"lock_file": "${WORK}/${n}.lock", "control_socket": "${WORK}/${n}.sock",
 "log": {"level": "info", "file": "${WORK}/${n}.log"}},
 "source": {"plugin": "source-ctnetlink", "config": {"expectations": false, "resync_interval_s": 0}},
 "transports": [$(slot "$1" "$2")],
 "replication": {"initial_role": "${role}", "alive_interval_ms": 100, "peer_timeout_ms": 1500, "link_silence_ms": 600},
 "failover": {"standby": "warm"},
 "security": {"keys": [{"id": 1, "file": "${WORK}/sync.key"}]}}
JSON
}

# Builds the lab and starts the daemons; 0 when ready, else 1 with LAB_ERROR set.
LAB_ERROR=""
lab_up() {
    local t="$1" i n
    LAB_ERROR=""
    rm -f "${WORK}"/*.log
    (umask 077; printf '%064d\n' 7 >"${WORK}/sync.key")
    ns_new sw
    in_ns sw ip link add br0 type bridge mcast_snooping 0 stp_state 0
    in_ns sw ip link set br0 up
    for i in 0 1 2; do
        n=${NODES[i]}
        ns_new "${n}"
        ip link add sync0 netns "${PREFIX}${n}" type veth peer "p${i}" netns "${PREFIX}sw"
        in_ns sw ip link set "p${i}" master br0 up
        in_ns "${n}" ip addr add "198.51.100.$((i + 1))/24" dev sync0
        in_ns "${n}" ip link set sync0 up
        if [[ ${t} == tipc ]]; then
            in_ns "${n}" tipc node set identity "ctsync-${n}"
            in_ns "${n}" tipc bearer enable media eth dev sync0
        fi
        config "${t}" "${i}"
    done
    if [[ ${t} == tipc ]] && ! wait_until 30 0.2 tipc_links_up; then
        LAB_ERROR="TIPC links did not come up within 30 s"
        return 1
    fi
    for i in 0 1 2; do
        n=${NODES[i]}
        ip netns exec "${PREFIX}${n}" "${BIN}/ctsyncd" -C "${WORK}/${n}.json" 2>>"${WORK}/${n}.stderr" &
        PIDS+=("$!")
        PID[${n}]=$!
    done
    local t0=${SECONDS}
    if ! wait_until 60 0.2 ready; then
        for n in "${NODES[@]}"; do
            kill -0 "${PID[${n}]}" 2>/dev/null || { LAB_ERROR="ctsyncd on ${n} exited: $(tail -n1 "${WORK}/${n}.log" "${WORK}/${n}.stderr" 2>/dev/null | grep -v '^==>' | grep . | tail -n1)"; return 1; }
        done
        LAB_ERROR="not ready within 60 s (backups complete: $(complete bk1)/$(complete bk2), primary's live peers: $(live_peers pri))"
        return 1
    fi
    say "${t} run ${R}: lab ready (daemons ready after $((SECONDS - t0)) s)"
}
lab_down() {
    cleanup
    PID=()
}

peer_lost_lines() { grep 'event=peer_lost node=3 ' "${WORK}/pri.log" 2>/dev/null || true; }
peer_down_lines() { grep 'event=peer_state .*node=3 state=down' "${WORK}/pri.log" 2>/dev/null || true; }
# Before the failure: how many such lines the primary's log holds already (the next one is the failure's).
mark_before() { BEFORE_LOST=$(peer_lost_lines | wc -l) BEFORE_DOWN=$(peer_down_lines | wc -l); }
log_us() { date -d "${1%% *}" +%s%6N; }  # the timestamp of a log line, µs
# Waits (bounded) until the primary's log reports node 3 gone; sets DETECT_MS (from $1, µs), DETECT_REASON,
# DETECT_DETAIL, or DETECT_MS="" when it did not within $2 seconds. Then waits up to 2.5 s more for the
# transport's own report of the peer down (TIPC's topology service; mcast and tcp report none), which may
# come after the engine's silence rule already took the peer for gone: REPORT_MS, "" when none came.
detect() {
    local since_us="$1" limit="$2" line="" down="" ts end
    DETECT_MS="" DETECT_REASON="" DETECT_DETAIL="" REPORT_MS=""
    end=$((SECONDS + limit))
    while ((SECONDS < end)); do
        line=$(peer_lost_lines | sed -n "$((BEFORE_LOST + 1))p")
        [[ -n ${line} ]] && break
        sleep 0.02
    done
    [[ -n ${line} ]] || return 0
    ts=$(log_us "${line}") || return 0
    DETECT_MS=$(((ts - since_us) / 1000))
    DETECT_REASON=$(sed -n 's/.* reason=\([a-z]*\).*/\1/p' <<<"${line}")
    DETECT_DETAIL=$(sed -n 's/.* detail="\([^"]*\)".*/\1/p' <<<"${line}" | tr -d '"')
    end=$((${EPOCHREALTIME/./} + 2500000))
    while ((${EPOCHREALTIME/./} < end)); do
        down=$(peer_down_lines | sed -n "$((BEFORE_DOWN + 1))p")
        [[ -n ${down} ]] && break
        sleep 0.05
    done
    if [[ -n ${down} ]] && ts=$(log_us "${down}"); then
        REPORT_MS=$(((ts - since_us) / 1000))
    fi
    # CTSYNC_COMPARE_VERBOSE=1: what the primary logged about node 3, for the post-mortem.
    [[ -z ${CTSYNC_COMPARE_VERBOSE:-} ]] || grep 'node=3' "${WORK}/pri.log" | tail -n 8 | sed 's/^/    pri.log: /' >&2
}
detect_fields() { # the RESULT line's extra fields
    printf 'reason=%s transport_report_ms=%s%s' "${DETECT_REASON}" "${REPORT_MS:-none}" "${DETECT_DETAIL:+ detail=\"${DETECT_DETAIL}\"}"
}

# Injects N entries on the primary and waits until both backups' kernels hold them on top of what they held
# before (warm standby: an entry is in a backup's kernel after it reached its external cache). Sets INJ_MS,
# DONE_MS (from the start of the injection; "" on timeout), BK1_MS, BK2_MS, HELD1, HELD2 (above the baseline).
inject_and_wait() {
    local limit="$1" b1 b2 k1 k2 t0 t now end
    kcount b1 "${PID[bk1]}"
    kcount b2 "${PID[bk2]}"
    BK1_MS="" BK2_MS="" DONE_MS="" INJ_MS=""
    now_us t0
    if ! timeout 120 ip netns exec "${PREFIX}pri" "${BIN}/ct-inject" --count "${N}" --nat >"${WORK}/inject.out" 2>&1; then
        say "ct-inject failed: $(cat "${WORK}/inject.out")"
        return 1
    fi
    now_us t
    INJ_MS=$(((t - t0) / 1000))
    end=$((SECONDS + limit))
    while ((SECONDS < end)); do
        kcount k1 "${PID[bk1]}"
        kcount k2 "${PID[bk2]}"
        now_us now
        [[ -z ${BK1_MS} ]] && ((k1 - b1 >= N)) && BK1_MS=$(((now - t0) / 1000))
        [[ -z ${BK2_MS} ]] && ((k2 - b2 >= N)) && BK2_MS=$(((now - t0) / 1000))
        [[ -n ${BK1_MS} && -n ${BK2_MS} ]] && break
        sleep 0.02
    done
    HELD1=$((k1 - b1)) HELD2=$((k2 - b2))
    [[ -n ${BK1_MS} && -n ${BK2_MS} ]] && DONE_MS=$((BK1_MS > BK2_MS ? BK1_MS : BK2_MS))
    return 0
}

# Lab A: latency, throughput, CPU, failure detection after SIGKILL.
run_a() {
    local t="$1" out p0 b0 c0 p1 b1 c1 e1 e2 x1 x2 now k m
    local -a a_metrics=(latency_p50_us latency_p90_us latency_p99_us latency_max_us latency_lost throughput_eps cpu_primary_us cpu_backup_us detect_kill_ms)
    if ! lab_up "${t}"; then
        say "${t} run ${R}: lab A: ${LAB_ERROR}"
        for m in "${a_metrics[@]}"; do na "${m}" "lab A: ${LAB_ERROR}"; done
        lab_down
        return
    fi
    say "${t} run ${R}: latency (${LAT_COUNT} entries at ${LAT_RATE}/s, pri -> bk1's kernel)"
    if out=$(timeout 120 "${BIN}/ct-latency" --from "${PREFIX}pri" --to "${PREFIX}bk1" --count "${LAT_COUNT}" \
        --rate "${LAT_RATE}" --wait-ms 5000 --timeout 100 2>"${WORK}/latency.err"); then
        say "  ${out}"
        for k in p50 p90 p99 max; do
            result "latency_${k}_us" "$(sed -n "s/.* ${k}_us=\([0-9]*\).*/\1/p" <<<"${out}")" \
                "sent=$(sed -n 's/.* sent=\([0-9]*\).*/\1/p' <<<"${out}") received=$(sed -n 's/.* received=\([0-9]*\).*/\1/p' <<<"${out}")"
        done
        result latency_lost "$(sed -n 's/.* lost=\([0-9]*\).*/\1/p' <<<"${out}")" \
            "overruns=$(sed -n 's/.* overruns=\([0-9]*\).*/\1/p' <<<"${out}")"
    else
        local why
        why="ct-latency failed: $(tr '\n' ' ' <"${WORK}/latency.err" | tr -d '"') ${out}"
        say "  ${why}"
        for k in p50 p90 p99 max; do na "latency_${k}_us" "${why}"; done
        na latency_lost "${why}"
    fi
    sleep 1
    say "${t} run ${R}: throughput (${N} entries injected at once)"
    x1=$(ext_flows bk1) x2=$(ext_flows bk2)
    p0=$(cpu_ticks "${PID[pri]}") b0=$(cpu_ticks "${PID[bk1]}") c0=$(cpu_ticks "${PID[bk2]}")
    if inject_and_wait 300 && [[ -n ${DONE_MS} ]]; then
        sleep 2  # what is still queued (acknowledgements, the last kernel writes)
        p1=$(cpu_ticks "${PID[pri]}") b1=$(cpu_ticks "${PID[bk1]}") c1=$(cpu_ticks "${PID[bk2]}")
        e1=$(ext_flows bk1) e2=$(ext_flows bk2)
        say "  both backups' kernels held the ${N} after ${DONE_MS} ms (bk1 ${BK1_MS}, bk2 ${BK2_MS}; injection ${INJ_MS} ms); external caches +$((e1 - x1)) +$((e2 - x2))"
        result throughput_eps "$(awk -v n="${N}" -v ms="${DONE_MS}" 'BEGIN {printf "%.0f", n * 1000 / ms}')" \
            "ms=${DONE_MS} bk1_ms=${BK1_MS} bk2_ms=${BK2_MS} inject_ms=${INJ_MS} inject_eps=$(awk -v n="${N}" -v ms="${INJ_MS}" 'BEGIN {printf "%.0f", n * 1000 / (ms > 0 ? ms : 1)}') external1=$((e1 - x1)) external2=$((e2 - x2))"
        result cpu_primary_us "$(awk -v c="$(((p1 - p0) * TICK_US))" -v n="${N}" 'BEGIN {printf "%.1f", c / n}')" "ticks=$((p1 - p0))"
        result cpu_backup_us "$(awk -v c="$(((b1 - b0) * TICK_US))" -v n="${N}" 'BEGIN {printf "%.1f", c / n}')" \
            "ticks=$((b1 - b0)) backup2_us=$(awk -v c="$(((c1 - c0) * TICK_US))" -v n="${N}" 'BEGIN {printf "%.1f", c / n}')"
    else
        local why="the backups' kernels did not hold the ${N} entries within 300 s (held +${HELD1:-?} and +${HELD2:-?}; ${INJ_MS:+injection ${INJ_MS} ms}${INJ_MS:-ct-inject failed})"
        say "  ${why}"
        na throughput_eps "${why}"
        na cpu_primary_us "${why}"
        na cpu_backup_us "${why}"
    fi
    say "${t} run ${R}: failure detection, SIGKILL of bk2's ctsyncd"
    if [[ "$(live_peers pri)" -ge 2 ]]; then
        mark_before
        now_us now
        { kill -9 "${PID[bk2]}" && wait "${PID[bk2]}"; } 2>/dev/null || true  # reaped here: no "Killed" notice
        detect "${now}" 15
        if [[ -n ${DETECT_MS} ]]; then
            say "  primary reported node 3 gone after ${DETECT_MS} ms (reason=${DETECT_REASON}; the transport's report: ${REPORT_MS:-none} ms)"
            result detect_kill_ms "${DETECT_MS}" "$(detect_fields)"
        else
            na detect_kill_ms "the primary did not report node 3 gone within 15 s"
        fi
    else
        na detect_kill_ms "the primary did not hear both backups before the kill"
    fi
    lab_down
}

loss_rules() { # transport percent: random loss on every node's ingress from sync0
    local proto=ip n
    [[ $1 == tipc ]] && proto=0x88ca
    for n in "${NODES[@]}"; do
        in_ns "${n}" nft "add table netdev ctsync_loss; add chain netdev ctsync_loss in { type filter hook ingress device \"sync0\" priority 0; }; add rule netdev ctsync_loss in meta protocol ${proto} numgen random mod 100 < $2 counter drop; add rule netdev ctsync_loss in meta protocol ${proto} counter"
    done
}
loss_counts() { # node: "dropped/passed" packets of the loss rules
    in_ns "$1" nft list table netdev ctsync_loss 2>/dev/null | awk '/counter packets/ {for (i = 1; i <= NF; i++) if ($i == "packets") v[++n] = $(i + 1)} END {printf "%s/%s", v[1], v[2]}'
}

# Lab B: convergence under loss.
run_b() {
    local t="$1" end ip="" e1="" e2="" exact="no" drops="" n
    if ! lab_up "${t}"; then
        say "${t} run ${R}: lab B: ${LAB_ERROR}"
        na converge_loss_ms "lab B: ${LAB_ERROR}"
        na converge_loss_exact "lab B: ${LAB_ERROR}"
        lab_down
        return
    fi
    if ! loss_rules "${t}" "${LOSS}" 2>"${WORK}/nft.err"; then
        na converge_loss_ms "the loss rules were refused: $(tr '\n' ' ' <"${WORK}/nft.err" | tr -d '"')"
        na converge_loss_exact "no loss rules"
        lab_down
        return
    fi
    say "${t} run ${R}: convergence under ${LOSS} % loss (${N} entries injected at once)"
    if inject_and_wait 300 && [[ -n ${DONE_MS} ]]; then
        result converge_loss_ms "${DONE_MS}" "bk1_ms=${BK1_MS} bk2_ms=${BK2_MS} inject_ms=${INJ_MS} loss=${LOSS}"
        say "  both backups' kernels held the ${N} after ${DONE_MS} ms (bk1 ${BK1_MS}, bk2 ${BK2_MS})"
    else
        na converge_loss_ms "the backups' kernels did not hold the ${N} entries within 300 s under ${LOSS} % loss (held +${HELD1:-?} and +${HELD2:-?})"
    fi
    # Exact: both external caches equal the primary's internal cache in size, checked for up to 30 s more.
    end=$((SECONDS + 30))
    while ((SECONDS < end)); do
        ip=$(int_flows pri) e1=$(ext_flows bk1) e2=$(ext_flows bk2)
        [[ -n ${ip} && ${ip} == "${e1}" && ${ip} == "${e2}" ]] && { exact=yes; break; }
        sleep 0.5
    done
    for n in "${NODES[@]}"; do drops+="${drops:+,}${n}:$(loss_counts "${n}")"; done
    result converge_loss_exact "${exact}" "primary_internal=${ip} bk1_external=${e1} bk2_external=${e2} dropped_passed=${drops} retransmits=$(stat_of pri replication.retransmits) nacks_bk1=$(stat_of bk1 replication.nacks_sent) nacks_bk2=$(stat_of bk2 replication.nacks_sent)"
    say "  exact=${exact}: primary internal ${ip}, bk1 external ${e1}, bk2 external ${e2}; loss rules dropped/passed ${drops}"
    lab_down
}

# Labs C and D: failure detection when bk2 vanishes from the network. C: its cable is cut (its port on the
# switch goes down: nothing more leaves bk2, and bk2 cannot say goodbye); D: bk2 takes its own sync0 down
# (its kernel sees the device go and may tell its peers, as TIPC does).
run_cd() {
    local t="$1" how="$2" metric now
    metric=$([[ ${how} == cable ]] && echo detect_cable_ms || echo detect_ifdown_ms)
    if ! lab_up "${t}"; then
        say "${t} run ${R}: lab ${how}: ${LAB_ERROR}"
        na "${metric}" "lab: ${LAB_ERROR}"
        lab_down
        return
    fi
    sleep 1
    mark_before
    if [[ ${how} == cable ]]; then
        say "${t} run ${R}: failure detection, bk2's cable cut (its switch port down)"
        now_us now
        ip -n "${PREFIX}sw" link set p2 down
    else
        say "${t} run ${R}: failure detection, bk2 takes its sync0 down"
        now_us now
        ip -n "${PREFIX}bk2" link set sync0 down
    fi
    detect "${now}" 15
    if [[ -n ${DETECT_MS} ]]; then
        say "  primary reported node 3 gone after ${DETECT_MS} ms (reason=${DETECT_REASON}; the transport's report: ${REPORT_MS:-none} ms)"
        result "${metric}" "${DETECT_MS}" "$(detect_fields)"
    else
        na "${metric}" "the primary did not report node 3 gone within 15 s"
    fi
    lab_down
}

# Warm-up, not reported: the first lab in a fresh VM pays for reading binaries and libraries over 9p.
warm_up() {
    local t="$1"
    say "warm-up with ${t} (not reported)"
    if lab_up "${t}"; then
        timeout 120 ip netns exec "${PREFIX}pri" "${BIN}/ct-inject" --count 2000 --nat >/dev/null 2>&1 || true
        timeout 30 "${BIN}/ct-latency" --from "${PREFIX}pri" --to "${PREFIX}bk1" --count 100 --rate 500 --timeout 20 >/dev/null 2>&1 || true
    fi
    lab_down
}

echo "# transport comparison inside the VM"
echo "command: bench/transport_compare_vm.sh --runs ${RUNS} --entries ${N} --transports \"${TRANSPORTS}\" --latency-count ${LAT_COUNT} --latency-rate ${LAT_RATE} --loss ${LOSS}"
echo "machine: $(uname -r), $(nproc) vCPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%d MiB", $2 / 1024}' /proc/meminfo)"
plugins="$("${BIN}/ctsyncd" --list-plugins 2>&1 || true)"
available=()
for t in ${TRANSPORTS}; do
    T=${t} R=0
    if grep -q "^  transport-${t} " <<<"${plugins}"; then
        available+=("${t}")
    else
        na all "plugin transport-${t} not found (ctsyncd --list-plugins: not built yet?)"
        say "transport-${t}: plugin not found, skipped"
    fi
done
((${#available[@]})) || exit 3
started=${SECONDS}
T=${available[0]}
warm_up "${T}"
# Repetitions outside, transports inside, the order rotated each time: drift in the VM (caches, the host's
# load) spreads over every transport instead of favouring the one that runs last.
for ((R = 1; R <= RUNS; R++)); do
    for ((j = 0; j < ${#available[@]}; j++)); do
        T=${available[$(((j + R - 1) % ${#available[@]}))]}
        run_a "${T}"
        run_b "${T}"
        run_cd "${T}" cable
        run_cd "${T}" ifdown
    done
done
echo "# done in $((SECONDS - started)) s"
