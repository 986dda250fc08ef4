#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs one command as root inside a throw-away qemu VM that boots Debian's stock kernel (tipc.ko, sctp.ko:
# what the host kernel lacks), and exits with the command's exit code. The VM sees the host's root
# filesystem at the same paths (9p, read only, under a tmpfs overlay: writes stay in the VM), so build-tree
# binaries wherever the tree is (/tmp too), dlopen'ed plugins, their libraries, iproute2's ip and tipc, nft
# and conntrack all work unchanged; /run is the VM's own. The command's output is streamed to standard output as it runs.
#
#   scripts/vm/vm-run.sh [--timeout SECONDS] [--mem MIB] [--cpus N] [--module NAME]... -- COMMAND [ARG]...
#
# Exit codes: the command's; 124 the VM ran past --timeout (killed); 125 the VM did not run the command
# (no kernel, no qemu, boot failure: the console log's tail is printed). Facts: ../../shared/LAB-FACTS.md
# (TCG only: KVM does not work on these hosts). Design: docs/DECISIONS.md, ADR-033.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${CTSYNC_VM_CACHE:-/var/cache/ctsync-vm}"
timeout_s=600
mem=2048
cpus=2
modules=(virtio_pci 9pnet_virtio 9p overlay tipc sctp veth bridge nf_conntrack_netlink nf_tables nft_ct nft_numgen
    nft_nat nft_chain_nat nft_masq nft_objref)
die() { printf 'vm-run: %s\n' "$*" >&2; exit 125; }
usage() { sed -n '9p' "$0" | sed 's/^# *//' >&2; exit 125; }

while (($#)); do
    case "$1" in
        --timeout) timeout_s="${2:?}"; shift 2 ;;
        --mem) mem="${2:?}"; shift 2 ;;
        --cpus) cpus="${2:?}"; shift 2 ;;
        --module) modules+=("${2:?}"); shift 2 ;;
        --) shift; break ;;
        *) usage ;;
    esac
done
(($#)) || usage
[[ ${timeout_s} =~ ^[0-9]+$ && ${mem} =~ ^[0-9]+$ && ${cpus} =~ ^[0-9]+$ ]] || usage
[[ ${EUID} -eq 0 ]] || die "must run as root (qemu's 9p export of / with security_model=none)"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing: run scripts/install-deps.sh"
[[ -x /bin/busybox ]] || die "/bin/busybox is missing (package busybox-static): run scripts/install-deps.sh"

kdir="$(CTSYNC_VM_CACHE="${cache}" "${here}/fetch-kernel.sh" | tail -n1)" || die "no kernel (fetch-kernel.sh failed)"
kver="$(cat "${kdir}/ready")"
kroot="${kdir}/root"

# The initramfs: busybox, /init, and the modules in load order. Built once per kernel, init and module list.
key="$(printf '%s\n' "${kver}" "${modules[@]}" | cat - "${here}/init.sh" /bin/busybox | sha256sum | cut -c1-16)"
initrd="${kdir}/initrd-${key}.cpio.gz"
if [[ ! -f ${initrd} ]]; then
    stage="$(mktemp -d)"
    mkdir -p "${stage}/bin" "${stage}/modules"
    cp /bin/busybox "${stage}/bin/busybox"
    install -m 0755 "${here}/init.sh" "${stage}/init"
    declare -A seen=()
    for m in "${modules[@]}"; do
        deps="$(modprobe -d "${kroot}" -S "${kver}" --show-depends "${m}")" || die "no module ${m} in ${kver}"
        while read -r verb path _; do
            [[ ${verb} == insmod && -z ${seen[${path}]:-} ]] || continue
            seen[${path}]=1
            cp "${path}" "${stage}/modules/"
            echo "/modules/$(basename "${path}")" >>"${stage}/modules/order"
        done <<<"${deps}"
    done
    (cd "${stage}" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"${initrd}.tmp"
    mv "${initrd}.tmp" "${initrd}"
    rm -rf "${stage}"
fi

result="$(mktemp -d /tmp/ctsync-vm.XXXXXX)"
qemu_pid=""
tail_pid=""
cleanup() {
    [[ -n ${qemu_pid} ]] && kill "${qemu_pid}" 2>/dev/null && wait "${qemu_pid}" 2>/dev/null
    [[ -n ${tail_pid} ]] && kill "${tail_pid}" 2>/dev/null
    rm -rf "${result}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

{
    echo "cd $(printf '%q' "${PWD}") 2>/dev/null || cd /"
    echo "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb"
    for var in GTEST_COLOR GTEST_FILTER CTSYNC_VM_INSIDE; do
        [[ -n ${!var:-} ]] && echo "export ${var}=$(printf '%q' "${!var}")"
    done
    echo "export CTSYNC_VM_INSIDE=1"
    printf 'exec'
    printf ' %q' "$@"
    echo
} >"${result}/command.sh"
# The initramfs learns the result path from a second, tiny archive appended to the first.
per_run="$(mktemp -d)"
echo "${result}" >"${per_run}/result-path"
(cd "${per_run}" && echo result-path | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"${result}/run.cpio.gz"
rm -rf "${per_run}"
cat "${initrd}" "${result}/run.cpio.gz" >"${result}/initrd"
: >"${result}/output"

tail -n +1 -F "${result}/output" 2>/dev/null &
tail_pid=$!
started=$(date +%s)
qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp "${cpus}" -m "${mem}" -no-reboot -nodefaults \
    -display none -serial "file:${result}/console.log" \
    -kernel "${kroot}/boot/vmlinuz-${kver}" -initrd "${result}/initrd" \
    -append "console=ttyS0 panic=-1 quiet loglevel=4 rdinit=/init" \
    -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=${result},mount_tag=results,security_model=none" &
qemu_pid=$!
timed_out=0
while kill -0 "${qemu_pid}" 2>/dev/null; do
    if (($(date +%s) - started >= timeout_s)); then
        timed_out=1
        kill "${qemu_pid}" 2>/dev/null
        break
    fi
    sleep 0.5
done
wait "${qemu_pid}" 2>/dev/null || true
qemu_pid=""
sleep 0.3
kill "${tail_pid}" 2>/dev/null || true
tail_pid=""
elapsed=$(($(date +%s) - started))
if ((timed_out)); then
    echo "vm-run: the VM ran past ${timeout_s} s and was stopped; console:" >&2
    tail -n 30 "${result}/console.log" >&2
    exit 124
fi
if [[ ! -s ${result}/rc ]]; then
    echo "vm-run: the VM did not run the command (${elapsed} s); console:" >&2
    tail -n 40 "${result}/console.log" >&2
    exit 125
fi
rc="$(cat "${result}/rc")"
echo "vm-run: kernel ${kver}, ${elapsed} s, exit ${rc}" >&2
exit "${rc}"
