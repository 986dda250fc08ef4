#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Fetches Debian's stock kernel (the package linux-image-amd64 depends on: it ships tipc.ko and sctp.ko,
# which the host kernel lacks) and unpacks it into the VM cache, with modules.dep made by depmod. The
# package is unpacked, not installed: installing it would run initramfs and boot-loader hooks on a host
# that never boots it (ADR-033). Idempotent. Prints the cache folder of the kernel on its last line.
set -euo pipefail
cache="${CTSYNC_VM_CACHE:-/var/cache/ctsync-vm}"
die() { printf 'fetch-kernel: %s\n' "$*" >&2; exit 1; }

package="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
if [[ -z ${package} ]]; then
    apt-get update -q >/dev/null
    package="$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
fi
[[ -n ${package} ]] || die "apt-cache depends linux-image-amd64 names no linux-image-<version> package"
kver="${package#linux-image-}"
dir="${cache}/${kver}"
if [[ -f ${dir}/ready ]]; then
    echo "${dir}"
    exit 0
fi
rm -rf "${dir}" && mkdir -p "${dir}/root"
echo "fetch-kernel: downloading ${package} (Debian) into ${dir}" >&2
(cd "${dir}" && apt-get download -q "${package}" >&2) ||
    die "apt-get download ${package} failed"
dpkg-deb -x "${dir}/${package}"_*.deb "${dir}/root"
rm -f "${dir}/${package}"_*.deb
[[ -f ${dir}/root/boot/vmlinuz-${kver} ]] || die "${package} holds no /boot/vmlinuz-${kver}"
depmod -b "${dir}/root" "${kver}"
echo "${kver}" >"${dir}/ready"
echo "${dir}"
