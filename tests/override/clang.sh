#!/bin/sh
# clang++ -O2 -c of sizeable C++ translation units (Catch2, the strata API).
# Arguments: the source root, then source files relative to it.  Prints the
# md5 of each object file and of its symbol table: clang is deterministic,
# so the objects must be identical whichever allocator it ran on.  Runs in
# the current directory.
set -eu
root=$1; shift
n=0
for f in "$@"; do
  n=$((n + 1))
  clang++ -std=c++20 -O2 -I"$root/mm/include" -I"$root/tests/support" -c "$root/$f" -o "obj$n.o"
  echo "$f: object $(md5sum < "obj$n.o" | cut -d' ' -f1)," \
       "symbols $(nm -C "obj$n.o" | md5sum | cut -d' ' -f1) ($(nm --defined-only "obj$n.o" | wc -l) defined)"
done
