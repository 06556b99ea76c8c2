#!/usr/bin/env bash
# Installs the Debian packages monet-cpp builds with, only those missing (fast when all are there).
#   scripts/deps.sh          what the build and the main job need (./setup.sh)
#   scripts/deps.sh --test   and what the tests need besides (./test.sh): a headless browser
# This list is the whole of it: CI runs ./test.sh in a bare Debian 12 (scripts/fresh_debian.sh),
# so a package missing here fails CI.
set -euo pipefail
# libdnnl-dev's CMake config needs OpenCL's headers and loader, which it only *recommends*
# (ocl-icd-opencl-dev); we install without recommends.
PKGS=(build-essential cmake pkg-config libopenblas-dev libopenblas-openmp-dev libfmt-dev libgtest-dev libgmock-dev
      libbenchmark-dev nlohmann-json3-dev libcli11-dev libdnnl-dev ocl-icd-opencl-dev
      libsentencepiece-dev sentencepiece python3 libopenmpi-dev openmpi-bin)
# The experts page (tests/test_experts_page*) is checked in headless Chromium.
TEST_PKGS=(chromium)
case "${1:-}" in
  --test) PKGS+=("${TEST_PKGS[@]}") ;;
  "") ;;
  *) echo "deps: unknown argument '$1' (use --test or nothing)" >&2; exit 2 ;;
esac
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
