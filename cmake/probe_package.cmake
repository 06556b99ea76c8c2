# monet_probe_package(<result-var> <find_package arguments...>)
#
# Runs `find_package(<arguments> REQUIRED)` in a throw-away CMake project, in a child process, and
# sets <result-var> to TRUE when it configures. An optional dependency's own config file can fail
# hard inside find_package — Debian's dnnl-config.cmake calls find_package(OpenCL REQUIRED), and
# OpenCL's headers are only *recommended* by libdnnl-dev — and no QUIET stops that error. Probed
# first, such a package is left out with one status line instead of stopping the configure step.
# Success is cached (the probe runs once); a failure is probed again at the next configure, so
# installing the missing package and re-running cmake picks the dependency up.
function(monet_probe_package result name)
  set(cache_var "MONET_PROBE_${name}")
  if(DEFINED ${cache_var})
    set(${result} ${${cache_var}} PARENT_SCOPE)
    return()
  endif()
  set(dir "${CMAKE_BINARY_DIR}/probe/${name}")
  file(REMOVE_RECURSE "${dir}")
  string(REPLACE ";" " " args "${name};${ARGN}")
  file(WRITE "${dir}/CMakeLists.txt"
       "cmake_minimum_required(VERSION 3.25)\nproject(probe LANGUAGES CXX)\n"
       "find_package(${args} REQUIRED)\n")
  execute_process(COMMAND "${CMAKE_COMMAND}" -S "${dir}" -B "${dir}/build"
                          "-DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0)
    set(ok TRUE)
  else()
    set(ok FALSE)
    # The first line of the package's own error says why (e.g. "Could NOT find OpenCL").
    string(REGEX MATCH "Could NOT find[^\n]*|Could not find[^\n]*" why "${err}")
    set(${result}_WHY "${why}" PARENT_SCOPE)
  endif()
  if(ok)
    set(${cache_var} TRUE CACHE INTERNAL "find_package(${name}) configures")
  endif()
  set(${result} ${ok} PARENT_SCOPE)
endfunction()
