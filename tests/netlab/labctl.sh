#!/usr/bin/env bash
# labctl.sh ID COMMAND ARGS...: one lab.sh knob on the running lab netlab-ID (the tests
# call it between cases). COMMAND: nat ROUTER eim|fully-random, loss NS PERMILLE,
# block_udp ROUTER, drop_udp_between_routers, flush_conntrack ROUTER, reset.
set -euo pipefail
LAB_ID="${1:?usage: labctl.sh ID COMMAND ARGS...}"
command="${2:?usage: labctl.sh ID COMMAND ARGS...}"
shift 2
# shellcheck source=lab.sh
. "$(dirname "$0")/lab.sh"
case "$command" in
    nat | loss | block_udp | drop_udp_between_routers | flush_conntrack | reset) "lab_$command" "$@" ;;
    *) lab_die "labctl: unknown command $command" ;;
esac
