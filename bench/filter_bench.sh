#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Filter benchmark (issue 12): at a high event rate with 9 of 10 events filtered out, what does the primary's
# daemon spend, with the filter in the kernel, in process only, and conntrackd with the equivalent Filter
# section (from userspace and from kernelspace)?
#
# A primary and a backup on a dedicated sync veth (ctsync: source-ctnetlink + proto-tcp + transport-mcast +
# filter-bpf; conntrackd 1.4.7: FTFW over UDP, bench/conntrackd_conf.sh, plus a Filter section). N TCP
# ESTABLISHED entries are injected into the primary's kernel by batched ctnetlink (ct-inject --sources 10:
# source addresses 192.0.2.1-10, one tenth each) at RATE entries/s; the filter replicates only the flows of
# 192.0.2.1, written once for conntrackd (Address Accept { IPv4_address 192.0.2.1 }) and translated by
# `ctsync-filter from-conntrackd` for ctsync, so that both mean the same. Each run in a fresh lab, the
# configurations alternating, REPS times. Measured:
#   CPU µs per injected event of the primary's daemon (utime + stime, from before the injection to 2 s after
#   the backup held all N/10), and of the backup;
#   events the primary's daemon read (ctsync: the source's events_new; conntrackd does not count them: "-");
#   when the backup's external cache held all N/10 (ms from the start of the injection);
#   the kernel's own rate: ct-inject's entries/s (the ceiling the events come at).
#
# Usage: bench/filter_bench.sh [N] [RATE] [REPS]     (default 200000 100000 3; root; a build in build/)
#   CONFIGS="ctsync-kernel ctsync-process conntrackd-user conntrackd-kernel ctsync-none" (default all)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${CTSYNC_BUILD_DIR:-${ROOT}/build}/bin"
N="${1:-200000}"
RATE="${2:-100000}"
REPS="${3:-3}"
CONFIGS="${CONFIGS:-ctsync-kernel ctsync-process conntrackd-user conntrackd-kernel ctsync-none}"
source "${ROOT}/bench/lib.sh"
TICK_US=$((1000000 / $(getconf CLK_TCK)))
for tool in ctsyncd ctsyncctl ct-inject ctsync-filter; do
    [[ -x ${BIN}/${tool} ]] || { echo "filter_bench: ${BIN}/${tool} is missing: build first (scripts/build.sh)" >&2; exit 2; }
done
KEEP=$((N / 10))

CD_FILTER='Filter From Userspace {
        Address Accept {
            IPv4_address 192.0.2.1
        }
    }'
# conntrackd's kernel-side filter means something else for the same section: both the original source and
# the original destination must be listed (libnetfilter_conntrack's BPF ands its source and destination
# checks), so from kernelspace the section also lists the one destination (198.51.100.10) to keep the same
# flows; listed in userspace too it would keep every flow (the reply's source is that address).
CD_FILTER_KERNEL='Filter From Kernelspace {
        Address Accept {
            IPv4_address 192.0.2.1
            IPv4_address 198.51.100.10
        }
    }'
printf 'General {\n    %s\n}\n' "${CD_FILTER}" >"${WORK}/filter-section.conf"
EXPRESSION="$("${BIN}/ctsync-filter" from-conntrackd "${WORK}/filter-section.conf")"

lab() {
    ns_new pri; ns_new bak
    ip link add sy0 netns "${PREFIX}pri" type veth peer sy0 netns "${PREFIX}bak"
    in_ns pri ip addr add 198.51.100.1/24 dev sy0; in_ns pri ip link set sy0 up
    in_ns bak ip addr add 198.51.100.2/24 dev sy0; in_ns bak ip link set sy0 up
}

