#!/bin/sh
# perl: perl_workload.pl (hashes, string building, regexes, sorts, nested
# structures, pack/unpack), scaled by STRATA_OVERRIDE_PERL_SCALE.  Prints
# one checksum line per phase.  Runs in the current directory.
set -eu
export LC_ALL=C PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0
perl "$(dirname "$0")/perl_workload.pl" "${STRATA_OVERRIDE_PERL_SCALE:-1}"
