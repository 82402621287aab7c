# share_api_list: every STRATA_API function of the public headers is either
# routed to a shared manager (a row of share/api.def) or named in api.def's
# comment as not routed; a function added to a header without a decision fails.
file(READ ${ROOT}/share/api.def def)
set(missing "")
foreach(header mm/include/strata/strata.h mm/include/strata/state.h leakreg/include/strata/leaks.h
        share/include/strata/share.h)
  file(READ ${ROOT}/${header} text)
  string(REGEX MATCHALL "STRATA_API[^;(]*[ *](strata_[a-z_]+)\\(" decls "${text}")
  foreach(d IN LISTS decls)
    string(REGEX REPLACE ".*[ *](strata_[a-z_]+)\\($" "\\1" fn "${d}")
    if(header MATCHES "share.h$")
      continue()  # the share calls act on the module itself
    endif()
    string(FIND "${def}" "STRATA_SHARE_FN(${fn}," row)
    string(FIND "${def}" "${fn} " named)
    string(FIND "${def}" "${fn}\n" named_eol)
    string(FIND "${def}" "${fn})" named_paren)
    if(row EQUAL -1 AND named EQUAL -1 AND named_eol EQUAL -1 AND named_paren EQUAL -1)
      string(APPEND missing " ${fn}")
    endif()
  endforeach()
endforeach()
if(missing)
  message(FATAL_ERROR "not in share/api.def (neither routed nor said not to be):${missing}")
endif()
message(STATUS "every STRATA_API function is in share/api.def")
