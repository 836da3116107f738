#!/usr/bin/env python3
"""An independent libp2p peer for the integration tests: py-libp2p 0.8.1 (Noise, yamux,
identify, ping, FloodSub) plus go-header's exchange and ev-node's P2P envelopes built with
Google's protobuf runtime (evnode_messages.py). Written from the libp2p specs, go-header and
ev-node's sources, not from the Swift node.

Every mode prints one JSON object per line on stdout: {"event": "ready", "addr": ...} once it
listens, {"event": "result", ...} with what it saw, {"event": "error", ...} on failure.

usage: libp2p_peer.py MODE --chain-id ID [--dial MULTIADDR] [--chain FILE] [...]
modes:
  handshake        dial (or wait for) the Swift node; identify, ping, idle, ping again
  gossip-recv      receive N blocks by gossip; check order, signatures and pairing
  gossip-send      publish a vector chain as P2PSignedHeader/P2PData, then bad ones
                   (--forge-last-data-hash: every data message's metadata.last_data_hash forged)
  exchange-client  head / range / over-limit / above-head / partial requests, raw responses
  exchange-server  serve a vector chain on header-ex for a Swift client
"""
import argparse, hashlib, json, sys, time

import multiaddr
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as x25519_key_pair
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.floodsub import FloodSub, PROTOCOL_ID as FLOODSUB
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE, Transport as Noise
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX, Yamux
from libp2p.tools.anyio_service import background_trio_service

import evnode_messages as ev


def out(**kw):
    print(json.dumps(kw), flush=True)


def topics(chain_id):
    return (f"/{chain_id}-headerSync/header-sub/v0.0.1", f"/{chain_id}-dataSync/header-sub/v0.0.1")


def exchange_ids(chain_id):
    return (f"/{chain_id}-headerSync/header-ex/v0.0.3", f"/{chain_id}-dataSync/header-ex/v0.0.3")


def make_host(default_security=False, seed=None):
    kp = create_new_key_pair(seed) if seed else create_new_key_pair()
    from libp2p.peer.id import ID
    _KEYS[ID.from_pubkey(kp.public_key)] = kp
    if default_security:
        # py-libp2p's own mix (Noise, TLS, secio, plaintext; yamux, mplex): the Swift node must
        # answer `na` to what it does not speak and settle on /noise and /yamux.
        return new_host(key_pair=kp), kp
    return new_host(key_pair=kp, sec_opt={NOISE: Noise(kp, noise_privkey=x25519_key_pair().private_key)},
                    muxer_opt={YAMUX: Yamux}), kp


async def read_exact_or_eof(stream):
    chunks = []
    while True:
        try:
            b = await stream.read(65536)
        except Exception:  # StreamEOF / reset
            break
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def parse_frames(buf):
    """Splits uvarint-length-prefixed messages."""
    msgs, i = [], 0
    while i < len(buf):
        n, shift = 0, 0
        while True:
            c = buf[i]; i += 1
            n |= (c & 0x7F) << shift; shift += 7
            if c < 0x80:
                break
        msgs.append(buf[i:i + n]); i += n
    return msgs


def verify_header(env_bytes, chain_id, proposer_pub=None):
    """Decodes a P2PSignedHeader and checks the proposer's signature over the slim Header."""
    m = ev.P2PSignedHeader()
    m.ParseFromString(env_bytes)
    pub = bytes(m.signer.pub_key)
    assert pub[:4] == b"\x08\x01\x12\x20", "signer.pub_key is not a libp2p Ed25519 PublicKey"
    raw = pub[4:]
    if proposer_pub is not None:
        assert raw == proposer_pub, "signed by someone other than the proposer"
    assert bytes(m.signer.address) == hashlib.sha256(raw).digest() == bytes(m.header.proposer_address)
    hdr = m.header.SerializeToString()
    Ed25519PublicKey.from_public_bytes(raw).verify(bytes(m.signature), hdr)
    assert m.header.chain_id == chain_id, f"chain id {m.header.chain_id}"
    assert m.HasField("da_height_hint"), "da_height_hint missing"
    return m, hashlib.sha256(hdr).hexdigest()


