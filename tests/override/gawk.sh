#!/bin/sh
# gawk: generates a CSV input of N lines (ids, users, cities, amounts, tag
# lists, free text), then runs gawk_workload.awk over it (associative
# arrays, string building, split/gsub/sprintf, asort/asorti, deletion).
# Both steps run gawk.  Prints the workload's lines and the input's md5.
# Runs in the current directory.
set -eu
N=${STRATA_OVERRIDE_GAWK_LINES:-150000}
export LC_ALL=C
here=$(dirname "$0")
gawk -v N="$N" 'BEGIN {
  split("red green blue cyan magenta yellow black white orange purple", col, " ")
  for (i = 1; i <= N; i++) {
    x = (i * 2654435761) % 4294967296
    tags = col[1 + x % 10]
    for (j = 0; j < x % 5; j++) tags = tags ";" col[1 + int(x / 2^j) % 10] j
    txt = ""
    for (j = 0; j < 4 + x % 12; j++)
      txt = txt " word" (int(x / 2^j) % 3000) substr("lorem ipsum dolor sit amet consectetur", 1 + j * 3, 5 + j % 7)
    printf "%d,user%05d,city%03d,%d.%02d,%s,%s\n", i, x % 40000, x % 997, x % 10000, x % 100, tags, txt
  }
}' > input.csv
echo "input $(wc -l < input.csv) lines, $(md5sum < input.csv | cut -d' ' -f1)"
gawk -f "$here/gawk_workload.awk" input.csv
