#!/usr/bin/env bash
# Fails when a process started by this `make test` run outlived it. Every child the tests start
# inherits EVNODE_TEST_RUN=<id> from `make test`; whatever still carries it once `swift test` has
# ended is an orphan (a local DA, etcd, a node, a Python peer): it is listed, killed, and fails
# the run, because the next test or the operator's machine would pay for it.
set -euo pipefail
id="${1:?usage: leftover-processes.sh RUN-ID}"
left=()
for environ in /proc/[0-9]*/environ; do
    pid="${environ#/proc/}"; pid="${pid%/environ}"
    [ "$pid" = "$$" ] && continue
    if { tr "\0" "\n" < "$environ"; } 2>/dev/null | grep -qx "EVNODE_TEST_RUN=$id"; then left+=("$pid"); fi
done
[ ${#left[@]} -eq 0 ] && exit 0
echo "processes started by the tests are still running after them:" >&2
for pid in "${left[@]}"; do
    echo "  $pid $(tr '\0' ' ' < /proc/$pid/cmdline 2>/dev/null | cut -c1-200)" >&2
done
kill -9 "${left[@]}" 2>/dev/null || true
exit 1
