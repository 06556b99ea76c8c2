#!/usr/bin/env bash
# Installs the Debian packages monet-cpp builds with, only those missing (fast when all are there).
set -euo pipefail
PKGS=(build-essential cmake pkg-config libopenblas-dev libopenblas-openmp-dev libfmt-dev libgtest-dev libgmock-dev
      libbenchmark-dev nlohmann-json3-dev libcli11-dev libdnnl-dev
      libsentencepiece-dev sentencepiece python3 libopenmpi-dev openmpi-bin)
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
