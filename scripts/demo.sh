#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The demo from a fresh clone: installs every dependency, builds, and runs the failover lab
# (scripts/lab/failover-lab.sh) in demo mode.
#
# What it shows: a client, a server, and between them a pair of stateful NAT firewalls run by keepalived
# (VRRP) and ctsyncd, all in network namespaces of their own. fw1 holds 20000 NATed connections (injected
# into its kernel) besides a live TCP connection and a UDP session from the client to the server; ctsyncd
# replicates them to fw2 as they appear (printed live). Then every port of fw1 is cut: fw2 takes the virtual
# IPs with the whole table already in its kernel, and the TCP connection and the UDP session go on. The end:
# the verdict (SURVIVED or BROKEN) with the gap in milliseconds; exit 0 when everything survived.
#
# Extra arguments go to the lab, e.g. `scripts/demo.sh --failback` (fw1 comes back and takes the VIPs back
# once its table is complete) or `scripts/demo.sh --sync none` (no ctsyncd: watch the connection break).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_root "$@"

step "dependencies"
"${CTSYNC_ROOT}/scripts/install-deps.sh"
build

step "plugins found"
"${CTSYNC_BUILD_DIR}/bin/ctsyncd" --list-plugins

step "the failover lab"
status=0
"${CTSYNC_ROOT}/scripts/lab/failover-lab.sh" --demo --build "${CTSYNC_BUILD_DIR}" --entries 20000 "$@" || status=$?
echo
if ((status == 0)); then
    echo "Demo complete: the connections survived the failover (see the verdict above)."
else
    echo "Demo: not everything survived (exit ${status}; see the verdict above)." >&2
fi
exit "${status}"