# MARK: modes

async def mode_handshake(a):
    host, kp = make_host(default_security=a.default_security)
    async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        out(event="ready", addr=str(host.get_addrs()[0]), peer_id=host.get_id().to_string())
        if a.dial:
            info = info_from_p2p_addr(multiaddr.Multiaddr(a.dial))
            await host.connect(info)
            remote = info.peer_id
        else:
            # Wait for the Swift node to dial us.
            with trio.fail_after(60):
                while not host.get_network().connections:
                    await trio.sleep(0.1)
            remote = list(host.get_network().connections.keys())[0]
        # identify runs on connect; wait for its protocols to land in the peerstore
        protocols = []
        with trio.move_on_after(15):
            while not protocols:
                try:
                    protocols = list(host.get_peerstore().get_protocols(remote))
                except Exception:
                    protocols = []
                if not protocols:
                    await trio.sleep(0.1)
        rtt1 = await ping(host, remote)
        await trio.sleep(a.idle)
        still = remote in host.get_network().connections
        rtt2 = await ping(host, remote) if still else None
        out(event="result", remote=remote.to_string(), protocols=sorted(protocols), ping_ms=rtt1,
            connected_after_idle=still, ping_after_idle_ms=rtt2,
            security=a.default_security)
        if a.linger:
            await trio.sleep(a.linger)


async def ping(host, remote):
    s = await host.new_stream(remote, ["/ipfs/ping/1.0.0"])
    payload = bytes(range(32))
    t = time.monotonic()
    await s.write(payload)
    got = b""
    while len(got) < 32:
        got += await s.read(32 - len(got))
    assert got == payload, "ping echo differs"
    await s.close()
    return round((time.monotonic() - t) * 1000, 3)


async def with_pubsub(a, body, default_security=False):
    host, kp = make_host(default_security=default_security)
    ps = Pubsub(host, FloodSub([FLOODSUB]), max_inbound_rpc_size=11 * 1024 * 1024)
    async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]), background_trio_service(ps):
        await ps.wait_until_ready()
        out(event="ready", addr=str(host.get_addrs()[0]), peer_id=host.get_id().to_string())
        await body(host, ps)


async def mode_gossip_recv(a):
    th, td = topics(a.chain_id)

    async def body(host, ps):
        sh = await ps.subscribe(th)
        sd = await ps.subscribe(td)
        info = info_from_p2p_addr(multiaddr.Multiaddr(a.dial))
        await host.connect(info)
        headers, datas = {}, {}
        order = []
        with trio.fail_after(a.timeout):
            async def take(sub, is_header):
                while len(order) < a.count or len(datas) < a.count:
                    msg = await sub.get()
                    assert msg.from_id == info.peer_id.to_bytes(), "from is not the Swift node's peer id"
                    assert len(msg.seqno) == 8, "seqno is not 8 bytes"
                    if is_header:
                        m, h = verify_header(msg.data, a.chain_id)
                        headers[m.header.height] = (m, h)
                        order.append(m.header.height)
                    else:
                        d = ev.P2PData(); d.ParseFromString(msg.data)
                        assert d.metadata.chain_id == a.chain_id and d.HasField("da_height_hint")
                        datas[d.metadata.height] = d
            async with trio.open_nursery() as n:
                n.start_soon(take, sh, True)
                n.start_soon(take, sd, False)
                while len(order) < a.count or not all(h in datas for h in order[:a.count]):
                    await trio.sleep(0.05)
                n.cancel_scope.cancel()
        # pairing: data_hash in the header = sha256(0x00 || Data{txs})
        for h in order[:a.count]:
            m, _ = headers[h]
            txs_only = ev.P2PData(); txs_only.txs.extend(datas[h].txs)
            assert hashlib.sha256(b"\x00" + txs_only.SerializeToString()).digest() == bytes(m.header.data_hash), \
                f"data of {h} does not match its header"
        out(event="result", heights=order[:a.count], hashes=[headers[h][1] for h in order[:a.count]],
            in_order=order[:a.count] == sorted(order[:a.count]) and all(
                y == x + 1 for x, y in zip(order[:a.count], order[1:a.count])))

    await with_pubsub(a, body)


