#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# primary-backup.sh: keepalived notify script for a ctsync firewall pair, in the spirit of conntrack-tools'
# doc/sync/primary-backup.sh: the same steps, sent to ctsyncd through ctsyncctl's conntrackd-compatible
# flags (docs/MIGRATION.md explains what each one does in ctsync).
#
#   primary-backup.sh primary|backup|fault
#
# keepalived.conf, in the vrrp_sync_group (or the vrrp_instance) whose state this node follows:
#
#   notify_master "/usr/local/share/ctsync/primary-backup.sh primary"
#   notify_backup "/usr/local/share/ctsync/primary-backup.sh backup"
#   notify_fault  "/usr/local/share/ctsync/primary-backup.sh fault"
#
# Every step is logged with logger(1) under the tag ctsync-notify, with what ctsyncctl printed (for the -s
# check only when it fails); every call is bounded by --timeout. A failed step is logged and the next one
# still runs, except that the external cache is kept when the takeover failed. Exit status: 0 every step
# succeeded, 1 a step failed (or ctsyncd does not answer), 2 usage. keepalived ignores it; it is for people
# and tests.

CTSYNCCTL=${CTSYNCCTL:-/usr/sbin/ctsyncctl}
CTSYNC_CONFIG=${CTSYNC_CONFIG:-/etc/ctsync/ctsyncd.json}
# Milliseconds each ctsyncctl call may take. The takeover writes the whole external cache into the kernel
# (about 140000 entries a second on the benchmark machine, docs/BENCHMARKS.md): allow for the largest table.
CTSYNC_TIMEOUT_MS=${CTSYNC_TIMEOUT_MS:-10000}
CTSYNC_COMMIT_TIMEOUT_MS=${CTSYNC_COMMIT_TIMEOUT_MS:-120000}
LOG_TAG=ctsync-notify

log() {
    # log PRIORITY MESSAGE
    logger -t "$LOG_TAG" -p "daemon.$1" -- "$2"
}

failed=0

# step OUTPUT TIMEOUT_MS WHAT FLAG... : runs ctsyncctl and returns its exit status. What it printed is
# logged always (OUTPUT=log) or only when it failed (OUTPUT=quiet).
step() {
    output_mode=$1
    timeout_ms=$2
    what=$3
    shift 3
    output=$("$CTSYNCCTL" -C "$CTSYNC_CONFIG" --timeout "$timeout_ms" "$@" 2>&1)
    status=$?
    if [ "$status" -eq 0 ]; then
        log notice "$STATE: $what (ctsyncctl $*): done"
        output_priority=info
    else
        log err "ERROR: $STATE: $what (ctsyncctl $*) failed with exit status $status"
        output_priority=err
        failed=1
    fi
    if [ "$output_mode" = log ] || [ "$status" -ne 0 ]; then
        printf '%s\n' "$output" | while IFS= read -r line; do
            [ -n "$line" ] && log "$output_priority" "$STATE: $line"
        done
    fi
    return "$status"
}

STATE=$1
case "$STATE" in
primary)
    log notice "$STATE: keepalived made this node primary"
    # The takeover: commit the external cache into the kernel (with the protocol adjustments), flush the
    # kernel entries the old primary never had, start sending, send the whole table to the peers.
    if step log "$CTSYNC_COMMIT_TIMEOUT_MS" "commit the external cache" -c; then
        # After the commit the kernel holds the external cache's entries, which the takeover released
        # already: this only makes sure, as conntrackd's -f does. Skipped when the commit failed, so that
        # `ctsyncctl -c` can be run again with nothing lost.
        step log "$CTSYNC_TIMEOUT_MS" "flush the external cache" -f external
    else
        log err "ERROR: $STATE: the external cache is kept for another try: ctsyncctl -C $CTSYNC_CONFIG -c"
    fi
    # Read the kernel table again (mark and sweep): the internal cache then holds exactly what the kernel
    # holds. Harmless: only differences reach the peers.
    step log "$CTSYNC_TIMEOUT_MS" "resync the internal cache with the kernel" -R
    # Send the whole table to the peers. The takeover already queued one; this one matters when the node
    # was primary already (keepalived said MASTER again), and costs a second transfer otherwise.
    step log "$CTSYNC_TIMEOUT_MS" "send a bulk update to the peers" -B
    ;;
backup)
    log notice "$STATE: keepalived made this node a backup"
    # Is ctsyncd running? -s fails with exit status 1 when it cannot be reached.
    if ! step quiet "$CTSYNC_TIMEOUT_MS" "check that ctsyncd answers" -s; then
        log err "ERROR: $STATE: ctsyncd does not answer on the socket of $CTSYNC_CONFIG: start it (systemctl start ctsyncd) and look at its log"
        exit 1
    fi
    # Stop sending this node's table (role backup). Unlike conntrackd's -t, nothing is flushed from the
    # kernel on a timer: the entries the next primary never had are flushed when this node is promoted.
    step log "$CTSYNC_TIMEOUT_MS" "stop being primary" -t
    # Ask the new primary for its whole table.
    step log "$CTSYNC_TIMEOUT_MS" "request a resync from the other node" -n
    ;;
fault)
    log notice "$STATE: keepalived put this node in FAULT"
    step log "$CTSYNC_TIMEOUT_MS" "stop being primary" -t
    ;;
*)
    log err "ERROR: unknown state transition '$STATE'"
    echo "Usage: $0 primary|backup|fault" >&2
    exit 2
    ;;
esac

exit "$failed"
