#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Commit benchmark (issue #3): how fast does a promoted backup write N NATed TCP entries into its kernel?
# In one run, on the same N entries (ct-inject's), each into a fresh network namespace with one conntrack
# event listener attached (as a backup always has):
#   ceiling   — ct-inject: a minimal batched ctnetlink writer (bench/ct_inject.cpp)
#   ctsync    — ctsyncd's commit of its external cache (source-ctnetlink's batched writer), after the table
#               was read by ctsyncd on a "primary" namespace and imported (ctsyncctl dump --json / import)
#   conntrackd— `conntrackd -c` on a backup whose external cache was filled by an FTFW resync from a
#               conntrackd primary over a veth (Debian's conntrackd)
# and the memory per cached entry: RSS growth of ctsyncd and of conntrackd while their internal caches fill.
#
# Usage: bench/commit_bench.sh [N...]   (default: 100000 200000; needs root and a build in build/)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${CTSYNC_BUILD_DIR:-${ROOT}/build}/bin"
SIZES=("$@")
((${#SIZES[@]})) || SIZES=(100000 200000)
source "${ROOT}/bench/lib.sh"

# Background processes are started with `ip netns exec` directly (it execs), so that $! is their own PID.
listener() { ip netns exec "${PREFIX}$1" conntrack -E >/dev/null 2>&1 & PIDS+=("$!"); }
ct_count() { in_ns "$1" conntrack -C; }
ctsync_config() { # name node_id [write_threads]
    cat >"${WORK}/$1.json" <<JSON
{"node": {"id": $2}, "daemon": {"lock_file": "${WORK}/$1.lock", "control_socket": "${WORK}/$1.sock",
 "log": {"level": "warn", "file": "${WORK}/$1.log"}},
 "source": {"plugin": "source-ctnetlink", "config": {"expectations": false, "resync_interval_s": 0,
            "event_buffer_max_bytes": 268435456, "write_threads": ${3:-2}}}}
JSON
}
ctsync_flows() { "${BIN}/ctsyncctl" -C "${WORK}/$1.json" --timeout 120000 status --json | sed -n 's/.*"internal_flows": \([0-9]*\).*/\1/p'; }
echo "# ctsync commit benchmark"
echo "command: bench/commit_bench.sh ${SIZES[*]}"
echo "machine: $(uname -r), $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {print $2/1048576 " GiB"}' /proc/meminfo)"
echo "conntrackd: $(conntrackd -v 2>&1 | head -1)"
echo
echo "| entries | ceiling, listener | ceiling, no listener | ctsync, 1 writer | ctsync, 2 writers (default) | ctsync / ceiling, listener (1 / 2 writers) | ctsync / ceiling, no listener (1 / 2 writers) | conntrackd -c | ctsync / conntrackd (1 / 2 writers) | ctsync B/entry (RSS) | conntrackd B/entry (RSS) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"

for N in "${SIZES[@]}"; do
    # 1. Kernel ceiling: ct-inject into a fresh namespace with a listener, while another namespace holds the
    #    primary's N entries (the conntrack hash table is global: every scenario below has them too).
    ns_new cpri; in_ns cpri "${BIN}/ct-inject" --count "${N}" --nat >/dev/null
    ns_new ceil; listener ceil; sleep 0.2
    ceiling=$(in_ns ceil "${BIN}/ct-inject" --count "${N}" --nat | sed -n 's/.*= \([0-9]*\) entries\/s.*/\1/p')
    #    And without a listener (the kernel then builds no events): shows what event delivery costs.
    ns_new ceil2
    ceiling_nolistener=$(in_ns ceil2 "${BIN}/ct-inject" --count "${N}" --nat | sed -n 's/.*= \([0-9]*\) entries\/s.*/\1/p')
    cleanup

    # 2. ctsync: primary reads N entries (RSS growth measured), backup imports and commits; with one writer
    #    thread and with the default two.
    for threads in 1 2; do
    ns_new pri; ns_new bak
    ctsync_config pri 1; ctsync_config bak 2 "${threads}"
    ip netns exec "${PREFIX}pri" "${BIN}/ctsyncd" -C "${WORK}/pri.json" & PIDS+=("$!"); pri_pid=$!
    ip netns exec "${PREFIX}bak" "${BIN}/ctsyncd" -C "${WORK}/bak.json" & PIDS+=("$!")
    wait_for 0 10 ctsync_flows pri
    rss0=$(rss_kb "${pri_pid}")
    in_ns pri "${BIN}/ct-inject" --count "${N}" --nat >/dev/null
    echo "  [${N}] ctsync: primary reading the table" >&2
    wait_for "${N}" 120 ctsync_flows pri
    rss1=$(rss_kb "${pri_pid}")
    ctsync_bytes=$(( (rss1 - rss0) * 1024 / N ))
    "${BIN}/ctsyncctl" -C "${WORK}/pri.json" --timeout 300000 dump --json >"${WORK}/flows.json"
    "${BIN}/ctsyncctl" -C "${WORK}/bak.json" --timeout 300000 import "${WORK}/flows.json" >/dev/null
    t0=$(now_ms)
    commit=$("${BIN}/ctsyncctl" -C "${WORK}/bak.json" --timeout 300000 commit --json)
    t1=$(now_ms)
    [[ "$(ct_count bak)" == "${N}" ]] || { echo "ctsync commit left $(ct_count bak) of ${N} entries" >&2; exit 1; }
    ctsync_rate=$(echo "${commit}" | sed -n 's/.*"entries_per_s": \([0-9.]*\).*/\1/p' | cut -d. -f1)
    ctsync_wall=$(( N * 1000 / (t1 - t0 > 0 ? t1 - t0 : 1) ))
    [[ ${threads} == 1 ]] && ctsync_wall_1=${ctsync_wall}
    cleanup
    done

    # 3. conntrackd: primary with N entries, backup resyncs over a veth, then `conntrackd -c`.
    ns_new cp; ns_new cb
    ip link add cd-p netns "${PREFIX}cp" type veth peer cd-b netns "${PREFIX}cb"
    in_ns cp ip addr add 203.0.113.1/24 dev cd-p; in_ns cp ip link set cd-p up
    in_ns cb ip addr add 203.0.113.2/24 dev cd-b; in_ns cb ip link set cd-b up
    conntrackd_config cp 203.0.113.1 203.0.113.2 cd-p
    conntrackd_config cb 203.0.113.2 203.0.113.1 cd-b
    ip netns exec "${PREFIX}cp" conntrackd -C "${WORK}/cp.conf" & PIDS+=("$!"); cp_pid=$!
    ip netns exec "${PREFIX}cb" conntrackd -C "${WORK}/cb.conf" & PIDS+=("$!")
    wait_for 0 10 cd_internal cp
    rss0=$(rss_kb "${cp_pid}")
    in_ns cp "${BIN}/ct-inject" --count "${N}" --nat >/dev/null
    echo "  [${N}] conntrackd: primary reading the table" >&2
    wait_for "${N}" 120 cd_internal cp
    rss1=$(rss_kb "${cp_pid}")
    cd_bytes=$(( (rss1 - rss0) * 1024 / N ))
    in_ns cb conntrackd -C "${WORK}/cb.conf" -n >/dev/null   # ask the primary for a full resync
    echo "  [${N}] conntrackd: resync to the backup" >&2
    wait_for "${N}" 120 cd_external cb
    t0=$(now_ms)
    in_ns cb conntrackd -C "${WORK}/cb.conf" -c >/dev/null
    wait_for "${N}" 120 ct_count cb
    t1=$(now_ms)
    cd_rate=$(( N * 1000 / (t1 - t0 > 0 ? t1 - t0 : 1) ))
    cleanup

    # Ratios from ctsync's wall time (client round trip included, as conntrackd -c's is).
    pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.0f %%", 100 * a / b}'; }
    times() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f x", a / b}'; }
    echo "| ${N} | ${ceiling} | ${ceiling_nolistener} | ${ctsync_wall_1} | ${ctsync_wall} | $(pct "${ctsync_wall_1}" "${ceiling}") / $(pct "${ctsync_wall}" "${ceiling}") | $(pct "${ctsync_wall_1}" "${ceiling_nolistener}") / $(pct "${ctsync_wall}" "${ceiling_nolistener}") | ${cd_rate} | $(times "${ctsync_wall_1}" "${cd_rate}") / $(times "${ctsync_wall}" "${cd_rate}") | ${ctsync_bytes} | ${cd_bytes} |"
done
echo
echo "All rates in entries/s. ceiling: bench/ct_inject.cpp, one batched writer, with a \`conntrack -E\` listener"
echo "in its namespace and without. ctsync: wall time of \`ctsyncctl commit\` (request to reply), source-ctnetlink"
echo "with write_threads 1 or 2. conntrackd -c: wall time"
echo "from \`conntrackd -c\` until the backup's kernel holds all N entries (polled every 10 ms)."
echo "B/entry: RSS growth of the daemon whose internal cache filled with N entries, divided by N."
