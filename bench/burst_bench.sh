#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Burst benchmark (issue 16): does replication keep pace with the kernel during a burst, warm standby included?
#
# A primary and a backup on a dedicated sync veth (ctsync: source-ctnetlink + proto-tcp + transport-mcast,
# the defaults otherwise; conntrackd 1.4.7: FTFW over UDP, bench/conntrackd_conf.sh). N NATed TCP ESTABLISHED
# entries are injected into the primary's kernel by batched ctnetlink (ct-inject) at RATE entries/s. Measured,
# from the start of the injection (each run in a fresh lab, ctsync and conntrackd alternating, REPS times):
#   inject  — when the injection ended;
#   cache   — when the backup's external cache first held all N (ctsync: `ctsyncctl status`; conntrackd
#             cold: `conntrackd -s`; conntrackd warm keeps no external cache: "-");
#   kernel  — warm standby only: when the backup's kernel first held all N (nf_conntrack_count of its
#             namespace, above what it held before);
#   CPU µs per entry of each daemon (utime + stime from before the injection to 2 s after the backup held
#   everything), bytes and datagrams on the sync link per entry (headers included, the primary's tx counters).
# Polling every 20 ms: the figures are late by up to 20 ms (and by the time of one status request).
#
# Usage: bench/burst_bench.sh [N] [RATE] [REPS]     (default 200000 100000 3; root; a build in build/)
#   Investigating: PERF=pri|bak records a profile of ctsync's primary or backup (perf record -g), kept with
#   CTSYNC_BENCH_KEEP=1 in the work directory it names, with each node's `ctsyncctl stats`.
#   MODES="warm cold" (default both): warm = ctsync's default warm standby against conntrackd with
#   DisableExternalCache On (both write every entry into the backup's kernel); cold = external cache only.
#   IMPLS=ctsync (investigating only): leaves conntrackd out; the table then has no ratios.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${CTSYNC_BUILD_DIR:-${ROOT}/build}/bin"
N="${1:-200000}"
RATE="${2:-100000}"
REPS="${3:-3}"
MODES="${MODES:-warm cold}"
IMPLS="${IMPLS:-ctsync conntrackd}"
source "${ROOT}/bench/lib.sh"
TICK_US=$((1000000 / $(getconf CLK_TCK)))
for tool in ctsyncd ctsyncctl ct-inject; do
    [[ -x ${BIN}/${tool} ]] || { echo "burst_bench: ${BIN}/${tool} is missing: build first (scripts/build.sh)" >&2; exit 2; }
done

lab() {
    ns_new pri; ns_new bak
    ip link add sy0 netns "${PREFIX}pri" type veth peer sy0 netns "${PREFIX}bak"
    in_ns pri ip addr add 198.51.100.1/24 dev sy0; in_ns pri ip link set sy0 up
    in_ns bak ip addr add 198.51.100.2/24 dev sy0; in_ns bak ip link set sy0 up
}

ctsync_config() { # name node_id role standby
    (umask 077; printf '%064d\n' 7 >"${WORK}/sync.key")
    cat >"${WORK}/$1.json" <<JSON
{"node": {"id": $2}, "daemon": {"lock_file": "${WORK}/$1.lock", "control_socket": "${WORK}/$1.sock",
 "log": {"level": "warn", "file": "${WORK}/$1.log"}},
 "source": {"plugin": "source-ctnetlink", "config": {"expectations": false}},
 "protos": [{"plugin": "proto-tcp"}],
 "transports": [{"plugin": "transport-mcast", "config": {"interface": "sy0", "group": "239.255.0.1"}}],
 "replication": {"initial_role": "$3"}, "failover": {"standby": "$4"},
 "security": {"keys": [{"id": 1, "file": "${WORK}/sync.key"}]}}
JSON
}
ctsync_external() { "${BIN}/ctsyncctl" -C "${WORK}/$1.json" --timeout 5000 status --json 2>/dev/null | sed -n 's/.*"external_flows": \([0-9]*\).*/\1/p'; }
ctsync_complete() { "${BIN}/ctsyncctl" -C "${WORK}/$1.json" replication --json 2>/dev/null | sed -n 's/^  "complete": \(.*\),$/\1/p'; }
cd_cache() { conntrackd -C "${WORK}/$1.conf" -s 2>/dev/null | awk -v c="cache $2:" '$0 ~ c {x=1} x && /current active connections/ {print $NF; exit}'; }
kernel_count() { in_ns "$1" sysctl -n net.netfilter.nf_conntrack_count; }
link_counters() { in_ns pri cat /sys/class/net/sy0/statistics/tx_bytes /sys/class/net/sy0/statistics/tx_packets | paste -sd' '; }

