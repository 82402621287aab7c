#!/bin/sh
# g++ -O2 -c of sizeable C++ translation units (Catch2, oneTBB, the strata
# API).  Arguments: the source root, then source files relative to it.
# Prints the md5 of each object file and of its symbol table: g++ is
# deterministic for a fixed -frandom-seed, so the objects must be identical
# whichever allocator cc1plus ran on.  Runs in the current directory.
set -eu
root=$1; shift
n=0
for f in "$@"; do
  n=$((n + 1))
  g++ -std=c++20 -O2 -frandom-seed=strata -I"$root/mm/include" -I"$root/tests/support" \
      -c "$root/$f" -o "obj$n.o"
  echo "$f: object $(md5sum < "obj$n.o" | cut -d' ' -f1)," \
       "symbols $(nm -C "obj$n.o" | md5sum | cut -d' ' -f1) ($(nm --defined-only "obj$n.o" | wc -l) defined)"
done
