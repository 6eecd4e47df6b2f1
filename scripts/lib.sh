# Sourced by the scripts: where Python 3.14 comes from, and how to run the project's venv.
#
# Home Assistant 2026.3 and later need Python >= 3.14.2. A `python3.14` on PATH that is new
# enough is used as it is. Otherwise (Debian bookworm, Ubuntu 24.04 ...) the scripts build
# a minimal Debian sid root with Debian's python3.14 once, cached in
# ${XDG_CACHE_HOME:-~/.cache}/shackleton/py314-root, and run the venv's tools inside it:
# each run gets its own mount namespace (unshare), so nothing stays mounted afterwards and
# only this checkout is visible inside, at the same path. Building the root needs root
# (debootstrap, chroot); so does running in it.

SHACKLETON_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/shackleton"
# The Home Assistant lane: `newest` (the default, HA 2026.11.0) or `minimum` (HA 2026.10.4,
# the oldest release supported). Each has its own venv, and its own test set and
# overrides: requirements/{test,override}.txt, or requirements/minimum/.
SHACKLETON_LANE="${SHACKLETON_LANE:-newest}"
case "$SHACKLETON_LANE" in
  newest) VENV=.venv LANE_REQUIREMENTS=requirements ;;
  minimum) VENV=.venv-minimum LANE_REQUIREMENTS=requirements/minimum ;;
  *) echo "SHACKLETON_LANE is newest or minimum, not $SHACKLETON_LANE" >&2; exit 2 ;;
esac
PY_ROOT="$SHACKLETON_CACHE/py314-root"
# Debian packages of the root: Python, headers and a compiler for the few HA requirements
# without cp314 wheels, espeak-ng and sox for test speech, libgomp for the speech models'
# runtimes, and what a Home Assistant install has beside Python: ffmpeg (its tts and
# ffmpeg integrations) and libturbojpeg (its camera integration).
PY_ROOT_PACKAGES="python3.14,python3.14-venv,python3.14-dev,build-essential,ca-certificates,espeak-ng,sox,libgomp1,ffmpeg,libturbojpeg0"
PY_ROOT_MIRROR="${SHACKLETON_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

# The python3.14 on PATH if it is >= 3.14.2, else nothing.
native_python() {
  local py
  py="$(command -v python3.14 2>/dev/null)" || return 0
  "$py" -c 'import sys; assert sys.version_info >= (3, 14, 2)' 2>/dev/null && echo "$py"
  return 0
}

# "native" or "root": how this machine runs Python 3.14.
python_mode() {
  if [ -n "${SHACKLETON_PYTHON_MODE:-}" ]; then echo "$SHACKLETON_PYTHON_MODE"; return; fi
  if [ -n "$(native_python)" ]; then echo native; else echo root; fi
}

# Build (or check) the sid root. Idempotent: a stamp of its package list.
ensure_py_root() {
  local stamp="$PY_ROOT/.shackleton-root"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$PY_ROOT_PACKAGES" ]; then return; fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "Python >= 3.14.2 was not found on PATH. Install python3.14 (3.14.2 or newer)," \
      "or run as root so the scripts can build a Debian root with it." >&2
    exit 1
  fi
  command -v debootstrap >/dev/null 2>&1 || {
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
  }
  echo "scripts: building a Debian sid root with Python 3.14 in $PY_ROOT (about a minute)" >&2
  local tmp="$PY_ROOT.tmp"
  mkdir -p "$SHACKLETON_CACHE"
  # A half-built root holds no mounts (debootstrap's own are gone when it exits).
  rm -rf --one-file-system "$tmp"
  debootstrap --variant=minbase --include="$PY_ROOT_PACKAGES" sid "$tmp" "$PY_ROOT_MIRROR" \
    >"$SHACKLETON_CACHE/py314-root.log" 2>&1 || {
    tail -20 "$SHACKLETON_CACHE/py314-root.log" >&2
    echo "scripts: debootstrap failed (log: $SHACKLETON_CACHE/py314-root.log)" >&2
    exit 1
  }
  rm -rf --one-file-system "$PY_ROOT"
  mv "$tmp" "$PY_ROOT"
  echo "$PY_ROOT_PACKAGES" >"$stamp"
}

# Run a command inside the root, in this checkout (bound at its own path), with the host's
# network, /dev (shared memory for LiveKit's process pool) and a fresh /proc.
in_root() {
  local cwd="$PWD" repo
  repo="$(git -C "$cwd" rev-parse --show-toplevel 2>/dev/null || echo "$cwd")"
  # The host's name servers and CA bundle (a proxy's CA included) reach the registries.
  cp -L /etc/resolv.conf "$PY_ROOT/etc/resolv.conf"
  local bundle=/etc/ssl/certs/ca-certificates.crt
  if [ -f "$bundle" ] && ! cmp -s "$bundle" "$PY_ROOT$bundle"; then
    cp -L "$bundle" "$PY_ROOT$bundle"
  fi
  unshare --mount --propagation private -- /bin/bash -c '
    set -e
    root=$1 repo=$2 cwd=$3 livekit=$4; shift 4
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount --rbind /sys "$root/sys"
    mkdir -p "$root$repo"
    mount --bind "$repo" "$root$repo"
    # The LiveKit server scripts/livekit built, at the same path as on this machine.
    if [ -d "$livekit" ]; then
      mkdir -p "$root$livekit"
      mount --bind -o ro "$livekit" "$root$livekit"
    fi
    exec chroot "$root" /usr/bin/env -C "$cwd" \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"
  ' in_root "$PY_ROOT" "$repo" "$cwd" "$SHACKLETON_CACHE/livekit" "$@"
}

# Run a command (e.g. .venv/bin/python ...) where the project's venv lives.
venv_run() {
  if [ "$(python_mode)" = root ]; then
    in_root "$@"
  else
    "$@"
  fi
}

# Install Debian packages where the venv runs (the root, or this machine).
system_install() {
  if [ "$(python_mode)" = root ]; then
    ensure_py_root
    in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null \
      || { in_root apt-get update -q >/dev/null \
        && in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
  else
    local sudo_=""
    [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" \
      || { $sudo_ apt-get update -q && $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"; }
  fi
}
