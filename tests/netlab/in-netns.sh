#!/usr/bin/env bash
# Runs `confab ARGS` inside network namespace $NETLAB_EXEC_NS: peers.mjs points
# NativePeer (tests/browser/lib.mjs), which spawns "$CONFAB_BIN" ARGS, at this script.
# `ip netns exec` execs, and so does this, so the pid NativePeer holds is confab's own.
# NativePeer always passes `--udp ADDR`; netlab gives `--udp 0.0.0.0`, dropped here, so
# the peer runs in its default all-interfaces mode.
set -euo pipefail
: "${NETLAB_EXEC_NS:?}" "${NETLAB_EXEC_BIN:?}"
args=()
while [ $# -gt 0 ]; do
    if [ "$1" = --udp ] && [ "${2:-}" = 0.0.0.0 ]; then
        shift 2
        continue
    fi
    args+=("$1")
    shift
done
exec ip netns exec "$NETLAB_EXEC_NS" "$NETLAB_EXEC_BIN" "${args[@]}"