def load_chain(path):
    with open(path) as f:
        return json.load(f)


async def mode_gossip_send(a):
    chain = load_chain(a.chain)
    th, td = topics(a.chain_id)

    async def body(host, ps):
        await ps.subscribe(th)
        await ps.subscribe(td)
        # The Swift node dials us (its --p2p.peers); or we dial it.
        if a.dial:
            info = info_from_p2p_addr(multiaddr.Multiaddr(a.dial))
            await host.connect(info)
            remote = info.peer_id
        else:
            with trio.fail_after(60):
                while not host.get_network().connections:
                    await trio.sleep(0.1)
            remote = list(host.get_network().connections.keys())[0]
        # FloodSub sends only to peers that announced the topic: wait for the Swift node's hello.
        # ...and for py's own outbound stream to it (py skips peers it has no stream to yet).
        with trio.fail_after(30):
            while (remote not in ps.peer_topics.get(th, ()) or remote not in ps.peer_topics.get(td, ())
                   or remote not in ps.peers or ps.peer_queues.get(remote) is None):
                await trio.sleep(0.05)
        async def drained():
            # py-libp2p's per-peer outbound queue holds 32 RPCs and drops beyond that.
            q = ps.peer_queues.get(remote)
            while q is not None and len(q) > 8:
                await trio.sleep(0.005)
        for b in chain["blocks"]:
            data = bytes.fromhex(b["data_hex"])
            if a.forge_last_data_hash:
                # The txs stay genuine (they hash to the signed header's data_hash); the metadata,
                # which no signature covers, claims another previous block.
                d = ev.P2PData()
                d.ParseFromString(data)
                d.metadata.last_data_hash = b"\xee" * 32
                data = d.SerializeToString()
            await ps.publish(th, ev.header_envelope(bytes.fromhex(b["signed_header_hex"])))
            await ps.publish(td, ev.data_envelope(data))
            await drained()
        out(event="published", count=len(chain["blocks"]))
        # Wait for the test to tell us (stdin line) to send the bad messages.
        line = await trio.to_thread.run_sync(sys.stdin.readline)
        bad = line.strip()
        stream = await host.new_stream(remote, [FLOODSUB])
        from libp2p.pubsub.pb import rpc_pb2
        if bad == "duplicate":
            # The same message (same from + seqno) sent twice by its own origin.
            last = chain["blocks"][-1]
            msg = signed_message(host, kp_of(host), th, ev.header_envelope(bytes.fromhex(last["signed_header_hex"]), 7), 1 << 40)
            for _ in range(a.repeat):
                rpc = rpc_pb2.RPC(); rpc.publish.append(msg)
                await stream.write(ev.uvarint(rpc.ByteSize()) + rpc.SerializeToString())
        elif bad == "bad-signature":
            last = chain["blocks"][-1]
            msg = signed_message(host, kp_of(host), th, ev.header_envelope(bytes.fromhex(last["signed_header_hex"]), 9), 1 << 41)
            msg.signature = bytes(64)
            rpc = rpc_pb2.RPC(); rpc.publish.append(msg)
            await stream.write(ev.uvarint(rpc.ByteSize()) + rpc.SerializeToString())
        elif bad == "wrong-chain":
            other = load_chain(a.other_chain)
            b = other["blocks"][-1]
            msg = signed_message(host, kp_of(host), th, ev.header_envelope(bytes.fromhex(b["signed_header_hex"])), 1 << 42)
            rpc = rpc_pb2.RPC(); rpc.publish.append(msg)
            await stream.write(ev.uvarint(rpc.ByteSize()) + rpc.SerializeToString())
        # Wait to see whether the Swift node disconnects us.
        disconnected = False
        with trio.move_on_after(a.timeout):
            while remote in host.get_network().connections:
                await trio.sleep(0.1)
            disconnected = True
        out(event="result", bad=bad, disconnected=disconnected)

    await with_pubsub(a, body)


