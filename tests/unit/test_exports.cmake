# What the built objects export (nm -D --defined-only):
# - each plugin: herald_channel_plugin and nothing else of its own (plugins
#   are built with -fvisibility=hidden; HERALD_EXPORT marks the one symbol);
# - herald: none of the functions or data of herald_pure / herald_io (the
#   daemon is not linked with ENABLE_EXPORTS: plugins reach it only through
#   struct herald_host).
# Symbols the toolchain itself may put in the dynamic table are allowed
# everywhere: _init _fini _edata _end __bss_start _IO_stdin_used, and the
# sanitizer runtimes' __asan_* __ubsan_* __lsan_* __sanitizer_* names.
#
# -DNM=<nm> -DHERALD=<herald> -DPLUGINS=<a.so|b.so|...> -DLIBS=<lib.a|...>
set(ALLOWED_RE "^(_init|_fini|_edata|_end|__bss_start|_IO_stdin_used|__(asan|ubsan|lsan|sanitizer)_.*)$")

function(dynamic_defined file out)
  execute_process(COMMAND ${NM} -D --defined-only ${file} OUTPUT_VARIABLE text RESULT_VARIABLE rc
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NM} -D ${file}: ${err}")
  endif()
  string(REGEX MATCHALL "[^\n]+" lines "${text}")
  set(names "")
  foreach(l ${lines})
    # "<address> <type> <name>[@version]"
    if(l MATCHES "^[0-9a-fA-F]+ +[A-Za-z] +([^@ ]+)")
      set(n ${CMAKE_MATCH_1})
      if(NOT n MATCHES "${ALLOWED_RE}")
        list(APPEND names ${n})
      endif()
    endif()
  endforeach()
  set(${out} ${names} PARENT_SCOPE)
endfunction()

set(failures "")
string(REPLACE "|" ";" PLUGINS "${PLUGINS}")
string(REPLACE "|" ";" LIBS "${LIBS}")

foreach(p ${PLUGINS})
  dynamic_defined(${p} names)
  if(NOT names STREQUAL "herald_channel_plugin")
    string(REPLACE ";" " " shown "${names}")
    list(APPEND failures "${p} exports [${shown}], expected only herald_channel_plugin")
  endif()
endforeach()

# herald's own global symbols, from its static libraries.
set(own "")
foreach(lib ${LIBS})
  execute_process(COMMAND ${NM} -g --defined-only ${lib} OUTPUT_VARIABLE text RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NM} ${lib} failed")
  endif()
  string(REGEX MATCHALL "[0-9a-fA-F]+ +[A-Za-z] +[^\n]+" lines "${text}")
  foreach(l ${lines})
    if(l MATCHES "^[0-9a-fA-F]+ +[A-Za-z] +(.+)$")
      list(APPEND own ${CMAKE_MATCH_1})
    endif()
  endforeach()
endforeach()
list(LENGTH own nown)
if(nown LESS 50)
  message(FATAL_ERROR "only ${nown} global symbols found in ${LIBS}: the check would prove nothing")
endif()
dynamic_defined(${HERALD} exported)
set(leaked "")
foreach(n ${exported})
  list(FIND own ${n} i)
  if(NOT i EQUAL -1)
    list(APPEND leaked ${n})
  endif()
endforeach()
if(leaked)
  list(LENGTH leaked nleaked)
  list(SUBLIST leaked 0 10 some)
  string(REPLACE ";" " " shown "${some}")
  list(APPEND failures "${HERALD} exports ${nleaked} of its own symbols, e.g. ${shown}")
endif()

if(failures)
  string(REPLACE ";" "\n  " text "${failures}")
  message(FATAL_ERROR "exported symbols:\n  ${text}")
endif()
list(LENGTH PLUGINS nplugins)
message(STATUS "${nplugins} plugins export only herald_channel_plugin; herald exports none of its ${nown} own symbols")
