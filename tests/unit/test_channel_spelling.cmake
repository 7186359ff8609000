# test_channel_spelling.cmake - fails when a daemon source outside the
# channel descriptor spells what the descriptor owns. Run as:
#   cmake -DSOURCE_DIR=<repo> -P test_channel_spelling.cmake
#
# A channel is one line of HERALD_CHANNEL_MAP (daemon/herald.h) and its
# descriptor (daemon/channel.c); every other module asks channel_get().
# Flagged in daemon/*.c, daemon/*.h and daemon/lua/*.lua:
#   - a consent field spelled or built: consent:email, "consent:%s", 'consent:...'
#   - a channel or address-field name compared: strcmp(x, "email"), MATCH(.., "sms")
#   - a channel or address-field name used as a JSON key, argument or list
#     item: json_object_get(o, "phone"), parse(obj, "email", ...), {"email", "sms", ...}
#   - a switch on a channel constant: ch == HERALD_CH_EMAIL, HERALD_CH_SMS != ch
# Passing a channel constant as an argument is fine (the SendGrid webhook
# suppresses on the email channel: that provider is an email provider).
# Comment lines are skipped: documentation may show a JSON shape.
if(NOT SOURCE_DIR)
  get_filename_component(SOURCE_DIR "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
endif()

set(names "email|sms|phone")
set(patterns
  "consent:(${names}|%s)"
  "['\"]consent:[A-Za-z%]"
  "(strcmp|strncmp|strcasecmp|MATCH)[ \t]*\\([^)]*\"(${names})\""
  "(json_object_get|json_object_set_new|json_object_set|jstr)[ \t]*\\([^,]*,[ \t]*\"(${names})\""
  "[{,][ \t]*\"(${names})\"[ \t]*,[ \t]*\"(${names}|any)\""
  "[(,][ \t]*\"(${names})\"[ \t]*[,)]"
  "[!=]=[ \t]*HERALD_CH_[A-Z]+[^A-Z_]"
  "HERALD_CH_[A-Z]+[ \t]*[!=]="
  "\\?[^:]*HERALD_CH_(EMAIL|SMS)")

# The descriptor itself, and what is knowingly left (file, then a regex the
# line must match; each says why).
set(owners daemon/herald.h daemon/channel.h daemon/channel.c)
set(allowed
  # The config schema has one [quiet_hours] key per channel (it feeds the
  # docs and the example file): adding a channel adds its line there.
  "daemon/config.h|X\\(\"quiet_hours\", \"(email|sms)\", QUIET")

file(GLOB files RELATIVE "${SOURCE_DIR}" "${SOURCE_DIR}/daemon/*.c" "${SOURCE_DIR}/daemon/*.h"
     "${SOURCE_DIR}/daemon/lua/*.lua")
if(NOT files)
  message(FATAL_ERROR "test_channel_spelling: no sources under ${SOURCE_DIR}/daemon")
endif()
set(violations "")
set(checked 0)
foreach(f ${files})
  list(FIND owners "${f}" owner)
  if(NOT owner EQUAL -1)
    continue()
  endif()
  # Split by hand, as test_purity.cmake does: ';' and '[' ']' would break
  # lists, and a '\' before the ';' of a line end would join two lines.
  file(READ "${SOURCE_DIR}/${f}" content)
  string(REPLACE "\\" "<backslash>" content "${content}")
  string(REPLACE ";" "<semicolon>" content "${content}")
  string(REPLACE "[" "<lbracket>" content "${content}")
  string(REPLACE "]" "<rbracket>" content "${content}")
  string(REPLACE "\n" ";" lines "${content}")
  set(lineno 0)
  foreach(line IN LISTS lines)
    math(EXPR lineno "${lineno} + 1")
    if(line MATCHES "^[ \t]*(/?\\*|//|--)")
      continue() # a comment line: documentation may show the shapes
    endif()
    foreach(p ${patterns})
      if(line MATCHES "${p}")
        set(ok FALSE)
        foreach(a ${allowed})
          string(FIND "${a}" "|" bar)
          string(SUBSTRING "${a}" 0 ${bar} afile)
          math(EXPR bar "${bar} + 1")
          string(SUBSTRING "${a}" ${bar} -1 aregex)
          if(afile STREQUAL f AND line MATCHES "${aregex}")
            set(ok TRUE)
          endif()
        endforeach()
        if(NOT ok)
          string(STRIP "${line}" shown)
          string(APPEND violations "  ${f}:${lineno}: ${shown}\n")
        endif()
        break()
      endif()
    endforeach()
  endforeach()
  math(EXPR checked "${checked} + 1")
endforeach()

if(violations)
  message(FATAL_ERROR "test_channel_spelling: a channel is spelled outside its descriptor "
    "(daemon/herald.h HERALD_CHANNEL_MAP, daemon/channel.c); use channel_get():\n${violations}")
endif()
message(STATUS "test_channel_spelling: ${checked} files checked, channels spelled only in their descriptor")
