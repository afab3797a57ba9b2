# The test tiers, as ctest labels:
#   unit         no server; any -j
#   conformance  real servers: the single layout of scripts/servers.sh (and auth/tls for the
#                credentials suite); tests use their own key prefixes, but test_session
#                pauses the servers, so it runs alone
#   cluster      the 3-member clusters (and the single layout) with faults injected: one test at
#                a time, alone
# Servers are started by ctest fixtures: `servers.sh up LAYOUTS` as the setup test and
# `servers.sh down LAYOUTS` as the cleanup, so `ctest -L conformance` works from a build dir with
# nothing started by hand. When the environment already names the servers (COORD_TEST_*, as in
# `servers.sh run both -- ctest`), `up` starts nothing and `down` stops nothing. Ports, pointer
# file and the rest come from the environment as for servers.sh (see its --help).
# A server test runs through `servers.sh exec`, which adds the running layouts' environment.

set(COORD_SERVERS_SH ${PROJECT_SOURCE_DIR}/scripts/servers.sh)

# Fixtures: coord_servers_single, coord_servers_cluster, coord_servers_auth (auth and tls).
foreach(fixture single cluster auth)
  set(layouts ${fixture})
  set(label conformance)
  if(fixture STREQUAL "auth")
    set(layouts auth,tls)
  elseif(fixture STREQUAL "cluster")
    set(label cluster)
  endif()
  add_test(NAME servers_up_${fixture} COMMAND bash ${COORD_SERVERS_SH} up ${layouts})
  add_test(NAME servers_down_${fixture} COMMAND bash ${COORD_SERVERS_SH} down ${layouts})
  set_tests_properties(servers_up_${fixture} PROPERTIES FIXTURES_SETUP coord_servers_${fixture}
                                                        LABELS ${label} TIMEOUT 180)
  set_tests_properties(servers_down_${fixture} PROPERTIES FIXTURES_CLEANUP coord_servers_${fixture}
                                                          LABELS ${label} TIMEOUT 120)
endforeach()

# coord_add_test(NAME LABEL COMMAND cmd... [FIXTURES fixture...]): a test of a tier. Server
# tiers get their fixtures (conformance: single; cluster: single and cluster) plus the extra
# ones named, and run through `servers.sh exec`.
function(coord_add_test name label)
  cmake_parse_arguments(T "" "" "COMMAND;FIXTURES" ${ARGN})
  set(fixtures ${T_FIXTURES})
  if(label STREQUAL "conformance")
    list(APPEND fixtures single)
  elseif(label STREQUAL "cluster")
    list(APPEND fixtures single cluster)
  endif()
  set(cmd ${T_COMMAND})
  if(fixtures)
    set(cmd bash ${COORD_SERVERS_SH} exec -- ${T_COMMAND})
  endif()
  add_test(NAME ${name} COMMAND ${cmd})
  set_tests_properties(${name} PROPERTIES LABELS ${label} TIMEOUT 300)
  if(fixtures)
    list(REMOVE_DUPLICATES fixtures)
    list(TRANSFORM fixtures PREPEND coord_servers_)
    set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED "${fixtures}")
  endif()
  if(label STREQUAL "cluster")
    set_tests_properties(${name} PROPERTIES RUN_SERIAL TRUE RESOURCE_LOCK coord_cluster)
  endif()
endfunction()
