#!/usr/bin/env bash
# A bare Debian 12 with a fresh clone of this repository in it: the closest thing here to a new
# user's machine. CI runs the test command in it (.ci/run), so a package that scripts/deps.sh
# forgets fails CI even where the host has it.
#
#   scripts/fresh_debian.sh [-k] [COMMAND]
#     COMMAND  run in the clone (/repo) as root with bash -c (default: ./setup.sh && ./test.sh)
#     -k       keep the system afterwards (its path is printed)
#
# Needs root (chroot, mounts). The clone is of the committed HEAD: uncommitted changes are not in it.
# Three things are cached in $MONET_FRESH_CACHE (default /var/cache/monet-fresh-debian):
#   base/          `mmdebstrap --variant=minbase bookworm` with git and ccache, made once;
#   deps-<hash>/   base after `scripts/deps.sh --test`, keyed by the hash of scripts/deps.sh, so a
#                  change to the package list is installed from the bare base again (the newest
#                  two are kept);
#   ccache/        the compiler cache, bind-mounted into the system: rebuilds are fast, and a
#                  missing header still fails (ccache keys on the preprocessed source).
# Each run works on an overlay (or, where overlayfs is missing, a copy) of deps-<hash>, mounts
# /proc, /sys, /dev (with /dev/shm, which MPI needs) and /usr/local/cuda read-only when the host
# has it (the CUDA build keeps compiling), and passes CI=true, OPENBLAS_CORETYPE,
# OPENBLAS_L2_SIZE and MONET_FUZZ_SECONDS through. Exit status: the command's.
set -euo pipefail
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    -k) keep=1; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    --) shift; break ;;
    -*) echo "fresh_debian: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
cmd=${*:-./setup.sh && ./test.sh}
repo=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "fresh_debian: needs root (chroot, mounts)" >&2; exit 2; }
command -v mmdebstrap >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
cache=${MONET_FRESH_CACHE:-/var/cache/monet-fresh-debian}
mkdir -p "$cache/ccache"
log() { echo "fresh_debian: $*"; }

# Mounts and a command inside a system at $1; every mount is undone by unmount_all.
mounts=()
mount_system() {
  local r=$1
  mount -t proc proc "$r/proc"; mounts+=("$r/proc")
  mount --rbind /sys "$r/sys"; mount --make-rslave "$r/sys"; mounts+=("$r/sys")
  mount --rbind /dev "$r/dev"; mount --make-rslave "$r/dev"; mounts+=("$r/dev")
  cp /etc/resolv.conf "$r/etc/resolv.conf"
}
unmount_all() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -R -l "${mounts[i]}" 2>/dev/null || true; done
  mounts=()
}
in_system() {  # in_system ROOT COMMAND: bash -c COMMAND in ROOT with a clean environment
  local r=$1; shift
  chroot "$r" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb CI=true \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CCACHE_DIR=/var/cache/ccache CCACHE_MAXSIZE=5G \
    ${OPENBLAS_CORETYPE:+OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE} \
    ${OPENBLAS_L2_SIZE:+OPENBLAS_L2_SIZE=$OPENBLAS_L2_SIZE} \
    ${MONET_FUZZ_SECONDS:+MONET_FUZZ_SECONDS=$MONET_FUZZ_SECONDS} \
    /bin/bash -c "$*"
}

# 1. The bare system, once.
base="$cache/base"
if [ ! -x "$base/bin/bash" ]; then
  log "making the bare bookworm system once ($base)"
  rm -rf "$base.tmp"
  mmdebstrap --quiet --variant=minbase --include=ca-certificates,git,ccache bookworm "$base.tmp"
  mv "$base.tmp" "$base"
fi

# 2. The packages of scripts/deps.sh --test on it, once per version of that file.
hash=$(sha256sum "$repo/scripts/deps.sh" | cut -c1-16)
layer="$cache/deps-$hash"
if [ ! -x "$layer/bin/bash" ]; then
  log "installing scripts/deps.sh --test into a copy of the bare system ($layer)"
  rm -rf "$layer.tmp"
  cp -a "$base" "$layer.tmp"
  install -D -m 755 "$repo/scripts/deps.sh" "$layer.tmp/tmp/deps.sh"
  mount_system "$layer.tmp"
  trap unmount_all EXIT
  in_system "$layer.tmp" "/tmp/deps.sh --test && apt-get clean && rm -rf /var/lib/apt/lists/*"
  unmount_all
  rm -f "$layer.tmp/tmp/deps.sh" "$layer.tmp/etc/resolv.conf"
  mv "$layer.tmp" "$layer"
  # Keep the newest two layers.
  ls -1dt "$cache"/deps-* | grep -v '\.tmp$' | tail -n +3 | xargs -r rm -rf
fi

# 3. This run: an overlay on the layer, a fresh clone, the mounts, the command.
work=$(mktemp -d /var/tmp/fresh_debian.XXXXXX)
root="$work/root"
mkdir -p "$root"
cleanup() {
  unmount_all
  if [ "$keep" = 1 ]; then
    log "kept $root"
  else
    umount -l "$root" 2>/dev/null || true
    # Never delete through a mount that is still there (/dev, the host's ccache).
    if grep -q " $work/" /proc/mounts; then
      log "left $work: something is still mounted under it"
    else
      rm -rf "$work"
    fi
  fi
}
trap cleanup EXIT
mkdir -p "$work/upper" "$work/work"
if mount -t overlay overlay -o "lowerdir=$layer,upperdir=$work/upper,workdir=$work/work" "$root" \
  2>/dev/null; then
  [ "$keep" = 1 ] || mounts+=("$root")
else
  cp -a "$layer/." "$root/"
fi
git clone -q "$repo" "$root/repo"
log "clone of $(git -C "$root/repo" log -1 --format='%h %s')"
mount_system "$root"
mkdir -p "$root/var/cache/ccache"
mount --bind "$cache/ccache" "$root/var/cache/ccache"; mounts+=("$root/var/cache/ccache")
if [ -d /usr/local/cuda ]; then
  cuda=$(readlink -f /usr/local/cuda)
  mkdir -p "$root/usr/local/cuda"
  mount --bind "$cuda" "$root/usr/local/cuda"; mounts+=("$root/usr/local/cuda")
  mount -o remount,bind,ro "$root/usr/local/cuda"
fi
log "running in $root/repo: $cmd"
set +e
in_system "$root" "cd /repo && { $cmd; }"
rc=$?
set -e
log "exit $rc"
exit "$rc"
