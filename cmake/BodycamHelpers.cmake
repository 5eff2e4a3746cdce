# Shared build rules: one INTERFACE target carries the warning and sanitizer
# flags, so every library, daemon, plugin and test is built the same way.

add_library(bc_build_flags INTERFACE)
target_compile_options(bc_build_flags INTERFACE
  -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes
  -Wno-unused-parameter -fno-common
  # snprintf into a bounded buffer is how we cut error text and log fields
  # on purpose; GCC flags every such call at -O2 only, so a Debug build and
  # a RelWithDebInfo build would disagree. Ids are validated, never cut.
  -Wno-format-truncation)
target_compile_definitions(bc_build_flags INTERFACE _POSIX_C_SOURCE=200809L _DEFAULT_SOURCE)
if(WITH_WERROR)
  target_compile_options(bc_build_flags INTERFACE -Werror)
endif()
if(WITH_SANITIZERS)
  target_compile_options(bc_build_flags INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_link_options(bc_build_flags INTERFACE -fsanitize=address,undefined)
endif()

# A daemon or command-line tool installed into bin/.
function(bc_add_daemon name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE bc_build_flags ${ARG_LIBS})
  install(TARGETS ${name} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endfunction()

# A Mosquitto plugin: a MODULE with no lib prefix, installed next to the broker's.
function(bc_add_plugin name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_library(${name} MODULE ${ARG_SOURCES})
  set_target_properties(${name} PROPERTIES PREFIX "" C_VISIBILITY_PRESET hidden)
  target_link_libraries(${name} PRIVATE bc_build_flags ${ARG_LIBS})
  install(TARGETS ${name} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/bodycam)
endfunction()

# A cmocka unit test, registered with ctest under the label "unit". Every
# test links bc_test_util (tests/unit/test_util.h: temp dirs, files, keys),
# a static library defined in tests/unit/CMakeLists.txt; a test that uses
# none of it pulls in nothing.
function(bc_add_unit_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE bc_build_flags bc_test_util PkgConfig::CMOCKA ${ARG_LIBS})
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 120)
endfunction()

# An integration test: a Python script (Debian's interpreter, which sees
# python3-paho-mqtt) driving real processes. It finds the build through
# BODYCAM_BUILD_DIR and the sources through BODYCAM_SOURCE_DIR.
function(bc_add_integration_test name script)
  add_test(NAME ${name}
    COMMAND /usr/bin/python3 ${script})
  set_tests_properties(${name} PROPERTIES LABELS integration TIMEOUT 600
    ENVIRONMENT "BODYCAM_BUILD_DIR=${CMAKE_BINARY_DIR};BODYCAM_SOURCE_DIR=${CMAKE_SOURCE_DIR};PYTHONDONTWRITEBYTECODE=1")
endfunction()
