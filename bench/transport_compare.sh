#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Transport comparison (issue 10): the same replication workload over transport-mcast, transport-tcp and
# transport-tipc in one throw-away VM (Debian's stock kernel under qemu TCG: the host kernel has no TIPC),
# repeated; medians with min and max. Writes docs/transport-comparison.md (the table, how it was made and every
# raw RESULT line) and docs/transport-comparison.png (one panel per metric, a bar per transport), and prints
# the table.
#
#   sudo bench/transport_compare.sh [--runs R] [--entries N] [--transports "mcast tcp tipc"]
#        [--latency-count C] [--latency-rate PER_S] [--loss PCT] [--timeout S] [--out-dir DIR]
#   bench/transport_compare.sh --from-results FILE [--out-dir DIR]   (no VM: the table and plot again from a
#        record, e.g. docs/transport-comparison.md itself; the run's options are read from it)
#
# Defaults: 3 runs, 20000 entries, 2000 latency probes at 500/s, 5 % loss, docs/ of this tree. Needs root
# (qemu's 9p export), a build (build/bin: ctsyncd, ctsyncctl, ct-inject, ct-latency; the plugins), qemu, the
# VM kernel (scripts/install-deps.sh) and gnuplot (gnuplot-nox) for the plot. What is measured and how:
# bench/transport_compare_vm.sh (the part inside the VM) and docs/BENCHMARKS.md. Every number in the table
# comes from a RESULT line; a metric that could not be measured shows "not measured" and why, never a number.
# Exit codes: 0 written (check "not measured" in the output); 1 the VM's results were unusable (nothing
# written); 2 usage; the VM harness's 124 (timeout) and 125 (no run) pass through, nothing written.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${CTSYNC_BUILD_DIR:-${ROOT}/build}/bin"
RUNS=3
N=20000
TRANSPORTS="mcast tcp tipc"
LAT_COUNT=2000
LAT_RATE=500
LOSS=5
TIMEOUT=""
OUT="${ROOT}/docs"
FROM=""
rc=""
usage() {
    sed -n '9,12p' "$0" | sed 's/^# *//' >&2
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
        --timeout) TIMEOUT="${2:?}"; shift 2 ;;
        --out-dir) OUT="${2:?}"; shift 2 ;;
        --from-results) FROM="${2:?}"; shift 2 ;;
        -h | --help) usage ;;
        *) echo "transport_compare: unknown argument '$1'" >&2; usage ;;
    esac
