# SPDX-License-Identifier: GPL-2.0-or-later
if(NOT PREFIX STREQUAL "/usr")
  message(FATAL_ERROR "ctsync: packages need a tree configured with -DCMAKE_INSTALL_PREFIX=/usr (this one: ${PREFIX})")
endif()
