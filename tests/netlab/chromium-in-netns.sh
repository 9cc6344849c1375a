#!/usr/bin/env bash
# Runs Debian's chromium inside network namespace $NETLAB_EXEC_NS: the netlab's browser
# case hands this to playwright as the browser's executable. `ip netns exec` execs, and so
# does this, so playwright's pipe to the browser is the browser's own.
set -euo pipefail
: "${NETLAB_EXEC_NS:?}"
exec ip netns exec "$NETLAB_EXEC_NS" "${CHROMIUM:-/usr/bin/chromium}" "$@"