ctsync_config() { # name node_id role placement(auto|process|none)
    (umask 077; printf '%064d\n' 7 >"${WORK}/sync.key")
    local filters='[]'
    [[ $4 != none ]] && filters="[{\"plugin\": \"filter-bpf\", \"name\": \"one-source\", \"config\": {\"expression\": \"${EXPRESSION}\", \"placement\": \"$4\"}}]"
    cat >"${WORK}/$1.json" <<JSON
{"node": {"id": $2}, "daemon": {"lock_file": "${WORK}/$1.lock", "control_socket": "${WORK}/$1.sock",
 "log": {"level": "warn", "file": "${WORK}/$1.log"}},
 "source": {"plugin": "source-ctnetlink", "config": {"expectations": false}},
 "protos": [{"plugin": "proto-tcp"}],
 "filters": ${filters},
 "transports": [{"plugin": "transport-mcast", "config": {"interface": "sy0", "group": "239.255.0.1"}}],
 "replication": {"initial_role": "$3"}, "failover": {"standby": "cold"},
 "security": {"keys": [{"id": 1, "file": "${WORK}/sync.key"}]}}
JSON
}
cd_config() { # name local peer from(Userspace|Kernelspace)
    local section="${CD_FILTER}"; [[ $4 == Kernelspace ]] && section="${CD_FILTER_KERNEL}"
    conntrackd_conf "${WORK}/$1" "$2" "$3" sy0 | sed '$d' >"${WORK}/$1.conf"
    printf '    %s\n}\n' "${section}" >>"${WORK}/$1.conf"
}
ctsync_external() { "${BIN}/ctsyncctl" -C "${WORK}/$1.json" --timeout 5000 status --json 2>/dev/null | sed -n 's/.*"external_flows": \([0-9]*\).*/\1/p'; }
ctsync_complete() { "${BIN}/ctsyncctl" -C "${WORK}/$1.json" replication --json 2>/dev/null | sed -n 's/^  "complete": \(.*\),$/\1/p'; }
# Reads all of ctsyncctl's output (an early exit would end ctsyncctl with SIGPIPE: a failure under pipefail).
ctsync_metric() { "${BIN}/ctsyncctl" -C "${WORK}/$1.json" stats --json 2>/dev/null | awk -v m="\"$2\"" '$0 ~ "\"name\": " m {x=1} x && !v && /"value"/ {v = $0; gsub(/[^0-9]/, "", v)} END {print v}'; }
cd_cache() { conntrackd -C "${WORK}/$1.conf" -s 2>/dev/null | awk -v c="cache $2:" '$0 ~ c {x=1} x && /current active connections/ {print $NF; exit}'; }

