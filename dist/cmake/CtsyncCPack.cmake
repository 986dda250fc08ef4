# SPDX-License-Identifier: GPL-2.0-or-later
# Debian packages from this build tree (ADR-036): `ctsync` (daemon, ctsyncctl, units, conffile, man pages,
# completion), `ctsync-plugin-<id>` per plugin, `libctsync-sdk-dev`. Included by dist/CMakeLists.txt.
if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  message(STATUS "ctsync: packages need -DCMAKE_INSTALL_PREFIX=/usr (this tree: ${CMAKE_INSTALL_PREFIX}); "
                 "the package-deb target refuses to run")
endif()

# Plugin ABI: ctsync Provides ctsync-plugin-abi-<major> (= <major>.<minor>); a plugin Depends on
# ctsync-plugin-abi-<major> (>= the minor it was built with), what the loader's handshake accepts.
file(STRINGS "${PROJECT_SOURCE_DIR}/sdk/include/ctsync/sdk/abi.hpp" _abi REGEX "kAbiM(ajor|inor) = [0-9]+")
string(REGEX MATCH "kAbiMajor = ([0-9]+)" _m "${_abi}")
set(CTSYNC_ABI_MAJOR "${CMAKE_MATCH_1}")
string(REGEX MATCH "kAbiMinor = ([0-9]+)" _m "${_abi}")
set(CTSYNC_ABI_MINOR "${CMAKE_MATCH_1}")
set(_abi_virtual "ctsync-plugin-abi-${CTSYNC_ABI_MAJOR}")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME ctsync)
set(CPACK_PACKAGE_VENDOR "The ctsync developers")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "ctsync developers <ctsync-devel@lists.ctsync.org>")
set(CPACK_PACKAGE_DIRECTORY "${PROJECT_BINARY_DIR}/packages")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
# Files outside the prefix (/etc, /lib/systemd) are staged through DESTDIR (dist/CMakeLists.txt).
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/ctsync/ctsync")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_COMPONENTS_ALL ctsync libctsync-sdk-dev)
set(_debian_version "${PROJECT_VERSION}-${CPACK_DEBIAN_PACKAGE_RELEASE}")

# ctsync
set(CPACK_DEBIAN_CTSYNC_PACKAGE_NAME ctsync)
set(CPACK_DEBIAN_CTSYNC_DESCRIPTION
    "ctsyncd replicates the kernel's conntrack table (flows, NAT bindings, marks,\nzones, labels, expectations) from the primary firewall to its backups and\nwrites it into the kernel of the backup keepalived promotes, before traffic\narrives. This package holds the daemon, ctsyncctl, the systemd units, the\nman pages and the default configuration; the source, protocol, transport and\nHA plugins come in their own packages, ctsync-plugin-*.")
set(CPACK_DEBIAN_CTSYNC_PACKAGE_PROVIDES "${_abi_virtual} (= ${CTSYNC_ABI_MAJOR}.${CTSYNC_ABI_MINOR})")
set(_recommends)
foreach(id IN ITEMS source-ctnetlink proto-tcp proto-udp transport-mcast)
  if(id IN_LIST CTSYNC_PACKAGED_PLUGINS)
    list(APPEND _recommends "ctsync-plugin-${id}")
  endif()
endforeach()
list(JOIN _recommends ", " CPACK_DEBIAN_CTSYNC_PACKAGE_RECOMMENDS)
set(CPACK_DEBIAN_CTSYNC_PACKAGE_SUGGESTS "keepalived, conntrack")
set(_control "${CMAKE_CURRENT_BINARY_DIR}/debian/ctsync")
file(MAKE_DIRECTORY "${_control}")
file(WRITE "${_control}/conffiles" "/etc/ctsync/ctsyncd.json\n")
foreach(script postinst postrm)
  file(COPY "${CMAKE_CURRENT_SOURCE_DIR}/debian/${script}" DESTINATION "${_control}"
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
endforeach()
set(CPACK_DEBIAN_CTSYNC_PACKAGE_CONTROL_EXTRA "${_control}/conffiles;${_control}/postinst;${_control}/postrm")

# One package per plugin.
foreach(id IN LISTS CTSYNC_PACKAGED_PLUGINS)
  set(component "ctsync-plugin-${id}")
  string(TOUPPER "${component}" upper)
  list(APPEND CPACK_COMPONENTS_ALL ${component})
  set(CPACK_DEBIAN_${upper}_PACKAGE_NAME ${component})
  set(CPACK_DEBIAN_${upper}_PACKAGE_DEPENDS "${_abi_virtual} (>= ${CTSYNC_ABI_MAJOR}.${CTSYNC_ABI_MINOR})")
  set(CPACK_DEBIAN_${upper}_DESCRIPTION
      "ctsync plugin ${id}\nThe ${id} plugin for ctsyncd, the connection-tracking\nreplication daemon, chosen by its id in /etc/ctsync/ctsyncd.json.\nIts keys: ctsyncd.json(5) and ctsyncd --describe ${id}.\nREADME: /usr/share/doc/${component}/.")
endforeach()

# libctsync-sdk-dev: headers, CMake package, test kit (mocks, conformance suite), the example plugin.
set(CPACK_DEBIAN_LIBCTSYNC-SDK-DEV_PACKAGE_NAME libctsync-sdk-dev)
set(CPACK_DEBIAN_LIBCTSYNC-SDK-DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_LIBCTSYNC-SDK-DEV_PACKAGE_ARCHITECTURE amd64)
set(CPACK_DEBIAN_LIBCTSYNC-SDK-DEV_PACKAGE_DEPENDS
    "cmake (>= 3.25), g++-12, libboost${Boost_VERSION_MAJOR}.${Boost_VERSION_MINOR}-dev, libboost-filesystem${Boost_VERSION_MAJOR}.${Boost_VERSION_MINOR}-dev, libboost-system${Boost_VERSION_MAJOR}.${Boost_VERSION_MINOR}-dev, nlohmann-json3-dev, libfmt-dev, libgtest-dev, libgmock-dev")
set(CPACK_DEBIAN_LIBCTSYNC-SDK-DEV_PACKAGE_SUGGESTS "ctsync (= ${_debian_version})")
set(CPACK_DEBIAN_LIBCTSYNC-SDK-DEV_DESCRIPTION
    "SDK to write ctsync plugins out of tree\nPublic headers (interfaces and value types), the ctsync-sdk CMake package\nwith ctsync_add_plugin(), the test kit (gmock mocks of every interface, the\nplugin conformance suite with the daemon's own loader) and an example\nplugin. Plugins must be built with the compiler, Boost and nlohmann_json of\nthe distribution's ctsync: the loader compares build fingerprints.")

include(CPack)

# `package-deb`: the packages into build/packages/, only from a /usr tree.
add_custom_target(package-deb
  COMMAND "${CMAKE_COMMAND}" -E echo "ctsync: building Debian packages into ${CPACK_PACKAGE_DIRECTORY}"
  COMMAND "${CMAKE_COMMAND}" -DPREFIX=${CMAKE_INSTALL_PREFIX} -P "${CMAKE_CURRENT_SOURCE_DIR}/cmake/require_usr.cmake"
  COMMAND "${CMAKE_CPACK_COMMAND}" --config "${PROJECT_BINARY_DIR}/CPackConfig.cmake"
  WORKING_DIRECTORY "${PROJECT_BINARY_DIR}"
  USES_TERMINAL)