_KEYS = {}


def kp_of(host):
    return _KEYS[host.get_id()]


def signed_message(host, kp, topic, data, seqno):
    """A StrictSign pubsub message (libp2p/specs pubsub: sign "libp2p-pubsub:" || Message
    without signature and key)."""
    from libp2p.pubsub.pb import rpc_pb2
    m = rpc_pb2.Message()
    setattr(m, "from_id", host.get_id().to_bytes())
    m.data = data
    m.seqno = seqno.to_bytes(8, "big")
    m.topicIDs.append(topic)
    m.signature = kp.private_key.sign(b"libp2p-pubsub:" + m.SerializeToString())
    return m


async def exchange(host, remote, proto, request_bytes, close_write=True):
    """One header-ex request; returns (responses as hex, how the stream ended)."""
    s = await host.new_stream(remote, [proto])
    await s.write(request_bytes)
    if close_write:
        await s.close()
    data, ending = b"", "eof"
    with trio.move_on_after(15) as scope:
        while True:
            try:
                b = await s.read(65536)
            except Exception as e:  # EOF or reset
                muxed = getattr(s, "muxed_stream", None)
                was_reset = getattr(muxed, "reset_received", False)
                ending = "reset" if was_reset or "reset" in type(e).__name__.lower() else "eof"
                break
            if not b:
                break
            data += b
    if scope.cancelled_caught:
        ending = "timeout"
    return [m.hex() for m in parse_frames(data)], ending


async def mode_exchange_client(a):
    host, kp = make_host()
    hx, dx = exchange_ids(a.chain_id)
    async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        out(event="ready", addr=str(host.get_addrs()[0]), peer_id=host.get_id().to_string())
        info = info_from_p2p_addr(multiaddr.Multiaddr(a.dial))
        await host.connect(info)
        r = info.peer_id

        def req(**kw):
            m = ev.HeaderRequest()
            for k, v in kw.items():
                setattr(m, k, v)
            return ev.framed(m)
        results = {}
        for name, proto in (("header", hx), ("data", dx)):
            results[name] = {
                "head": await exchange(host, r, proto, req(origin=0, amount=1)),
                "range": await exchange(host, r, proto, req(origin=1, amount=a.range)),
                "over_limit": await exchange(host, r, proto, req(origin=1, amount=65)),
                "above_head": await exchange(host, r, proto, req(origin=a.head + 10, amount=1)),
                "partial": await exchange(host, r, proto, req(origin=a.head - 2, amount=10)),
                "no_fin": await exchange(host, r, proto, req(origin=1, amount=2), close_write=False),
            }
        results["header"]["hash"] = await exchange(host, r, hx, req(hash=bytes.fromhex(a.hash), amount=1)) if a.hash else None
        # Go's lazy client: multistream header, protocol and request in one write, on a raw stream.
        results["lazy"] = await lazy_request(host, r, hx, req(origin=1, amount=1))
        out(event="result", **results)


async def lazy_request(host, remote, proto, request):
    """Opens a yamux stream without negotiating, then writes header + protocol + request at once."""
    conn = host.get_network().connections[remote]
    conn = conn[0] if isinstance(conn, list) else conn
    muxed = await conn.muxed_conn.open_stream()
    def ms(t):
        b = t.encode() + b"\n"
        return ev.uvarint(len(b)) + b
    await muxed.write(ms("/multistream/1.0.0") + ms(proto) + request)
    await muxed.close()
    data = b""
    with trio.move_on_after(15):
        while True:
            try:
                b = await muxed.read(65536)
            except Exception:
                break
            if not b:
                break
            data += b
    # The first two frames are the multistream echoes (header, protocol); then the responses.
    frames = parse_frames(data)
    return [f.hex() for f in frames]


