# test_pipeline_store.cmake - fails when the job pipeline speaks Redis
# itself. Run as: cmake -DSOURCE_DIR=<repo> -P test_pipeline_store.cmake
#
# The store layer alone knows keys, RESP, Lua and the retry policy
# (store.c, store_cmd.c, store_job.c, daemon/lua): the pipeline (queue*.c)
# calls store_job's typed calls and gets typed results. Flagged in it:
# hiredis and its replies, key builders and key text, raw commands through
# the connection or the command layer, script bodies.
if(NOT SOURCE_DIR)
  get_filename_component(SOURCE_DIR "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
endif()
file(GLOB pipeline RELATIVE "${SOURCE_DIR}" "${SOURCE_DIR}/daemon/queue*.c" "${SOURCE_DIR}/daemon/queue*.h")
set(patterns
  "redisReply" "REDIS_REPLY_" "#include <hiredis" "store_key_[a-z_]+\\(" "\"herald:" "rconn_command"
  "store_cmds_send" "STORE_SEND" "store_lua_" "EVALSHA" "store_args_")
set(violations "")
foreach(f ${pipeline})
  file(STRINGS "${SOURCE_DIR}/${f}" lines)
  set(n 0)
  foreach(line IN LISTS lines)
    math(EXPR n "${n} + 1")
    foreach(p ${patterns})
      if(line MATCHES "${p}")
        string(APPEND violations "  ${f}:${n}: ${line}\n")
        break()
      endif()
    endforeach()
  endforeach()
endforeach()
if(violations)
  message(FATAL_ERROR "the job pipeline speaks Redis itself (use store_job.h):\n${violations}")
endif()
message(STATUS "test_pipeline_store: ${pipeline} go through store_job only")
