# SPDX-License-Identifier: GPL-2.0-or-later
# Helpers shared by the benchmarks: namespaces with a per-run prefix, bounded waits, cleanup of what the run
# started (by PID), and a conntrackd FTFW configuration. Sourced; expects ROOT and BIN to be set.
PREFIX="ctsync-b$$-"
WORK="$(mktemp -d /tmp/ctsync-bench-XXXXXX)"
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "${pid}" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.1; done
        kill -9 "${pid}" 2>/dev/null || true
    done
    PIDS=()
    for ns in $(ip netns list | awk '{print $1}' | grep "^${PREFIX}" || true); do ip netns del "${ns}"; done
}
trap 'cleanup; [[ -n "${CTSYNC_BENCH_KEEP:-}" ]] && echo "kept ${WORK}" >&2 || rm -rf "${WORK}"' EXIT INT TERM

ns_new() { ip netns add "${PREFIX}$1"; ip -n "${PREFIX}$1" link set lo up; }
in_ns() { local ns="${PREFIX}$1"; shift; ip netns exec "${ns}" "$@"; }
now_ms() { date +%s%3N; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# Waits (bounded) until a command's output equals a value.
wait_for() {
    local want="$1" limit="$2"; shift 2
    for _ in $(seq "$((limit * 100))"); do
        [[ "$("$@" 2>/dev/null)" == "${want}" ]] && return 0
        sleep 0.01
    done
    echo "timed out waiting for '$*' to print ${want} (last: $("$@" 2>&1 | tail -1))" >&2
    for sock in "${WORK}"/*.sock; do  # what the daemons say, for the post-mortem
        [[ -S ${sock} ]] && "${BIN}/ctsyncctl" -S "${sock}" stats >"${sock%.sock}.stats" 2>&1 || true
    done
    return 1
}
# Median and range of a list of numbers ("-" and "timeout" pass through).
stat() {
    printf '%s\n' "$@" | awk '
        /^-?[0-9.]+$/ {v[n++] = $1; next} {other = $1}
        END {
            if (n == 0) {print (other == "" ? "-" : other); exit}
            for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) {t = v[i]; v[i] = v[j]; v[j] = t}
            m = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
            if (n == 1) printf "%g", m; else printf "%g (%g–%g)", m, v[0], v[n - 1]
        }'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime of a process
source "${ROOT}/bench/conntrackd_conf.sh"
conntrackd_config() { # name local_ip peer_ip dev   (CD_WARM=1: DisableExternalCache On, writes to the kernel)
    conntrackd_conf "${WORK}/$1" "$2" "$3" "$4" "$([[ -n ${CD_WARM:-} ]] && echo warm)" >"${WORK}/$1.conf"
}
cd_external() { in_ns "$1" conntrackd -C "${WORK}/$1.conf" -s 2>/dev/null | awk '/cache external:/ {x=1} x && /current active connections/ {print $NF; exit}'; }
cd_internal() { in_ns "$1" conntrackd -C "${WORK}/$1.conf" -s 2>/dev/null | awk '/cache internal:/ {x=1} x && /current active connections/ {print $NF; exit}'; }