async def mode_exchange_server(a):
    chain = load_chain(a.chain)
    blocks = chain["blocks"][: a.serve] if a.serve else chain["blocks"]
    host, kp = make_host()
    hx, dx = exchange_ids(a.chain_id)
    served = {"requests": []}

    def handler(kind):
        async def handle(stream):
            buf = b""
            while True:
                try:
                    b = await stream.read(4096)
                except Exception:
                    break
                if not b:
                    break
                buf += b
                if parse_frames_complete(buf):
                    break
            m = ev.HeaderRequest(); m.ParseFromString(parse_frames(buf)[0])
            which = m.WhichOneof("data")
            served["requests"].append({"kind": kind, "which": which, "origin": m.origin, "amount": m.amount})
            head = len(blocks)
            outb = b""
            def body(bk):
                return (ev.header_envelope(bytes.fromhex(bk["signed_header_hex"])) if kind == "header"
                        else ev.data_envelope(bytes.fromhex(bk["data_hex"])))
            if which == "origin" and m.origin == 0 and a.lie and kind == "header":
                outb += ev.framed(ev.HeaderResponse(body=lying_head(chain, a.lie), statusCode=ev.OK))
            elif which == "origin" and m.origin == 0:
                r = ev.HeaderResponse(body=body(blocks[-1]), statusCode=ev.OK); outb += ev.framed(r)
            elif which == "origin":
                if m.amount > 64:
                    await stream.reset(); return
                if m.origin > head:
                    outb += ev.framed(ev.HeaderResponse(statusCode=ev.NOT_FOUND))
                else:
                    for h in range(m.origin, min(m.origin + m.amount, head + 1)):
                        outb += ev.framed(ev.HeaderResponse(body=body(blocks[h - 1]), statusCode=ev.OK))
            else:
                outb += ev.framed(ev.HeaderResponse(statusCode=ev.NOT_FOUND))
            await stream.write(outb)
            await stream.close()
        return handle

    host.set_stream_handler(hx, handler("header"))
    host.set_stream_handler(dx, handler("data"))
    async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        out(event="ready", addr=str(host.get_addrs()[0]), peer_id=host.get_id().to_string())
        await trio.to_thread.run_sync(sys.stdin.readline)
        out(event="result", **served)


def lying_head(chain, height):
    """A header at `height` for this chain, claiming the genesis proposer, signed by another key."""
    last = ev.P2PSignedHeader()
    last.ParseFromString(bytes.fromhex(chain["blocks"][-1]["signed_header_hex"]))
    last.header.height = height
    impostor = Ed25519PrivateKey.generate()
    last.signature = impostor.sign(last.header.SerializeToString())
    last.da_height_hint = 0
    return last.SerializeToString()


def parse_frames_complete(buf):
    try:
        n, shift, i = 0, 0, 0
        while True:
            c = buf[i]; i += 1
            n |= (c & 0x7F) << shift; shift += 7
            if c < 0x80:
                break
        return len(buf) >= i + n
    except IndexError:
        return False


def main():
    import logging, os
    if os.environ.get("LIBP2P_PEER_LOG"):
        logging.basicConfig(level=os.environ["LIBP2P_PEER_LOG"], stream=sys.stderr)
    ap = argparse.ArgumentParser()
    ap.add_argument("mode")
    ap.add_argument("--chain-id", required=True)
    ap.add_argument("--dial")
    ap.add_argument("--chain")
    ap.add_argument("--other-chain")
    ap.add_argument("--count", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--idle", type=float, default=0)
    ap.add_argument("--linger", type=float, default=0)
    ap.add_argument("--default-security", action="store_true")
    ap.add_argument("--range", type=int, default=64)
    ap.add_argument("--head", type=int, default=0)
    ap.add_argument("--hash")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--serve", type=int, default=0)
    ap.add_argument("--lie", type=int, default=0)
    ap.add_argument("--forge-last-data-hash", action="store_true")
    a = ap.parse_args()
    modes = {"handshake": mode_handshake, "gossip-recv": mode_gossip_recv, "gossip-send": mode_gossip_send,
             "exchange-client": mode_exchange_client, "exchange-server": mode_exchange_server}
    try:
        trio.run(modes[a.mode], a)
    except Exception as e:
        import traceback
        out(event="error", error=f"{type(e).__name__}: {e}", trace=traceback.format_exc())
        sys.exit(1)


if __name__ == "__main__":
    main()
