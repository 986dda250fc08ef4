#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# TIPC transport design probe: service multicast + topology service ("A", what plugins/transport-tipc does)
# against TIPC communication groups ("B"), measured by build/bin/tipc-probe (bench/tipc_probe.cpp) between
# three TIPC nodes inside the test VM (the host kernel has no TIPC; shared/LAB-FACTS.md).
#
#   sudo bench/tipc_probe.sh [--runs R] [--count N] [--vm-timeout S]
#
# On the host it boots the VM (scripts/vm/vm-run.sh) and runs itself there with --inside. Inside: three
# namespaces (sender s, receivers r1 r2), each with a veth on one bridge in a fourth (sw; STP and multicast
# snooping off), no IP addresses (TIPC is not IP), a TIPC identity and an eth bearer each, default link
# tolerance; then, R times, every measurement for A and B (one fresh tipc-probe process each), and a Markdown
# table of the medians. Raw lines: "RESULT mode=... test=... key=value ..." (tipc-probe's), also printed.
# Exit code: 0 done (NA cells are measurements that did not complete), 1 lab failure, 2 usage.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${CTSYNC_BUILD_DIR:-${ROOT}/build}/bin"
PROBE="${BIN}/tipc-probe"
RUNS=3
COUNT=20000
VM_TIMEOUT=600
INSIDE=0
usage() { sed -n '7p' "$0" | sed 's/^# *//' >&2; exit 2; }
args=("$@")
while (($#)); do
    case "$1" in
        --runs) RUNS="${2:?}"; shift 2 ;;
        --count) COUNT="${2:?}"; shift 2 ;;
        --vm-timeout) VM_TIMEOUT="${2:?}"; shift 2 ;;
        --inside) INSIDE=1; shift ;;
        -h | --help) usage ;;
        *) echo "tipc_probe: unknown argument '$1'" >&2; usage ;;
    esac
done
for v in RUNS COUNT VM_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || { echo "tipc_probe: ${v} must be a positive integer" >&2; usage; }
done
[[ ${EUID} -eq 0 ]] || { echo "tipc_probe: must run as root (qemu's 9p export; namespaces inside)" >&2; exit 2; }
[[ -x ${PROBE} ]] || {
    echo "tipc_probe: ${PROBE} is missing: flock /tmp/ctsync-build.lock cmake --build build --target tipc-probe" >&2
    exit 2
}

if ((!INSIDE)); then
    started=${SECONDS}
    rc=0
    "${ROOT}/scripts/vm/vm-run.sh" --timeout "${VM_TIMEOUT}" -- "${ROOT}/bench/tipc_probe.sh" --inside "${args[@]}" ||
        rc=$?
    echo "tipc_probe: VM run took $((SECONDS - started)) s (exit ${rc})" >&2
    exit "${rc}"
fi

