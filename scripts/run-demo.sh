#!/usr/bin/env bash
# `make run`: a local DA and a demo aggregator in a git-ignored home, on the default config.
#   usage: run-demo.sh DEMO_HOME EVNODE_BINARY
# Ctrl-C (or SIGTERM) stops both by PID and waits for them to exit.
set -euo pipefail

home="$1"
evnode="$2"
chain_id="evnode-demo"
da_listen="127.0.0.1:7980"
rpc="127.0.0.1:7331"
p2p="127.0.0.1:7676"
da_dir="$home/da"
node_dir="$home/node"
logs="$home/logs"

# The passphrase that encrypts the aggregator's config/signer.json (made once, kept beside the homes).
passphrase_file="$home/signer-passphrase"

mkdir -p "$da_dir" "$logs"
if [ ! -f "$passphrase_file" ]; then
  (umask 077; head -c 24 /dev/urandom | base64 > "$passphrase_file")
fi
if [ ! -f "$node_dir/config/genesis.json" ]; then
  "$evnode" init --home "$node_dir" --chain-id "$chain_id" --aggregator \
    --evnode.signer.passphrase_file "$passphrase_file" >/dev/null
  echo "initialised the aggregator's home $node_dir (chain $chain_id)"
fi

da_pid=""
node_pid=""

# Stops whatever is running, SIGTERM first, and waits for it to exit.
stop_all() {
  for pid in $node_pid $da_pid; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $node_pid $da_pid; do
    wait "$pid" 2>/dev/null || true
  done
  node_pid=""
  da_pid=""
}

# Names the process that died and shows the end of its log.
died() {
  echo "error: $1 exited; the end of $2:" >&2
  tail -n 20 "$2" >&2 || true
  stop_all
  exit 1
}

trap 'echo; echo "stopping the aggregator and the local DA…"; stop_all; echo "stopped."; exit 0' INT TERM

"$evnode" local-da --home "$da_dir" --listen "$da_listen" --block-time 2s >"$logs/local-da.log" 2>&1 &
da_pid=$!
for _ in $(seq 1 300); do
  grep -q '^listening on ' "$logs/local-da.log" 2>/dev/null && break
  kill -0 "$da_pid" 2>/dev/null || died "the local DA" "$logs/local-da.log"
  sleep 0.1
done
grep -q '^listening on ' "$logs/local-da.log" || died "the local DA (no answer in 30 s)" "$logs/local-da.log"

"$evnode" start --home "$node_dir" --aggregator --block-time 1s \
  --evnode.signer.passphrase_file "$passphrase_file" \
  --da.address "http://$da_listen" --da.block-time 2s \
  --p2p.listen "$p2p" --rpc.address "$rpc" >"$logs/node.log" 2>&1 &
node_pid=$!
for _ in $(seq 1 300); do
  curl -sf "http://$rpc/health/live" >/dev/null 2>&1 && break
  kill -0 "$node_pid" 2>/dev/null || died "the aggregator" "$logs/node.log"
  sleep 0.1
done
curl -sf "http://$rpc/health/live" >/dev/null 2>&1 || died "the aggregator (no RPC answer in 30 s)" "$logs/node.log"

cat <<EOF

evnode demo is running (chain $chain_id, home $home)
  local DA     http://$da_listen          (pid $da_pid, log $logs/local-da.log)
  aggregator   RPC http://$rpc   P2P $p2p   (pid $node_pid, log $logs/node.log)
  signer       $node_dir/config/signer.json, unlocked by the passphrase in $passphrase_file

Send a transaction and read it back (a block comes every second):
  curl -X POST --data 'hello=world' http://$rpc/tx
  curl 'http://$rpc/kv?key=hello'

Look around:
  curl http://$rpc/status
  curl http://$rpc/blocks/1
  curl http://$rpc/metrics

Start a full node beside it (in another terminal):
  $evnode init --home $home/fullnode --chain-id $chain_id
  cp $node_dir/config/genesis.json $home/fullnode/config/genesis.json
  $evnode start --home $home/fullnode --da.address http://$da_listen --da.block-time 2s \\
      --p2p.listen 127.0.0.1:7677 --p2p.peers $p2p --rpc.address 127.0.0.1:7332
  curl 'http://127.0.0.1:7332/kv?key=hello'

Ctrl-C stops the aggregator and the local DA.
EOF

# Returns when either process exits (or a trapped signal arrives: the trap handles that).
set +e
wait -n -p ended "$da_pid" "$node_pid"
status=$?
set -e
if [ "${ended:-}" = "$da_pid" ]; then
  name="the local DA"; log="$logs/local-da.log"
else
  name="the aggregator"; log="$logs/node.log"
fi
if [ "$status" -eq 0 ]; then
  # A clean exit: the process was stopped by a signal sent to it directly (e.g. Ctrl-C reaching
  # the whole process group while this script ignores SIGINT). Stop the other one too.
  echo "$name stopped; stopping the rest…"
  stop_all
  echo "stopped."
  exit 0
fi
died "$name (exit status $status)" "$log"
