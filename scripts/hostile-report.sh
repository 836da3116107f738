#!/usr/bin/env bash
# Figures for README's "Under attack" table, outside the test suite: in a temp directory, a local
# DA, an aggregator making 100 ms blocks and a full node following it (each lists the other in
# --p2p.peers), then every attack of Tests/IntegrationTests/py/hostile_peer.py against the
# aggregator, one after another. Prints one JSON line per attack: the aggregator's RSS and
# blocks/s before / during / after, the full node's RSS, lag and peers, and what the attacker
# saw. For the idle sockets: how long the restarted full node took to be connected again.
#
#   usage: scripts/hostile-report.sh [EVNODE_BINARY]    (default: .build/release/evnode)
#   GUARD_MIB (default 1024): an attack stops once a node's RSS is this far over what it held
#   when the attack began.
#
# Needs the py-libp2p virtualenv (`make deps`). Every process is stopped by PID at the end.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
evnode="${1:-$root/.build/release/evnode}"
py="$root/.build/venv-libp2p/bin/python"
attacker="$root/Tests/IntegrationTests/py/hostile_peer.py"
guard_mib="${GUARD_MIB:-1024}"
chain="hostile-report"
[ -x "$evnode" ] || { echo "error: no evnode binary at $evnode (swift build -c release)" >&2; exit 2; }
[ -x "$py" ] || { echo "error: no $py: run make deps" >&2; exit 2; }

dir="$(mktemp -d /tmp/evnode-hostile-XXXXXX)"
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap 'stop_all; echo "logs kept in $dir" >&2' EXIT

# Five free loopback ports below the ephemeral range.
read -r da_port agg_rpc_port agg_p2p_port full_rpc_port full_p2p_port < <("$py" - <<'EOF'
import random, socket
ports = set()
while len(ports) < 5:
    p = random.randrange(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); ports.add(p)
    except OSError:
        pass
    finally:
        s.close()
print(*ports)
EOF
)

peer_id() { "$evnode" init "$@" | sed -n 's/^ *peer id: *//p'; }
agg_id="$(peer_id --home "$dir/aggregator" --chain-id "$chain" --aggregator)"
full_id="$(peer_id --home "$dir/full" --chain-id "$chain")"
cp "$dir/aggregator/config/genesis.json" "$dir/full/config/genesis.json"
agg_addr="/ip4/127.0.0.1/tcp/$agg_p2p_port/p2p/$agg_id"
full_addr="/ip4/127.0.0.1/tcp/$full_p2p_port/p2p/$full_id"
agg_rpc="http://127.0.0.1:$agg_rpc_port"
full_rpc="http://127.0.0.1:$full_rpc_port"

"$evnode" local-da --home "$dir/da" --listen "127.0.0.1:$da_port" --block-time 300ms >"$dir/local-da.log" 2>&1 &
pids+=($!)
da="--da.address http://127.0.0.1:$da_port --da.block-time 300ms"
# shellcheck disable=SC2086
"$evnode" start --home "$dir/aggregator" --aggregator --block-time 100ms $da --rpc.address "127.0.0.1:$agg_rpc_port" \
  --p2p.listen "127.0.0.1:$agg_p2p_port" --p2p.peers "$full_addr" >"$dir/aggregator.log" 2>&1 &
agg_pid=$!
pids=("$agg_pid" "${pids[@]}")
start_full() {
  # shellcheck disable=SC2086
  "$evnode" start --home "$dir/full" $da --rpc.address "127.0.0.1:$full_rpc_port" \
    --p2p.listen "127.0.0.1:$full_p2p_port" --p2p.peers "$agg_addr" >>"$dir/full.log" 2>&1 &
  full_pid=$!
  pids=("$full_pid" "${pids[@]}")
}
start_full

status() { curl -sf --max-time 5 "$1/status"; }
field() { "$py" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
wait_for() {   # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what="$2"; shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { echo "error: timed out waiting for $what" >&2; exit 1; }
    sleep 0.2
  done
}
following() { [ "$(status "$full_rpc" | field 'd["peers"]')" -ge 1 ] \
  && [ $(( $(status "$agg_rpc" | field 'd["heights"]["store"]') - $(status "$full_rpc" | field 'd["heights"]["store"]') )) -le 5 ]; }

wait_for 60 "both nodes' RPC" status "$full_rpc"
wait_for 60 "the aggregator's RPC" status "$agg_rpc"
# Four blocks of ~900 KiB: 64-block data answers that do not fit a stream's 256 KiB window.
origin=$(( $(status "$agg_rpc" | field 'd["heights"]["store"]') + 1 ))
big="$(head -c $((900 * 1024)) /dev/zero | tr '\0' x)"
for i in 0 1 2 3; do
  printf 'big%s=%s' "$i" "$big" | curl -sf -o /dev/null -X POST --data-binary @- "$agg_rpc/tx" &
done
wait_for 30 "the big blocks" bash -c "for i in 0 1 2 3; do curl -sf -o /dev/null '$agg_rpc/kv?key=big'\$i || exit 1; done"
wait_for 60 "the full node following over P2P" following
sleep 3

report() {   # report ATTACKS [ARGS...]
  local attacks="$1"; shift
  "$py" "$attacker" report --target "$agg_addr" --chain-id "$chain" --pid "$agg_pid" --rpc "$agg_rpc" \
    --follower-pid "$full_pid" --follower-rpc "$full_rpc" --attacks "$attacks" --guard-over "$guard_mib" "$@"
}

report oversized-frame,header-ex-no-window,data-far-future,replay --origin "$origin" --duration 20

# The idle sockets hold every slot; the full node restarts and must get connected again.
"$py" "$attacker" idle-connections --target "$agg_addr" --chain-id "$chain" --duration 90 \
  --sources "127.0.0.1*16,127.0.9.1-127.0.9.56" --connections 128 >"$dir/idle.json" 2>"$dir/idle.err" &
flood=$!
pids=("$flood" "${pids[@]}")
wait_for 30 "the idle sockets" grep -q '"flooding"' "$dir/idle.json"
kill -TERM "$full_pid"; wait "$full_pid" || true
start_full
wait_for 60 "the restarted full node's RPC" status "$full_rpc"
restarted=$SECONDS
reconnect="null"
while [ $((SECONDS - restarted)) -lt 60 ]; do
  if [ "$(status "$full_rpc" | field 'd["peers"]' 2>/dev/null || echo 0)" -ge 1 ]; then reconnect=$((SECONDS - restarted)); break; fi
  sleep 0.2
done
kill -TERM "$flood"; wait "$flood" || true
echo "{\"event\": \"report\", \"attack\": \"idle-connections\", \"follower_reconnect_seconds\": $reconnect, \"result\": $(tail -n 1 "$dir/idle.json")}"
wait_for 60 "the full node following over P2P again" following

report data-near-future --duration 10
bans="$(grep -c "banning peer.*$agg_id" "$dir/full.log" || true)"
echo "{\"event\": \"report\", \"attack\": \"data-near-future\", \"follower_bans_of_the_aggregator\": $bans}"
