#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The demo from a fresh clone: installs every dependency, builds, and runs ctsync on its embedded default.
#
# What it shows today: the plugins found, a full config check, and two ctsyncd instances — the two
# firewalls of a pair — side by side in their own network namespaces. fw1's ctsyncd reads fw1's kernel table
# (20000 NATed entries); the table is moved to fw2 by hand (ctsyncctl dump --json, import, commit) and fw2's
# kernel ends with the same entries. Live replication (issue #4) and the failover demo with its verdict
# (issue #5) replace the manual move.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_root "$@"

step "dependencies"
"${CTSYNC_ROOT}/scripts/install-deps.sh"
build

ctsyncd="${CTSYNC_BUILD_DIR}/bin/ctsyncd"
ctsyncctl="${CTSYNC_BUILD_DIR}/bin/ctsyncctl"
prefix="ctsync-demo$$-"
work="$(mktemp -d /tmp/ctsync-demo-XXXXXX)"
pids=()

cleanup() {
    for pid in "${pids[@]}"; do
        kill -TERM "${pid}" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "${pid}" 2>/dev/null || true
    done
    for ns in fw1 fw2; do ip netns del "${prefix}${ns}" 2>/dev/null || true; done
    rm -rf "${work}"
}
trap cleanup EXIT INT TERM

step "plugins found"
"${ctsyncd}" --list-plugins

for id in 1 2; do
    ns="${prefix}fw${id}"
    ip netns add "${ns}"
    ip -n "${ns}" link set lo up
    mkdir -p "${work}/fw${id}"
    cat >"${work}/fw${id}/ctsyncd.json" <<JSON
{
  "node": {"id": ${id}, "name": "fw${id}"},
  "daemon": {
    "lock_file": "${work}/fw${id}/ctsyncd.lock",
    "control_socket": "${work}/fw${id}/ctsyncd.sock",
    "log": {"level": "info", "file": "${work}/fw${id}/ctsyncd.log"}
  },
  "source": {"plugin": "source-ctnetlink", "config": {"expectations": false}}
}
JSON
    step "check the config of fw${id}"
    "${ctsyncd}" --check-config "${work}/fw${id}/ctsyncd.json"
    ip netns exec "${ns}" "${ctsyncd}" -C "${work}/fw${id}/ctsyncd.json" &
    pids+=("$!")
done

step "wait for both daemons (bounded: 10 s)"
for id in 1 2; do
    ok=0
    for _ in $(seq 100); do
        if "${ctsyncctl}" -C "${work}/fw${id}/ctsyncd.json" status >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.1
    done
    ((ok)) || { cat "${work}/fw${id}/ctsyncd.log" >&2; die "fw${id} did not start"; }
done

for id in 1 2; do
    step "ctsyncctl -C fw${id}/ctsyncd.json status"
    "${ctsyncctl}" -C "${work}/fw${id}/ctsyncd.json" status
done

step "fw1: 20000 NATed TCP entries appear in its kernel; ctsyncd reads them from events"
ip netns exec "${prefix}fw1" "${CTSYNC_BUILD_DIR}/bin/ct-inject" --count 20000 --nat
flows() { "${ctsyncctl}" -C "${work}/$1/ctsyncd.json" status --json | sed -n 's/.*"internal_flows": \([0-9]*\).*/\1/p'; }
for _ in $(seq 100); do [[ "$(flows fw1)" == 20000 ]] && break; sleep 0.1; done
echo "fw1 internal cache: $(flows fw1) flows; fw1 kernel: $(ip netns exec "${prefix}fw1" conntrack -C) entries"
"${ctsyncctl}" -C "${work}/fw1/ctsyncd.json" --timeout 60000 dump >"${work}/fw1.txt"
head -3 "${work}/fw1.txt"

step "move the table by hand: dump on fw1, import into fw2's external cache, commit into fw2's kernel"
"${ctsyncctl}" -C "${work}/fw1/ctsyncd.json" --timeout 60000 dump --json >"${work}/table.json"
"${ctsyncctl}" -C "${work}/fw2/ctsyncd.json" --timeout 60000 import "${work}/table.json"
"${ctsyncctl}" -C "${work}/fw2/ctsyncd.json" --timeout 60000 commit
echo "fw2 kernel: $(ip netns exec "${prefix}fw2" conntrack -C) entries"
ip netns exec "${prefix}fw2" conntrack -L >"${work}/fw2.txt" 2>/dev/null
head -2 "${work}/fw2.txt"

step "fw1 log"
cat "${work}/fw1/ctsyncd.log"

kernel2=$(ip netns exec "${prefix}fw2" conntrack -C)
echo
if [[ "${kernel2}" == 20000 ]]; then
    echo "Demo complete: fw1's 20000 entries, read by ctsyncd, are now in fw2's kernel."
else
    echo "Demo FAILED: fw2's kernel holds ${kernel2} of 20000 entries." >&2
    exit 1
fi
echo "Live replication (issue #4) and the failover verdict (issue #5) replace the manual move; see README.md."