# run IMPL MODE: writes to WORK/result "inject_ms cache_ms kernel_ms cpu_pri_us cpu_bak_us bytes packets" ("-" for none)
run() {
    local impl="$1" mode="$2" pri_pid bak_pid
    lab
    if [[ ${impl} == ctsync ]]; then
        ctsync_config pri 1 primary "${mode}"; ctsync_config bak 2 backup "${mode}"
        ip netns exec "${PREFIX}pri" "${BIN}/ctsyncd" -C "${WORK}/pri.json" >>"${WORK}/daemons.out" 2>&1 & PIDS+=("$!"); pri_pid=$!
        ip netns exec "${PREFIX}bak" "${BIN}/ctsyncd" -C "${WORK}/bak.json" >>"${WORK}/daemons.out" 2>&1 & PIDS+=("$!"); bak_pid=$!
        wait_for true 20 ctsync_complete bak
    else
        local warm=""; [[ ${mode} == warm ]] && warm=1
        CD_WARM=${warm} conntrackd_config cp 198.51.100.1 198.51.100.2 sy0
        CD_WARM=${warm} conntrackd_config cb 198.51.100.2 198.51.100.1 sy0
        ip netns exec "${PREFIX}pri" conntrackd -C "${WORK}/cp.conf" >>"${WORK}/daemons.out" 2>&1 & PIDS+=("$!"); pri_pid=$!
        ip netns exec "${PREFIX}bak" conntrackd -C "${WORK}/cb.conf" >>"${WORK}/daemons.out" 2>&1 & PIDS+=("$!"); bak_pid=$!
        wait_for 0 20 cd_cache cp internal
    fi
    sleep 1
    local k0 p0 b0 c0 t0 inj_pid t_inj="" t_cache="" t_kernel="" now
    k0=$(kernel_count bak)
    local perf_pid=""
    if [[ -n ${PERF:-} && ${impl} == ctsync ]]; then  # investigating: PERF=pri|bak profiles that daemon
        local target=${pri_pid}; [[ ${PERF} == bak ]] && target=${bak_pid}
        perf record -F 4000 -g -p "${target}" -o "${WORK}/${mode}-${PERF}.perf" >/dev/null 2>&1 & perf_pid=$!
        sleep 0.5
    fi
    p0=$(cpu_ticks "${pri_pid}"); b0=$(cpu_ticks "${bak_pid}"); c0=$(link_counters)
    t0=$(now_ms)
    in_ns pri "${BIN}/ct-inject" --count "${N}" --nat --rate "${RATE}" >"${WORK}/inject.txt" & inj_pid=$!
    # Bounded: 120 s for everything to arrive.
    local deadline=$((t0 + 120000)) need_cache=1 need_kernel=0
    [[ ${mode} == warm ]] && need_kernel=1
    [[ ${impl} == conntrackd && ${mode} == warm ]] && need_cache=0 && t_cache="-"
    while :; do
        now=$(now_ms)
        if [[ -z ${t_inj} ]] && ! kill -0 "${inj_pid}" 2>/dev/null; then t_inj=$((now - t0)); fi
        if ((need_cache)); then
            local held
            if [[ ${impl} == ctsync ]]; then held=$(ctsync_external bak); else held=$(cd_cache cb external); fi
            [[ -n ${held} && ${held} -ge ${N} ]] && { t_cache=$(($(now_ms) - t0)); need_cache=0; }
        fi
        if ((need_kernel)) && (($(kernel_count bak) - k0 >= N)); then t_kernel=$(($(now_ms) - t0)); need_kernel=0; fi
        if [[ -n ${t_inj} ]] && ((!need_cache && !need_kernel)); then break; fi
        if ((now > deadline)); then echo "burst_bench: ${impl} ${mode}: not all ${N} arrived in 120 s" >&2; break; fi
        sleep 0.02
    done
    wait "${inj_pid}" || echo "burst_bench: ct-inject failed: $(cat "${WORK}/inject.txt")" >&2
    sleep 2  # what is still queued goes out (acknowledgements, last batches); its CPU counts
    local p1 b1 c1
    p1=$(cpu_ticks "${pri_pid}"); b1=$(cpu_ticks "${bak_pid}"); c1=$(link_counters)
    if [[ -n ${perf_pid} ]]; then kill -INT "${perf_pid}"; wait "${perf_pid}" || true; fi
    if [[ ${impl} == ctsync && -n ${CTSYNC_BENCH_KEEP:-} ]]; then
        for n in pri bak; do "${BIN}/ctsyncctl" -C "${WORK}/${n}.json" stats >"${WORK}/${mode}-${n}.stats" 2>&1 || true; done
    fi
    [[ ${mode} == warm ]] || t_kernel="-"
    echo "${t_inj} ${t_cache:-timeout} ${t_kernel:-timeout} $(((p1 - p0) * TICK_US)) $(((b1 - b0) * TICK_US)) $((${c1% *} - ${c0% *})) $((${c1#* } - ${c0#* }))" >"${WORK}/result"
    cleanup
}


