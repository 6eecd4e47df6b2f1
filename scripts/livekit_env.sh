# Sourced by the scripts that run tests or benchmarks: build the real LiveKit server
# (scripts/livekit) and export its path, or the reason there is none. The tests marked
# `livekit` fail with that reason; they never skip.
if SHACKLETON_LIVEKIT_SERVER="$(bash scripts/livekit 2>"${TMPDIR:-/tmp}/shackleton-livekit.err")"; then
  export SHACKLETON_LIVEKIT_SERVER
  unset SHACKLETON_LIVEKIT_ERROR
else
  cat "${TMPDIR:-/tmp}/shackleton-livekit.err" >&2
  SHACKLETON_LIVEKIT_ERROR="$(tail -1 "${TMPDIR:-/tmp}/shackleton-livekit.err")"
  export SHACKLETON_LIVEKIT_ERROR
  unset SHACKLETON_LIVEKIT_SERVER
fi
