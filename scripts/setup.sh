#!/usr/bin/env bash
# Installs what forkserver needs on a fresh Debian/Ubuntu machine: a C compiler
# (clang preferred) with its sanitizer runtimes, AFL++ and gnuplot (for the interop
# tests and benchmarks), and the Python package with its test extras. Safe to run
# again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v clang >/dev/null 2>&1 || missing+=(clang)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v afl-fuzz >/dev/null 2>&1 || missing+=(afl++)
command -v afl-showmap >/dev/null 2>&1 || missing+=(afl++)
command -v gnuplot >/dev/null 2>&1 || missing+=(gnuplot-nox)  # afl-plot draws with it
# clang's sanitizer runtimes (-fsanitize=address/undefined) ship apart from clang on Debian
if command -v clang >/dev/null 2>&1 && ! [ -e "$(clang -print-file-name=libclang_rt.asan-x86_64.a)" ]; then
  missing+=(libclang-rt-14-dev)
elif ! command -v clang >/dev/null 2>&1; then
  missing+=(libclang-rt-14-dev)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "installing system packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" libc6-dev
fi

PYTHON=${PYTHON:-python3}
"$PYTHON" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# the extras to install: test by default; the test command adds ray (the Ray campaign tests)
"$PYTHON" -m pip install -q -e ".[${FORKSERVER_EXTRAS:-test}]"
