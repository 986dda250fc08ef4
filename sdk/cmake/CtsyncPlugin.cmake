# SPDX-License-Identifier: GPL-2.0-or-later
# ctsync_add_plugin(<id> SOURCES <files...> [LIBRARIES <targets...>] [OUTPUT_DIRECTORY <dir>] [NO_INSTALL])
#
# Builds the plugin <id> (its folder name and config id, e.g. "filter-port") as the loadable module
# "ctsync-<id>.so": hidden visibility so that the descriptor alias is the only exported symbol, linked
# against ctsync::sdk, installed into <libdir>/ctsync/plugins where ctsyncd looks for it. Used in tree and
# out of tree alike. OUTPUT_DIRECTORY overrides where the module is written in the build tree (in-tree plugins
# default to <build>/lib/ctsync/plugins, the directory ctsyncd searches when it runs from the build tree).
include_guard(GLOBAL)
include(GNUInstallDirs)

function(ctsync_add_plugin id)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "NO_INSTALL" "OUTPUT_DIRECTORY" "SOURCES;LIBRARIES")
  if(NOT id MATCHES "^(source|proto|filter|transport|ha)-[a-z0-9][a-z0-9-]*$")
    message(FATAL_ERROR "ctsync_add_plugin: '${id}' is not <category>-<name> "
                        "(category: source, proto, filter, transport, ha; name: [a-z0-9-])")
  endif()
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "ctsync_add_plugin(${id}): SOURCES is required")
  endif()
  set(target "ctsync-plugin-${id}")
  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE ctsync::sdk ${ARG_LIBRARIES})
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    OUTPUT_NAME "ctsync-${id}"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}")
  endif()
  # Unresolved symbols must fail at link time, not when ctsyncd loads the plugin. Not in a sanitizer build
  # (CTSYNC_SANITIZE, scripts/sanitize.sh): clang links the sanitizer runtimes into the executable only, so a
  # sanitized shared object leaves their symbols to it.
  if(NOT CTSYNC_SANITIZE)
    target_link_options(${target} PRIVATE "LINKER:--no-undefined")
  endif()
  if(NOT ARG_NO_INSTALL)
    # One component per plugin: a distribution ships each as its own package, ctsync-plugin-<id>.
    install(TARGETS ${target} LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}/ctsync/plugins"
            COMPONENT "ctsync-plugin-${id}")
  endif()
endfunction()
