#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Failover benchmark (issue #5): ctsync against conntrackd in the same failover lab, one invocation.
# scripts/lab/failover-lab.sh runs four times, each with N NATed entries injected into the primary's kernel
# before a hard failover (every port of fw1 cut) under a live TCP stream and UDP session:
#   ctsync warm standby (the default), ctsync cold standby (--standby cold), conntrackd (FTFW, external cache
#   committed by Debian's primary-backup.sh when keepalived makes the backup master), conntrackd --cd-warm
#   (DisableExternalCache On: the backup writes every entry into its kernel as it arrives).
# Printed: one markdown table of the labs' RESULT lines (VRRP takeover, TCP gap and its bound, lines lost, UDP
# verdict and the NAT mappings the server saw, RSTs at the server, entries in the new primary's kernel when
# the VIPs moved, promotion -> all committed), then ratios ctsync / conntrackd for the TCP gap and the commit.
# "Promotion -> all committed": ctsync, the promotion's commit step (ctsyncctl stats failover.promote_commit_us);
# conntrackd, how long `conntrackd -c` took in the notify script (its start and end logged by a wrapper).
#
# Usage: bench/failover_bench.sh [N]   (default 200000; root, a build in build/, keepalived and conntrackd)
# Each lab cleans up after itself (namespaces, processes by PID, files). One lab at a time; every lab is
# bounded (timeout). CTSYNC_BENCH_KEEP=1 keeps the labs' outputs.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
N="${1:-200000}"
[[ ${N} =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/failover_bench.sh [N]" >&2; exit 2; }
LAB="${ROOT}/scripts/lab/failover-lab.sh"
OUT="$(mktemp -d /tmp/ctsync-bench-XXXXXX)"
trap '[[ -n "${CTSYNC_BENCH_KEEP:-}" ]] && echo "kept ${OUT}" >&2 || rm -rf "${OUT}"' EXIT

NAMES=("ctsync warm standby" "ctsync cold standby" "conntrackd" "conntrackd --cd-warm")
ARGS=("" "--standby cold" "--sync conntrackd" "--sync conntrackd --cd-warm")

# val FILE WHAT KEY: KEY's value on the lab's "RESULT WHAT ..." line ("RESULT rst=0": WHAT rst, KEY rst).
val() {
    awk -v w="$2" -v k="$3=" '$1 == "RESULT" && ($2 == w || index($2, w "=") == 1) {
        for (i = 2; i <= NF; i++) if (index($i, k) == 1) {v = substr($i, length(k) + 1); gsub(/"/, "", v); print v; exit}}' "$1"
}

echo "# ctsync failover benchmark"
echo "command: bench/failover_bench.sh ${N}"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(uname -r), $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
echo "conntrackd: $(conntrackd -v 2>&1 | head -1); $(keepalived -v 2>&1 | head -1)"
echo
declare -A GAP COMMIT
rows=()
for i in "${!NAMES[@]}"; do
    read -r -a args <<<"${ARGS[${i}]}"
    cmd="scripts/lab/failover-lab.sh --entries ${N} --quiet${ARGS[${i}]:+ ${ARGS[${i}]}}"
    echo "  [$((i + 1))/${#NAMES[@]}] ${cmd}" >&2
    f="${OUT}/run${i}"
    rc=0
    timeout -k 30 600 "${LAB}" --entries "${N}" --quiet "${args[@]}" >"${f}.out" 2>"${f}.err" || rc=$?
    grep '^RESULT' "${f}.out" | sed "s/^/    /" >&2 || true
    if [[ -z $(val "${f}.out" tcp verdict) ]]; then
        echo "  lab failed (exit ${rc}):" >&2
        tail -n 20 "${f}.err" >&2
        rows+=("| ${NAMES[${i}]} | failed (exit ${rc}): $(tail -n 1 "${f}.err") | | | | | | | | |")
        continue
    fi
    gap=$(val "${f}.out" tcp gap_ms)
    if [[ ${NAMES[${i}]} == ctsync* ]]; then
        us=$(val "${f}.out" promotion failover.promote_commit_us)
        commit=$(awk -v u="${us:-0}" 'BEGIN {printf "%.1f", u / 1000}')
        commit_cell="${commit} (commit step; $(val "${f}.out" promotion failover.promote_committed) entries written)"
    else
        commit=$(val "${f}.out" promotion commit_ms)
        if [[ $(val "${f}.out" entries committed_before_vip) == yes ]]; then
            commit_cell="${commit} (\`conntrackd -c\`; the entries were in the kernel before the VIPs moved)"
        else
            commit_cell="${commit} (\`conntrackd -c\`; all committed $(val "${f}.out" promotion committed_after_vip_ms) ms after the VIPs moved)"
        fi
    fi
    GAP[${i}]=${gap}
    COMMIT[${i}]=${commit}
    udp="$(val "${f}.out" udp verdict), $(val "${f}.out" udp mappings) mapping(s)"
    held="$(val "${f}.out" replication held) in $(val "${f}.out" replication ms) ms"
    [[ $(val "${f}.out" replication complete) == yes ]] || held="**${held} (incomplete)**"
    present="$(val "${f}.out" entries present) of $(val "${f}.out" entries primary)"
    [[ $(val "${f}.out" entries committed_before_vip) == yes ]] || present="**${present}**"
    rows+=("| ${NAMES[${i}]} | ${held} | $(val "${f}.out" failover takeover_ms) | ${gap} (bound $(val "${f}.out" tcp bound_ms)) | $(val "${f}.out" tcp within_bound) | $(val "${f}.out" tcp lost) | ${udp} | $(val "${f}.out" rst rst) | ${present} | ${commit_cell} |")
done

echo "| run | backup held the ${N} entries | VRRP takeover ms | TCP gap ms | gap within bound | lines lost | UDP | RSTs at server | in the new primary's kernel when the VIPs moved | promotion → all committed, ms |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "Ratios ctsync / conntrackd (lower is better; one run each, the gap includes TCP's retransmission backoff):"
declare -A PAIR_NOTE=([02]="defaults" [12]="both commit at promotion" [03]="both write into the backup's kernel")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b}'; }
for pair in "0 2" "1 2" "0 3"; do
    read -r c d <<<"${pair}"
    [[ -n ${GAP[${c}]:-} && -n ${GAP[${d}]:-} ]] || continue
    echo "- ${NAMES[${c}]} / ${NAMES[${d}]} (${PAIR_NOTE[${c}${d}]}): TCP gap $(ratio "${GAP[${c}]}" "${GAP[${d}]}"), promotion → all committed $(ratio "${COMMIT[${c}]}" "${COMMIT[${d}]}")"
done
echo
echo "Bound: VRRP takeover + the stream's largest TCP RTO + 250 ms. Lines lost: TCP lines never echoed. UDP: SURVIVED"
echo "when the server saw one source (the NAT mapping held). Bold: not all there (backup) or not committed before"
echo "the VIPs moved (new primary's kernel)."
