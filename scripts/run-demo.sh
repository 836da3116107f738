#!/usr/bin/env bash
# `make run`: a demo aggregator in a git-ignored home. Grows with the node (local DA, full node).
set -euo pipefail
home="$1"
evnode="$2"
if [ ! -f "$home/config/genesis.json" ]; then
  "$evnode" init --home "$home" --chain-id evnode-demo --aggregator
fi
echo
echo "evnode demo home: $home"
echo "logs below; Ctrl-C stops the node."
echo
exec "$evnode" start --home "$home" --aggregator
