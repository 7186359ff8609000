# install.cmake - where `cmake --install` puts herald, and the .deb CPack
# builds from the same rules (scripts/package.sh).
#
#   <sbindir>/herald             the daemon (a system service: sbin, as sshd, nginx)
#   <bindir>/heraldctl           the operator's command
#   <libdir>/herald/channels/    the channel plugins: the daemon's default plugin_dir
#   <datadir>/herald/locales/    the pages' catalogues (config/locales/*.po): the default locales_dir
#   /etc/herald/herald.conf.example   the annotated example, with installed paths
#                                (under <prefix>/etc for a prefix other than /usr)
#   <prefix>/lib/systemd/system/herald.service, <prefix>/lib/sysusers.d/herald.conf
#   <docdir>/                    README, docs/*.md, monitoring/ (Grafana, Prometheus)
#
# Nothing is written outside these. The paths baked into the binary (the
# default plugin_dir) and into the unit come from the same GNUInstallDirs
# values, so a package configured with CMAKE_INSTALL_PREFIX=/usr is whole.

# /etc for the /usr prefix (GNUInstallDirs' FULL_SYSCONFDIR), else <prefix>/etc.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(HERALD_CONF_INSTALL_DIR "${CMAKE_INSTALL_FULL_SYSCONFDIR}/herald")
else()
  set(HERALD_CONF_INSTALL_DIR "${CMAKE_INSTALL_SYSCONFDIR}/herald")
endif()
set(HERALD_UNIT_INSTALL_DIR lib/systemd/system)
set(HERALD_SYSUSERS_INSTALL_DIR lib/sysusers.d)

# Paths as the installed system sees them (for the unit and the example).
set(HERALD_SBIN "${CMAKE_INSTALL_FULL_SBINDIR}")
set(HERALD_CONF "${CMAKE_INSTALL_FULL_SYSCONFDIR}/herald/herald.conf")
set(HERALD_DOCDIR "${CMAKE_INSTALL_FULL_DOCDIR}")
set(HERALD_SYSUSERS "${CMAKE_INSTALL_PREFIX}/${HERALD_SYSUSERS_INSTALL_DIR}")
configure_file(${PROJECT_SOURCE_DIR}/packaging/herald.service.in ${PROJECT_BINARY_DIR}/packaging/herald.service @ONLY)

# The installed example is config/herald.example.conf with the build tree's
# paths replaced: plugins from the default plugin_dir, the outbox under the
# unit's StateDirectory. A line that is not there any more fails the configure,
# so the two cannot drift apart silently.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/config/herald.example.conf)
file(READ ${PROJECT_SOURCE_DIR}/config/herald.example.conf herald_example)
foreach(pair
    "plugin_dir = ../build/channels|# plugin_dir = ${CMAKE_INSTALL_FULL_LIBDIR}/herald/channels"
    "locales_dir = locales|# locales_dir = ${CMAKE_INSTALL_FULL_DATADIR}/herald/locales"
    "dir = ../var/outbox|dir = /var/lib/herald/outbox")
  string(REPLACE "|" ";" pair "${pair}")
  list(GET pair 0 from)
  list(GET pair 1 to)
  string(FIND "${herald_example}" "\n${from}\n" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "cmake/install.cmake: config/herald.example.conf has no line \"${from}\" to replace "
      "in the installed example; update the pair list")
  endif()
  string(REPLACE "\n${from}\n" "\n${to}\n" herald_example "${herald_example}")
endforeach()
file(WRITE ${PROJECT_BINARY_DIR}/packaging/herald.conf.example
  "# Installed by herald ${PROJECT_VERSION}: copy to herald.conf (owner root, group herald, mode 0640)\n"
  "# and replace the tokens and secrets before the first start.\n${herald_example}")

install(TARGETS herald RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS heraldctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS ${HERALD_PLUGINS} LIBRARY DESTINATION ${HERALD_PLUGIN_INSTALL_DIR})
# The catalogues are data, not configuration: a package upgrade replaces
# them; an operator's own language goes in a locales_dir of their own.
install(DIRECTORY config/locales/ DESTINATION ${HERALD_LOCALE_INSTALL_DIR} FILES_MATCHING PATTERN "*.po")
install(FILES ${PROJECT_BINARY_DIR}/packaging/herald.conf.example DESTINATION ${HERALD_CONF_INSTALL_DIR}
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
install(FILES ${PROJECT_BINARY_DIR}/packaging/herald.service DESTINATION ${HERALD_UNIT_INSTALL_DIR})
install(FILES ${PROJECT_SOURCE_DIR}/packaging/herald.sysusers DESTINATION ${HERALD_SYSUSERS_INSTALL_DIR}
  RENAME herald.conf)
install(FILES README.md docs/api.md docs/architecture.md docs/config.md docs/localisation.md docs/operations.md docs/plugin-abi.md
  DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY docs/monitoring/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/monitoring
  FILES_MATCHING PATTERN "*.json" PATTERN "*.yml" PATTERN "*.md")

# ---- .deb (scripts/package.sh) ----------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME herald)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "herald")
set(CPACK_PACKAGE_CONTACT "herald maintainers <herald@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "consent-respecting campaign delivery daemon")
set(CPACK_PACKAGE_DESCRIPTION
  "herald reads marketing campaign jobs from a Redis stream, checks every recipient against their\n"
  "consent, opt-outs, suppression list, caps and quiet hours, and hands what passes to an email or SMS\n"
  "provider plugin, with an audit record and a reason for every decision.")
string(REPLACE ";" "" CPACK_PACKAGE_DESCRIPTION "${CPACK_PACKAGE_DESCRIPTION}")
# The binary's default plugin_dir was fixed at configure time: the package
# must put the plugins exactly there.
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
# /etc is an absolute destination: install through DESTDIR into the package root.
set(CPACK_SET_DESTDIR ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_STRIP_FILES TRUE)
set(CPACK_DEBIAN_PACKAGE_SECTION mail)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Read at run time, not linked: the time zone database (quiet hours).
set(CPACK_DEBIAN_PACKAGE_DEPENDS "tzdata")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "redis-server")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${PROJECT_SOURCE_DIR}/packaging/postinst ${PROJECT_SOURCE_DIR}/packaging/prerm
  ${PROJECT_SOURCE_DIR}/packaging/postrm ${PROJECT_BINARY_DIR}/packaging/conffiles)
file(WRITE ${PROJECT_BINARY_DIR}/packaging/conffiles "${CMAKE_INSTALL_FULL_SYSCONFDIR}/herald/herald.conf.example\n")
include(CPack)