echo "# ctsync burst benchmark"
echo "command: ${MODES:+MODES=\"${MODES}\" }bench/burst_bench.sh ${N} ${RATE} ${REPS}"
echo "machine: $(uname -r), $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
echo "conntrackd: $(conntrackd -v 2>&1 | head -1)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo
declare -A R
for mode in ${MODES}; do
    for rep in $(seq "${REPS}"); do
        for impl in ${IMPLS}; do  # alternating: A B A B ...
            echo "  [${mode} ${rep}/${REPS}] ${impl}" >&2
            run "${impl}" "${mode}"
            line=$(cat "${WORK}/result")
            echo "  ${impl} ${mode}: ${line}" >&2
            R["${mode}.${impl}"]+="${line};"
        done
    done
done

col() { # key field: the field of every repetition
    local IFS=';'
    for line in ${R[$1]:-}; do awk -v f="$2" '{print $f}' <<<"${line}"; done
}
per_entry() { # key field: field / N, each repetition
    local IFS=';'
    for line in ${R[$1]:-}; do awk -v f="$2" -v n="${N}" '{printf "%.2f\n", $f / n}' <<<"${line}"; done
}
late() { # key field: field - inject_ms (how long after the injection ended)
    local IFS=';'
    for line in ${R[$1]:-}; do awk -v f="$2" '{ if ($f ~ /^[0-9]+$/) print $f - $1; else print $f }' <<<"${line}"; done
}

echo "Medians of ${REPS} runs (min–max). Times in ms from the start of the injection; \"after\" = after the injection ended."
echo
echo "| standby | daemon | injection ends | all in the backup's cache | after | all in the backup's kernel | after | CPU µs/entry primary | CPU µs/entry backup | wire bytes/entry | entries/datagram |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for mode in ${MODES}; do
    for impl in ctsync conntrackd; do
        k="${mode}.${impl}"
        epd=$(IFS=';'; for line in ${R[$k]:-}; do awk -v n="${N}" '{ if ($7 > 0) printf "%.1f\n", n / $7 }' <<<"${line}"; done)
        echo "| ${mode} | ${impl} | $(stat $(col "$k" 1)) | $(stat $(col "$k" 2)) | $(stat $(late "$k" 2)) | $(stat $(col "$k" 3)) | $(stat $(late "$k" 3)) | $(stat $(per_entry "$k" 4)) | $(stat $(per_entry "$k" 5)) | $(stat $(per_entry "$k" 6)) | $(stat ${epd}) |"
    done
done
echo
echo "Ratios ctsync / conntrackd of the medians (backup CPU per entry):"
for mode in ${MODES}; do
    c=$(stat $(per_entry "${mode}.ctsync" 5) | awk '{print $1}'); d=$(stat $(per_entry "${mode}.conntrackd" 5) | awk '{print $1}')
    awk -v m="${mode}" -v c="${c}" -v d="${d}" 'BEGIN {printf "  %s: backup CPU %.2f×\n", m, (d > 0 ? c / d : 0)}'
done
if [[ ${MODES} == *warm* && ${MODES} == *cold* ]]; then
    c=$(stat $(per_entry "warm.ctsync" 5) | awk '{print $1}'); d=$(stat $(per_entry "cold.conntrackd" 5) | awk '{print $1}')
    awk -v c="${c}" -v d="${d}" 'BEGIN {printf "  ctsync warm / conntrackd cold: backup CPU %.2f×\n", (d > 0 ? c / d : 0)}'
    c=$(stat $(per_entry "cold.ctsync" 5) | awk '{print $1}')
    awk -v c="${c}" -v d="${d}" 'BEGIN {printf "  ctsync cold / conntrackd cold: backup CPU %.2f×\n", (d > 0 ? c / d : 0)}'
fi