# run CONFIG: writes to WORK/result "inject_eps cache_ms cpu_pri_us cpu_bak_us events_read"
run() {
    local config="$1" pri_pid bak_pid impl=${1%%-*}
    lab
    if [[ ${impl} == ctsync ]]; then
        local placement=${config#ctsync-}; [[ ${placement} == kernel ]] && placement=auto
        ctsync_config pri 1 primary "${placement}"; ctsync_config bak 2 backup "${placement}"
        ip netns exec "${PREFIX}pri" "${BIN}/ctsyncd" -C "${WORK}/pri.json" >>"${WORK}/daemons.out" 2>&1 & PIDS+=("$!"); pri_pid=$!
        ip netns exec "${PREFIX}bak" "${BIN}/ctsyncd" -C "${WORK}/bak.json" >>"${WORK}/daemons.out" 2>&1 & PIDS+=("$!"); bak_pid=$!
        wait_for true 20 ctsync_complete bak
    else
        local from=Userspace; [[ ${config} == conntrackd-kernel ]] && from=Kernelspace
        cd_config cp 198.51.100.1 198.51.100.2 "${from}"; cd_config cb 198.51.100.2 198.51.100.1 "${from}"
        ip netns exec "${PREFIX}pri" conntrackd -C "${WORK}/cp.conf" >>"${WORK}/daemons.out" 2>&1 & PIDS+=("$!"); pri_pid=$!
        ip netns exec "${PREFIX}bak" conntrackd -C "${WORK}/cb.conf" >>"${WORK}/daemons.out" 2>&1 & PIDS+=("$!"); bak_pid=$!
        wait_for 0 20 cd_cache cp internal
    fi
    sleep 1
    local p0 b0 t0 inj_pid t_cache="" now want=${KEEP}
    [[ ${config} == ctsync-none ]] && want=${N}
    p0=$(cpu_ticks "${pri_pid}"); b0=$(cpu_ticks "${bak_pid}")
    t0=$(now_ms)
    in_ns pri "${BIN}/ct-inject" --count "${N}" --sources 10 --rate "${RATE}" >"${WORK}/inject.txt" & inj_pid=$!
    local deadline=$((t0 + 120000))
    while :; do
        now=$(now_ms)
        local held
        if [[ ${impl} == ctsync ]]; then held=$(ctsync_external bak); else held=$(cd_cache cb external); fi
        [[ -n ${held} && ${held} -ge ${want} ]] && { t_cache=$(($(now_ms) - t0)); break; }
        if ((now > deadline)); then echo "filter_bench: ${config}: the backup did not hold ${want} in 120 s (${held:-?})" >&2; break; fi
        sleep 0.02
    done
    wait "${inj_pid}" || echo "filter_bench: ct-inject failed: $(cat "${WORK}/inject.txt")" >&2
    sleep 2
    local p1 b1 events="-"
    p1=$(cpu_ticks "${pri_pid}"); b1=$(cpu_ticks "${bak_pid}")
    [[ ${impl} == ctsync ]] && events=$(ctsync_metric pri source-ctnetlink.events_new)
    # The backup must hold exactly the kept flows (the filter's verdict, the same for every configuration).
    local final
    if [[ ${impl} == ctsync ]]; then final=$(ctsync_external bak); else final=$(cd_cache cb external); fi
    [[ ${final} == "${want}" ]] || echo "filter_bench: ${config}: the backup holds ${final}, not ${want}" >&2
    local eps
    eps=$(awk '{for (i = 1; i < NF; i++) if ($(i + 1) ~ /entries\/s/) {print $i; exit}}' "${WORK}/inject.txt")
    echo "${eps:-?} ${t_cache:-timeout} $(((p1 - p0) * TICK_US)) $(((b1 - b0) * TICK_US)) ${events:-?}" >"${WORK}/result"
    cleanup
}


echo "# ctsync filter benchmark"
echo "command: ${CONFIGS:+CONFIGS=\"${CONFIGS}\" }bench/filter_bench.sh ${N} ${RATE} ${REPS}"
echo "machine: $(uname -r), $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
echo "conntrackd: $(conntrackd -v 2>&1 | head -1)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "expression: ${EXPRESSION}"
echo
declare -A R
for rep in $(seq "${REPS}"); do
    for config in ${CONFIGS}; do  # alternating
        echo "  [${rep}/${REPS}] ${config}" >&2
        run "${config}"
        line=$(cat "${WORK}/result")
        echo "  ${config}: ${line}" >&2
        R["${config}"]+="${line};"
    done
done
col() { local IFS=';'; for line in ${R[$1]:-}; do awk -v f="$2" '{print $f}' <<<"${line}"; done; }
per_event() { local IFS=';'; for line in ${R[$1]:-}; do awk -v f="$2" -v n="${N}" '{printf "%.2f\n", $f / n}' <<<"${line}"; done; }

echo "Medians of ${REPS} runs (min–max). ${N} entries injected, ${KEEP} replicated (192.0.2.1's); CPU per injected event."
echo
echo "| configuration | kernel insert rate (entries/s) | events the primary read | backup held all kept (ms) | primary CPU µs/event | backup CPU µs/event |"
echo "|---|---|---|---|---|---|"
for config in ${CONFIGS}; do
    echo "| ${config} | $(stat $(col "${config}" 1)) | $(stat $(col "${config}" 5)) | $(stat $(col "${config}" 2)) | $(stat $(per_event "${config}" 3)) | $(stat $(per_event "${config}" 4)) |"
done
echo
echo "Ratios of the primary's CPU per event (medians):"
median_of() { stat $(per_event "$1" 3) | awk '{print $1}'; }
for pair in "ctsync-kernel ctsync-process" "ctsync-kernel conntrackd-user" "ctsync-kernel conntrackd-kernel" "ctsync-process conntrackd-user"; do
    a=${pair% *}; b=${pair#* }
    [[ -n ${R[$a]:-} && -n ${R[$b]:-} ]] || continue
    awk -v a="${a}" -v b="${b}" -v x="$(median_of "${a}")" -v y="$(median_of "${b}")" 'BEGIN {printf "  %s / %s: %.2f×\n", a, b, (y > 0 ? x / y : 0)}'
done
