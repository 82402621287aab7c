#!/usr/bin/env bash
# Installs the Debian packages strata's build, tests and benchmarks need,
# when any is missing.  Idempotent; needs root (or sudo) on Debian 12.
set -euo pipefail
PKGS=(build-essential cmake pkg-config python3 valgrind gnuplot-nox
      libtbb-dev libbenchmark-dev catch2
      libmimalloc-dev libjemalloc-dev libgoogle-perftools-dev sqlite3 git libpython3.11-testsuite
      redis-server redis-tools clang perl gawk jq ffmpeg python3-jsonschema
      nlohmann-json3-dev dpkg-dev libdw-dev libunwind8)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "strata: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
