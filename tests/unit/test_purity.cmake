# test_purity.cmake - fails when a pure module includes an I/O or logging
# header. Run as: cmake -DSOURCE_DIR=<repo> -P test_purity.cmake
#
# The pure modules are linked into herald_pure, the benchmark and the fuzz
# targets; an include of uv, hiredis, curl, llhttp or log.h there would pull
# I/O (or a clock, or logging of personal data) into code that must have none.
if(NOT SOURCE_DIR)
  get_filename_component(SOURCE_DIR "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
endif()

set(pure_modules util channel job template profile policy tz quiet pagerender progress precond mergepatch grant)
set(pure_files daemon/herald.h)
foreach(m ${pure_modules})
  list(APPEND pure_files daemon/${m}.c)
  if(EXISTS "${SOURCE_DIR}/daemon/${m}.h")
    list(APPEND pure_files daemon/${m}.h)
  endif()
endforeach()

# Header names as they appear inside #include <...> or "...".
set(banned_regex "(^|/)(uv\\.h|uv/[^>\"]*|hiredis[^>\"]*|adapters/[^>\"]*|curl/[^>\"]*|curl\\.h|llhttp\\.h|log\\.h)$")

set(violations "")
set(checked 0)
foreach(f ${pure_files})
  set(path "${SOURCE_DIR}/${f}")
  if(NOT EXISTS "${path}")
    message(FATAL_ERROR "test_purity: ${f} is missing (is SOURCE_DIR=${SOURCE_DIR} right?)")
  endif()
  # Split by hand: CMake lists break on ';' and group on '[' ']', both of
  # which C code is full of, and line numbers must stay right.
  file(READ "${path}" content)
  string(REPLACE ";" "<semicolon>" content "${content}")
  string(REPLACE "[" "<lbracket>" content "${content}")
  string(REPLACE "]" "<rbracket>" content "${content}")
  string(REPLACE "\n" ";" lines "${content}")
  set(lineno 0)
  foreach(line IN LISTS lines)
    math(EXPR lineno "${lineno} + 1")
    if(line MATCHES "^[ \t]*#[ \t]*include[ \t]*[<\"]([^>\"]+)[>\"]")
      set(header "${CMAKE_MATCH_1}")
      if(header MATCHES "${banned_regex}")
        string(APPEND violations "  ${f}:${lineno}: includes <${header}>\n")
      endif()
    endif()
  endforeach()
  math(EXPR checked "${checked} + 1")
endforeach()

if(violations)
  message(FATAL_ERROR "test_purity: pure modules must not include I/O or logging headers:\n${violations}")
endif()
message(STATUS "test_purity: ${checked} files checked, no I/O or logging includes")