# ---- inside the VM (or any root shell whose kernel has TIPC) ----
command -v tipc >/dev/null || { echo "tipc_probe: iproute2's tipc is missing" >&2; exit 1; }
PREFIX="ctsync-tp$$-"
NODES=(s r1 r2)
WORK="$(mktemp -d /tmp/ctsync-tipc-probe.XXXXXX)"
RESULTS="${WORK}/results"
: >"${RESULTS}"
cleanup() {
    local ns
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${PREFIX}" || true); do
        ip netns del "${ns}" 2>/dev/null || true
    done
    rm -rf "${WORK}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { echo "[$(date +%T)] $*" >&2; }
in_ns() { local ns="${PREFIX}$1"; shift; ip netns exec "${ns}" "$@"; }

links_up() { # every node sees its two peers' links up (plus the broadcast link)
    local n ups
    for n in "${NODES[@]}"; do
        ups=$(in_ns "${n}" tipc link list 2>/dev/null | grep -c ': up$' || true)
        ((ups >= 3)) || return 1
    done
}
wait_links() { # bounded: $1 seconds
    local end=$((SECONDS + $1))
    until links_up; do
        ((SECONDS < end)) || return 1
        sleep 0.2
    done
}

lab_t0=${SECONDS}
ip netns add "${PREFIX}sw"
in_ns sw ip link set lo up
in_ns sw ip link add br0 type bridge stp_state 0 mcast_snooping 0
in_ns sw ip link set br0 up
for i in 0 1 2; do
    n=${NODES[i]}
    ip netns add "${PREFIX}${n}"
    in_ns "${n}" ip link set lo up
    ip link add eth0 netns "${PREFIX}${n}" type veth peer "p${n}" netns "${PREFIX}sw"
    in_ns sw ip link set "p${n}" master br0 up
    in_ns "${n}" ip link set eth0 up
    in_ns "${n}" tipc node set identity "tp$$${n}"
    in_ns "${n}" tipc bearer enable media eth dev eth0
done
if ! wait_links 30; then
    echo "tipc_probe: the TIPC links did not come up within 30 s:" >&2
    for n in "${NODES[@]}"; do in_ns "${n}" tipc link list >&2 || true; done
    exit 1
fi
say "lab up in $((SECONDS - lab_t0)) s: $(in_ns s tipc link list | tr '\n' ' ')"
say "link tolerance (default): $(in_ns s tipc bearer get tolerance media eth dev eth0 2>/dev/null || echo '?') ms"

# One measurement: mode label tipc-probe-arguments...
probe() {
    local mode="$1" label="$2" rc=0 line
    shift 2
    wait_links 30 || say "warning: links not all up before ${mode}/${label}"
    line="$(timeout --kill-after=5 150 "${PROBE}" --mode "${mode}" --label "${label}" --timeout-s 120 \
        --sender-ns "${PREFIX}s" --receiver-ns "${PREFIX}r1,${PREFIX}r2" "$@" 2>"${WORK}/stderr")" || rc=$?
    if [[ -n ${line} ]]; then
        echo "${line} run=${R}" | tee -a "${RESULTS}"
    else
        echo "RESULT mode=${mode} test=? variant=${label} status=failed exit=${rc} run=${R}" | tee -a "${RESULTS}"
    fi
    [[ -s ${WORK}/stderr ]] && sed 's/^/    /' "${WORK}/stderr" >&2
    return 0
}

t_all=${SECONDS}
for ((R = 1; R <= RUNS; R++)); do
    for mode in A B; do
        say "run ${R}/${RUNS}, ${mode}"
        probe "${mode}" tp1400 --test throughput --count "${COUNT}" --size 1400
        probe "${mode}" tp8000 --test throughput --count "${COUNT}" --size 8000
        probe "${mode}" lat --test latency --rate 1000 --duration-ms 2000 --size 200
        probe "${mode}" leave --test leave
        probe "${mode}" cut --test cut --switch-ns "${PREFIX}sw" --cut-port pr1
        probe "${mode}" slow --test slow --count "${COUNT}" --size 1400 --pause-ms 1000
        ((R == 1)) && probe "${mode}" sem --test semantics
    done
    # A with TIPC's own defaults (importance low, default receive buffer): what overload looks like there.
    probe A slowk --test slow --count "${COUNT}" --size 1400 --pause-ms 1000 --importance low --rcvbuf 0
done
say "measurements took $((SECONDS - t_all)) s"

# ---- the table ----
# stat how mode label key...: how is med (median over the runs), max or sum; several keys are added per run.
stat() {
    local how="$1" mode="$2" label="$3"
    shift 3
    awk -v m="${mode}" -v l="${label}" -v keys="$*" '
        $1 == "RESULT" {
            delete f
            for (i = 2; i <= NF; i++) { p = index($i, "="); f[substr($i, 1, p - 1)] = substr($i, p + 1) }
            if (f["mode"] != m || f["variant"] != l) next
            n = split(keys, k, " "); s = 0; ok = 1
            for (j = 1; j <= n; j++) { if (!(k[j] in f) || f[k[j]] !~ /^-?[0-9.]+$/) ok = 0; else s += f[k[j]] }
            if (ok) print s
        }' "${RESULTS}" | sort -g | awk -v how="${how}" '
        { v[NR] = $1; s += $1 }
        END {
            if (NR == 0) { print "NA"; exit }
            if (how == "max") x = v[NR]; else if (how == "sum") x = s
            else x = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            if (x == int(x)) printf "%d", x; else printf "%.1f", x
        }'
}
runs_of() { grep -c "^RESULT mode=$1 .*variant=$2 .*status=ok" "${RESULTS}" || true; }
row() { # title how label keys [third-column?]
    local title="$1" how="$2" label="$3" keys="$4" third="—"
    [[ ${5:-} == k ]] && third="$(stat "${how}" A "${label}k" "${keys}")"
    printf '| %s | %s | %s | %s |\n' "${title}" "$(stat "${how}" A "${label}" "${keys}")" \
        "$(stat "${how}" B "${label}" "${keys}")" "${third}"
}
{
    echo
    echo "TIPC probe, kernel $(uname -r), ${RUNS} runs each (medians unless the row says otherwise), ${COUNT} datagrams per throughput run"
    echo
    echo "| measurement | A: service mcast + topology | B: group broadcast + member events | A, TIPC defaults (low importance, default rcvbuf) |"
    echo "|---|---|---|---|"
    for size in 1400 8000; do
        row "throughput ${size} B: datagrams/s" med "tp${size}" dgrams_per_s
        row "throughput ${size} B: MB/s" med "tp${size}" mb_per_s
        row "throughput ${size} B: lost, sum over runs and receivers" sum "tp${size}" "r1_lost r2_lost"
        row "throughput ${size} B: reordered + duplicated, sum" sum "tp${size}" "r1_reordered r2_reordered r1_dup r2_dup"
        row "throughput ${size} B: sender EAGAINs" med "tp${size}" eagain
        row "throughput ${size} B: own datagrams the sender's socket received" med "tp${size}" rx_own
    done
    row "latency 1000/s, 200 B: p50 µs" med lat p50_us
    row "latency 1000/s, 200 B: p99 µs" med lat p99_us
    row "latency: lost, sum" sum lat "r1_lost r2_lost"
    row "receiver closes its socket → sender learns, ms" med leave detect_ms
    row "receiver's switch port down → sender learns, ms" med cut detect_ms
    row "port up again → sender sees the member again, ms" med cut rejoin_ms
    row "slow receiver (1 s pause): time until both hold all, ms" med slow elapsed_ms k
    row "slow: sender's longest stall (EAGAIN → next send), ms" med slow max_stall_ms k
    row "slow: datagrams sent during the pause" med slow sent_during_pause k
    row "slow: the other receiver got during the pause" med slow r2_rx_during_pause k
    row "slow: returned to the sender (TIPC_ERRINFO), median" med slow returned k
    row "slow: of those, error TIPC_ERR_OVERLOAD, median" med slow returned_overload k
    row "slow: lost at the slow receiver, median" med slow r1_lost k
    row "slow: lost at the other receiver, median" med slow r2_lost k
    echo
    for mode in A B; do
        for label in tp1400 tp8000 lat leave cut slow; do
            ok=$(runs_of "${mode}" "${label}")
            ((ok == RUNS)) || echo "note: ${mode}/${label}: ${ok} of ${RUNS} runs completed (status=ok)"
        done
    done
    echo "semantics (send to the range {type,0,~0}, then send() without address; 100 each):"
    grep ' test=semantics ' "${RESULTS}" | sed 's/^/    /' || true
}