done
for v in RUNS N LAT_COUNT LAT_RATE LOSS; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || { echo "transport_compare: ${v} must be a positive integer" >&2; usage; }
done
read -ra TLIST <<<"${TRANSPORTS}"
((${#TLIST[@]})) || usage
# A bound on the whole VM run: boot, a warm-up, then per transport and repetition four labs (about 100 s at
# 20000 entries on 2 cores, more when the host is busy): three times that, plus 5 ms per entry and lab.
[[ -n ${TIMEOUT} ]] || TIMEOUT=$((300 + RUNS * ${#TLIST[@]} * (300 + N * 2 * 5 / 1000)))
[[ ${TIMEOUT} =~ ^[0-9]+$ ]] || usage
if [[ -z ${FROM} ]]; then
    [[ ${EUID} -eq 0 ]] || { echo "transport_compare: must run as root (the VM harness)" >&2; exit 2; }
    for b in ctsyncd ctsyncctl ct-inject ct-latency; do
        [[ -x ${BIN}/${b} ]] || { echo "transport_compare: ${BIN}/${b} is missing: build first (scripts/build.sh)" >&2; exit 2; }
    done
fi
mkdir -p "${OUT}"
have_gnuplot=1
command -v gnuplot >/dev/null || have_gnuplot=0

WORK="$(mktemp -d /tmp/ctsync-tcompare-XXXXXX)"
trap '[[ -n ${CTSYNC_BENCH_KEEP:-} ]] && echo "kept ${WORK}" >&2 || rm -rf "${WORK}"' EXIT
# The record: what the VM printed that the table is made of (its command and machine lines, the RESULT lines,
# its end line) and the host's side (# host:, # date:, # load:, # vm-run:). It goes into the Markdown file as
# is, and --from-results reads it back from there.
if [[ -n ${FROM} ]]; then
    [[ -r ${FROM} ]] || { echo "transport_compare: cannot read ${FROM}" >&2; exit 2; }
    grep -E '^(RESULT |command: bench/transport_compare_vm|machine: |# (done in|host:|date:|load:|vm-run:))' "${FROM}" >"${WORK}/record" || true
    inner_cmd="$(sed -n 's/^command: bench\/transport_compare_vm.sh //p' "${WORK}/record" | head -n1)"
    [[ -n ${inner_cmd} ]] || { echo "transport_compare: no 'command: bench/transport_compare_vm.sh' line in ${FROM}" >&2; exit 1; }
    opt() { sed -n "s/.*--$1 \([0-9]*\).*/\1/p" <<<"${inner_cmd}"; }
    RUNS=$(opt runs) N=$(opt entries) LAT_COUNT=$(opt latency-count) LAT_RATE=$(opt latency-rate) LOSS=$(opt loss)
    TRANSPORTS="$(sed -n 's/.*--transports "\([^"]*\)".*/\1/p' <<<"${inner_cmd}")"
    read -ra TLIST <<<"${TRANSPORTS}"
else
    started=${SECONDS}
    load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
    inner=(bench/transport_compare_vm.sh --runs "${RUNS}" --entries "${N}" --transports "${TRANSPORTS}"
        --latency-count "${LAT_COUNT}" --latency-rate "${LAT_RATE}" --loss "${LOSS}")
    echo "transport_compare: scripts/vm/vm-run.sh --timeout ${TIMEOUT} -- ${inner[*]}" >&2
    echo "transport_compare: progress follows (the VM prints it); results at the end" >&2
    rc=0
    (cd "${ROOT}" && scripts/vm/vm-run.sh --timeout "${TIMEOUT}" -- "${inner[@]}") >"${WORK}/vm.out" 2>"${WORK}/vm.err" &
    vm_pid=$!
    tail --pid="${vm_pid}" -n +1 -F "${WORK}/vm.out" 2>/dev/null | grep --line-buffered -v '^RESULT ' >&2 || true
    wait "${vm_pid}" || rc=$?
    cat "${WORK}/vm.err" >&2
    if ((rc == 124 || rc == 125)); then
        echo "transport_compare: the VM harness failed (exit ${rc}); nothing written" >&2
        exit "${rc}"
    fi
    {
        echo "# host: $(uname -r), $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
        echo "# date: $(date -u '+%F %H:%M UTC'), $((SECONDS - started)) s in all"
        echo "# load: host load average before ${load_before}, after $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "# $(grep '^vm-run: kernel' "${WORK}/vm.err" | tail -n1 || true)"
        grep -E '^(RESULT |command: |machine: |# done in)' "${WORK}/vm.out" || true
    } >"${WORK}/record"
fi
grep '^RESULT ' "${WORK}/record" >"${WORK}/results" || true
if [[ ! -s ${WORK}/results ]]; then
    echo "transport_compare: no RESULT line${FROM:+ in ${FROM}}${rc:+ came back (exit ${rc})}; nothing written" >&2
    exit 1
fi

# Statistics per transport and metric: the numeric values' median, min, max and count, and the reasons of
# the runs that could not measure (value=NA).
# stats.tsv: transport metric count runs median min max yes reasons
awk -v transports="${TRANSPORTS}" '
function field(line, key,    m) {
    if (match(line, " " key "=\"[^\"]*\"")) { m = substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 4); return m }
    if (match(line, " " key "=[^ ]*")) return substr(line, RSTART + length(key) + 2, RLENGTH - length(key) - 2)
    return ""
}
{
    t = field($0, "transport"); m = field($0, "metric"); v = field($0, "value")
    k = t SUBSEP m
    runs[k]++
    if (v == "NA") { r = field($0, "reason"); if (index(why[k], r) == 0) why[k] = why[k] (why[k] == "" ? "" : "; ") r; next }
    if (v == "yes" || v == "no") { yes[k] += (v == "yes"); bool[k] = 1; n[k]++; next }
    vals[k, ++n[k]] = v + 0
}
END {
    split("throughput_eps latency_p50_us latency_p90_us latency_p99_us latency_max_us latency_lost cpu_primary_us cpu_backup_us converge_loss_ms converge_loss_exact detect_kill_ms detect_cable_ms detect_ifdown_ms", ms, " ")
    nt = split(transports, ts, " ")
    for (i = 1; i <= nt; i++) for (j = 1; j in ms; j++) {
        t = ts[i]; m = ms[j]; k = t SUBSEP m
        if ((t SUBSEP "all") in why) { why[k] = why[t SUBSEP "all"] }
        c = n[k] + 0
        if (bool[k] || c == 0) { med = "NA"; lo = "NA"; hi = "NA" }
        else {
            for (a = 1; a <= c; a++) s[a] = vals[k, a]
            for (a = 2; a <= c; a++) { x = s[a]; b = a - 1; while (b >= 1 && s[b] > x) { s[b + 1] = s[b]; b-- } s[b + 1] = x }
            med = (c % 2) ? s[(c + 1) / 2] : (s[c / 2] + s[c / 2 + 1]) / 2
            lo = s[1]; hi = s[c]
        }
        printf "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", t, m, c, runs[k] + 0, med, lo, hi, (bool[k] ? yes[k] + 0 : "-"), (why[k] == "" ? "-" : why[k])
    }
}' "${WORK}/results" >"${WORK}/stats.tsv"

# The table: a row per metric, a column per transport; "median (min–max)", n/N when some runs failed.
cell() { # transport metric scale decimals
    awk -F'\t' -v t="$1" -v m="$2" -v sc="$3" -v d="$4" -v runs="${RUNS}" '
    $1 == t && $2 == m {
        if ($3 == 0) { print "not measured (see below)"; exit }
        if ($8 != "-") out = sprintf("%d of %d exact", $8, $3)
        else { f = "%." d "f"; out = sprintf(f " (" f "–" f ")", $5 / sc, $6 / sc, $7 / sc) }
        total = ($4 > runs) ? $4 : runs
        if ($3 < total) out = out sprintf("; %d of %d runs measured (see below)", $3, total)
        print out; exit
    }' "${WORK}/stats.tsv"
}
md="${WORK}/table.md"
{
    printf '| metric (median of %s runs, min–max) |' "${RUNS}"
    for t in "${TLIST[@]}"; do printf ' transport-%s |' "${t}"; done
    printf '\n|---|'
    for _ in "${TLIST[@]}"; do printf -- '---|'; done
    printf '\n'
    row() { # label metric scale decimals
        printf '| %s |' "$1"
        for t in "${TLIST[@]}"; do printf ' %s |' "$(cell "${t}" "$2" "$3" "$4" | sed 's/|/\\|/g')"; done
        printf '\n'
    }
    row "throughput, entries/s (${N} injected at once → both backups' kernels)" throughput_eps 1 0
    row "replication latency p50, ms (primary's kernel → bk1's kernel)" latency_p50_us 1000 1
    row "replication latency p90, ms" latency_p90_us 1000 1
    row "replication latency p99, ms" latency_p99_us 1000 1
    row "replication latency max, ms" latency_max_us 1000 1
    row "latency probes lost (of ${LAT_COUNT})" latency_lost 1 0
    row "CPU per entry, primary's ctsyncd, µs" cpu_primary_us 1 1
    row "CPU per entry, a backup's ctsyncd (warm standby), µs" cpu_backup_us 1 1
    row "convergence under ${LOSS} % loss, ms (${N} entries → both backups' kernels)" converge_loss_ms 1 0
    row "backups' external caches = primary's internal cache after the loss run" converge_loss_exact 1 0
    row "failure detection, backup's ctsyncd SIGKILLed, ms" detect_kill_ms 1 0
    row "failure detection, backup's cable cut, ms" detect_cable_ms 1 0
    row "failure detection, backup takes its sync interface down, ms" detect_ifdown_ms 1 0
} >"${md}"

# How each failure was detected (the engine's reason=: silence after peer_timeout_ms, or transport: the
# transport reported the peer down), counted over the runs.
reasons="$(awk '/metric=detect_/ && !/value=NA/ {
    match($0, /transport=[^ ]*/); t = substr($0, RSTART + 10, RLENGTH - 10)
    match($0, /metric=[^ ]*/); m = substr($0, RSTART + 7, RLENGTH - 7)
    match($0, / reason=[^ ]*/); r = substr($0, RSTART + 8, RLENGTH - 8)
    sub(/^detect_/, "", m); sub(/_ms$/, "", m)
    k = t " " m; c[k " " r]++
    if (match($0, /transport_report_ms=[0-9]+/)) {
        v = substr($0, RSTART + 20, RLENGTH - 20) + 0
        if (!(k in lo) || v < lo[k]) lo[k] = v
        if (!(k in hi) || v > hi[k]) hi[k] = v
    }
} END {
    for (x in c) { split(x, f, " "); k = f[1] " " f[2]
        print x, c[x], ((k in lo) ? (lo[k] == hi[k] ? lo[k] : lo[k] "–" hi[k]) : "-") }
}' "${WORK}/results" | sort | awk '
    $1 != last {printf "%s%s:", (NR > 1 ? "; " : ""), $1; last = $1; sep = " "}
    {printf "%s%s %s ×%s%s", sep, $2, $3, $4, ($5 == "-" ? "" : " (the transport reported it down after " $5 " ms)"); sep = ", "}')"

# The plot's data: a row per transport; per metric median, min, max (latencies in ms); NaN when not measured.
dat="${WORK}/plot.dat"
{
    echo "# transport throughput(3) p50_ms(3) p99_ms(3) cpu_primary(3) cpu_backup(3) converge_ms(3) kill_ms(3) cable_ms(3) ifdown_ms(3)"
    for t in "${TLIST[@]}"; do
        label="${t}"
        awk -F'\t' -v t="${t}" '$1 == t && $3 > 0 && $8 == "-" {n++} END {exit n > 0 ? 0 : 1}' "${WORK}/stats.tsv" || label="${t} (n/a)"
        printf '"%s"' "${label}"
        for m in throughput_eps:1 latency_p50_us:1000 latency_p99_us:1000 cpu_primary_us:1 cpu_backup_us:1 converge_loss_ms:1 detect_kill_ms:1 detect_cable_ms:1 detect_ifdown_ms:1; do
            awk -F'\t' -v t="${t}" -v m="${m%%:*}" -v sc="${m##*:}" '$1 == t && $2 == m {
                if ($3 == 0) printf " NaN NaN NaN"; else printf " %g %g %g", $5 / sc, $6 / sc, $7 / sc; exit }' "${WORK}/stats.tsv"
        done
        printf '\n'
    done
} >"${dat}"

vm_machine="$(sed -n 's/^machine: //p' "${WORK}/record" | head -n1)"
run_date="$(sed -n 's/^# date: \([0-9-]*\).*/\1/p' "${WORK}/record" | head -n1)"
cmd="bench/transport_compare.sh --runs ${RUNS} --entries ${N} --transports \"${TRANSPORTS}\" --latency-count ${LAT_COUNT} --latency-rate ${LAT_RATE} --loss ${LOSS}"
# What could not be measured, and why: once per transport when nothing of it was, else per metric.
not_measured="$(awk -F'\t' '
    { rows[$1]++; if ($3 == 0) none[$1]++; if ($9 != "-") { line[++n] = $1 SUBSEP $2 SUBSEP $3 SUBSEP $4 SUBSEP $9; why[$1] = $9 } }
    END {
        for (i = 1; i <= n; i++) {
            split(line[i], f, SUBSEP)
            if (none[f[1]] == rows[f[1]]) { if (!(f[1] in said)) printf "- transport-%s, every metric: %s\n", f[1], why[f[1]]; said[f[1]] = 1; continue }
            printf "- transport-%s, %s: %d of %d runs not measured: %s\n", f[1], f[2], f[4] - f[3], f[4], f[5]
        }
    }' "${WORK}/stats.tsv")"

png_note=""
png_written=0
if ((have_gnuplot)); then
    subtitle="bars: medians of ${RUNS} runs, whiskers: min–max; qemu TCG VM (kernel ${vm_machine%%,*}), ${N} entries${run_date:+, ${run_date}}"
    if gnuplot -e "data='${dat}'; out='${WORK}/plot.png'; subtitle='${subtitle}'" "${ROOT}/bench/plot_transport_compare.gp" 2>"${WORK}/gnuplot.err"; then
        mv "${WORK}/plot.png" "${OUT}/transport-comparison.png"
        png_written=1
        png_note="Plot: [transport-comparison.png](transport-comparison.png) (bench/plot_transport_compare.gp)."
    else
        png_note="Plot: not written, gnuplot failed: $(tr '\n' ' ' <"${WORK}/gnuplot.err")"
    fi
else
    png_note="Plot: not written, gnuplot is missing (package gnuplot-nox, scripts/install-deps.sh)."
fi

{
    echo "<!-- Generated by bench/transport_compare.sh from the record at the end; do not edit: run it again, or"
    echo "     bench/transport_compare.sh --from-results docs/transport-comparison.md to render it again. -->"
    echo "# Transport comparison (issue 10)"
    echo
    echo '```'
    echo "command: ${cmd}"
    sed -n 's/^# \(date\|host\|load\): /\1: /p; s/^# vm-run: /vm-run: /p' "${WORK}/record"
    echo "VM: ${vm_machine} (qemu TCG: software emulation; absolute figures are far below the host's)"
    echo '```'
    echo
    cat "${md}"
    echo
    echo "Failure detection, how: ${reasons:-none measured} (silence: the engine's peer_timeout_ms, 1500 ms, without a datagram; transport: the transport reported the peer down)."
    echo
    if [[ -n ${not_measured} ]]; then
        echo "Not measured:"
        echo
        echo "${not_measured}"
        echo
    fi
    echo "${png_note}"
    echo
    echo "What each row measures: docs/BENCHMARKS.md, \"Transports compared (issue 10)\", and bench/transport_compare_vm.sh."
    echo
    echo "<details><summary>Record (the VM's RESULT lines)</summary>"
    echo
    echo '```'
    cat "${WORK}/record"
    echo '```'
    echo
    echo "</details>"
} >"${WORK}/transport-comparison.md"
mv "${WORK}/transport-comparison.md" "${OUT}/transport-comparison.md"

echo
echo "command: ${cmd}"
echo "VM: ${vm_machine}; $(sed -n 's/^# date: //p' "${WORK}/record")"
echo
cat "${md}"
echo
echo "Failure detection, how: ${reasons:-none measured}"
[[ -z ${not_measured} ]] || printf 'Not measured:\n%s\n' "${not_measured}"
echo "${png_note}"
written="${OUT}/transport-comparison.md"
((png_written)) && written+=" and ${OUT}/transport-comparison.png"
echo "Written: ${written}"
