#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Fails when a C++ file differs from what clang-format (.clang-format) makes of it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "${CTSYNC_ROOT}"
mapfile -t files < <(git ls-files -- '*.cpp' '*.hpp' 2>/dev/null || find core sdk plugins tests bench -name '*.[ch]pp')
((${#files[@]})) || die "no C++ files found"
clang-format --dry-run --Werror "${files[@]}"
echo "check-format: ${#files[@]} files formatted"
