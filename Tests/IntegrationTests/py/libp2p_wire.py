"""A minimal libp2p dialer written from the libp2p specs (github.com/libp2p/specs: connections/,
noise/, yamux/, peer-ids/, pubsub/) for the hostile-peer test: TCP from a chosen source address,
multistream-select 1.0, Noise `Noise_XX_25519_ChaChaPoly_SHA256` with the libp2p handshake payload
signed by an Ed25519 identity, multistream-select again for `/yamux/1.0.0`, then a yamux session
whose frames the caller may also write raw (any length, any flags, windows never granted).

Only `cryptography` and the standard library: nothing here comes from py-libp2p or from the
Swift node, so a bug the node has is not shared by the peer that tests it.
"""
import hashlib
import hmac
import os
import socket
import struct
import threading
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


class WireError(Exception):
    """The remote broke a rule of the protocol, or the connection ended mid-way."""


# MARK: encodings

def uvarint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_uvarint(buf, i=0):
    """(value, next index), or None when `buf` ends inside the varint."""
    n = shift = 0
    while i < len(buf):
        c = buf[i]
        i += 1
        n |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return n, i
        if shift > 63:
            raise WireError("varint longer than 9 bytes")
    return None


def pb_bytes(field, value):
    """A protobuf length-delimited field (wire type 2)."""
    return uvarint(field << 3 | 2) + uvarint(len(value)) + value


def pb_varint(field, value):
    return uvarint(field << 3) + uvarint(value)


def pb_fields(buf):
    """Top-level fields of a protobuf message as {number: [value, ...]} (varints and bytes)."""
    def varint(i):
        r = read_uvarint(buf, i)
        if r is None:
            raise WireError("protobuf message ends inside a varint")
        return r

    out, i = {}, 0
    while i < len(buf):
        key, i = varint(i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(i)
        elif wire == 2:
            n, i = varint(i)
            value = bytes(buf[i:i + n])
            if len(value) != n:
                raise WireError("protobuf field runs past the message")
            i += n
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise WireError(f"protobuf wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58encode(b):
    n = int.from_bytes(b, "big")
    s = ""
    while n:
        n, r = divmod(n, 58)
        s = _B58[r] + s
    return "1" * (len(b) - len(b.lstrip(b"\0"))) + s


def b58decode(s):
    n = 0
    for ch in s:
        n = n * 58 + _B58.index(ch)
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * (len(s) - len(s.lstrip("1"))) + body


# MARK: identity (peer-ids spec)

class Identity:
    """An Ed25519 libp2p identity: `PublicKey{Type=Ed25519(1), Data=pk}` and the identity-multihash
    peer id `0x00 len ‖ PublicKey` (keys of at most 42 bytes are not hashed)."""

    def __init__(self, private=None):
        self.private = private or Ed25519PrivateKey.generate()
        self.public_raw = self.private.public_key().public_bytes(*RAW)
        self.public_proto = pb_varint(1, 1) + pb_bytes(2, self.public_raw)
        self.peer_id = b"\x00" + uvarint(len(self.public_proto)) + self.public_proto

    @property
    def peer_id_text(self):
        return b58encode(self.peer_id)

    def sign(self, data):
        return self.private.sign(data)


def peer_id_of_public_proto(proto):
    return b"\x00" + uvarint(len(proto)) + proto


def ed25519_from_public_proto(proto):
    f = pb_fields(proto)
    if f.get(1) != [1] or len(f.get(2, [b""])[0]) != 32:
        raise WireError("remote identity key is not Ed25519")
    return Ed25519PublicKey.from_public_bytes(f[2][0])


def parse_multiaddr(text):
    """`/ip4/A/tcp/P[/p2p/ID]` (or `host:port`) -> (host, port, peer id bytes or None)."""
    if not text.startswith("/"):
        host, port = text.rsplit(":", 1)
        return host, int(port), None
    parts = text.strip("/").split("/")
    host = port = pid = None
    for k, v in zip(parts[::2], parts[1::2]):
        if k in ("ip4", "ip6", "dns", "dns4", "dns6"):
            host = v
        elif k == "tcp":
            port = int(v)
        elif k in ("p2p", "ipfs"):
            pid = b58decode(v)
    if host is None or port is None:
        raise ValueError(f"not a TCP multiaddr: {text}")
    return host, port, pid


# MARK: multistream-select 1.0 (connections spec)

MULTISTREAM = "/multistream/1.0.0"


def ms_message(protocol):
    b = protocol.encode() + b"\n"
    return uvarint(len(b)) + b


def ms_parse(buf):
    """(protocol, rest) from the start of `buf`, or None when the message is incomplete."""
    r = read_uvarint(buf)
    if r is None:
        return None
    n, i = r
    if n > 1024:
        raise WireError(f"multistream message of {n} bytes")
    if len(buf) < i + n:
        return None
    msg = bytes(buf[i:i + n])
    if not msg.endswith(b"\n"):
        raise WireError(f"multistream message without newline: {msg!r}")
    return msg[:-1].decode(errors="replace"), buf[i + n:]


# MARK: Noise XX (noise spec + the libp2p noise spec)

PROTOCOL_NAME = b"Noise_XX_25519_ChaChaPoly_SHA256"   # exactly 32 bytes: h = name
STATIC_KEY_PREFIX = b"noise-libp2p-static-key:"
MAX_NOISE_MESSAGE = 65535
MAX_PLAINTEXT = MAX_NOISE_MESSAGE - 16


def _hmac(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


def _hkdf2(ck, ikm):
    temp = _hmac(ck, ikm)
    o1 = _hmac(temp, b"\x01")
    return o1, _hmac(temp, o1 + b"\x02")


def _nonce(n):
    return b"\0\0\0\0" + n.to_bytes(8, "little")


class CipherState:
    def __init__(self, key=None):
        self.aead = ChaCha20Poly1305(key) if key else None
        self.n = 0

    def encrypt(self, ad, plaintext):
        c = self.aead.encrypt(_nonce(self.n), plaintext, ad)
        self.n += 1
        return c

    def decrypt(self, ad, ciphertext):
        try:
            p = self.aead.decrypt(_nonce(self.n), ciphertext, ad)
        except Exception as e:
            raise WireError(f"noise decryption failed: {type(e).__name__}")
        self.n += 1
        return p


class HandshakeState:
    """The initiator's side of XX: -> e; <- e, ee, s, es; -> s, se. Empty prologue (TCP)."""

    def __init__(self, identity):
        self.identity = identity
        self.h = PROTOCOL_NAME
        self.ck = PROTOCOL_NAME
        self.cipher = CipherState()
        self._mix_hash(b"")                      # prologue
        self.s = X25519PrivateKey.generate()
        self.e = None
        self.re = self.rs = None
        self.remote_identity_proto = None

    def _mix_hash(self, data):
        self.h = hashlib.sha256(self.h + data).digest()

    def _mix_key(self, ikm):
        self.ck, k = _hkdf2(self.ck, ikm)
        self.cipher = CipherState(k)

    def _encrypt_and_hash(self, p):
        c = self.cipher.encrypt(self.h, p) if self.cipher.aead else p
        self._mix_hash(c)
        return c

    def _decrypt_and_hash(self, c):
        p = self.cipher.decrypt(self.h, c) if self.cipher.aead else c
        self._mix_hash(c)
        return p

    def message1(self):
        self.e = X25519PrivateKey.generate()
        e_pub = self.e.public_key().public_bytes(*RAW)
        self._mix_hash(e_pub)
        return e_pub + self._encrypt_and_hash(b"")

    def read_message2(self, msg):
        if len(msg) < 32 + 48 + 16:
            raise WireError(f"noise message 2 of {len(msg)} bytes")
        self.re = X25519PublicKey.from_public_bytes(msg[:32])
        self._mix_hash(msg[:32])
        self._mix_key(self.e.exchange(self.re))                       # ee
        rs = self._decrypt_and_hash(msg[32:80])                        # s
        self.rs = X25519PublicKey.from_public_bytes(rs)
        self._mix_key(self.e.exchange(self.rs))                        # es
        payload = self._decrypt_and_hash(msg[80:])
        f = pb_fields(payload)
        key_proto, sig = f.get(1, [None])[0], f.get(2, [None])[0]
        if key_proto is None or sig is None:
            raise WireError("noise payload lacks identity_key or identity_sig")
        try:
            ed25519_from_public_proto(key_proto).verify(sig, STATIC_KEY_PREFIX + rs)
        except WireError:
            raise
        except Exception:
            raise WireError("noise identity_sig does not verify")
        self.remote_identity_proto = key_proto

    def message3(self):
        s_pub = self.s.public_key().public_bytes(*RAW)
        out = self._encrypt_and_hash(s_pub)                           # s
        self._mix_key(self.s.exchange(self.re))                        # se
        payload = (pb_bytes(1, self.identity.public_proto)
                   + pb_bytes(2, self.identity.sign(STATIC_KEY_PREFIX + s_pub)))
        return out + self._encrypt_and_hash(payload)

    def split(self):
        k1, k2 = _hkdf2(self.ck, b"")
        return CipherState(k1), CipherState(k2)


# MARK: the secured TCP connection

class SecureChannel:
    """TCP + multistream(/noise) + Noise XX: a byte stream both ways."""

    def __init__(self, sock, send_cipher, recv_cipher, remote_peer_id, raw=b""):
        self.sock = sock
        self.send_cipher = send_cipher
        self.recv_cipher = recv_cipher
        self.remote_peer_id = remote_peer_id
        self.raw = bytearray(raw)         # received ciphertext not yet decrypted
        self.buffer = bytearray()         # decrypted bytes not yet read
        self.send_lock = threading.Lock()
        self.bytes_sent = 0

    @staticmethod
    def dial(host, port, identity, expected_peer_id=None, source=None, timeout=10.0):
        sock = socket.create_connection((host, port), timeout=timeout,
                                        source_address=(source, 0) if source else None)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            raw = bytearray()

            def recv_more():
                b = sock.recv(65536)
                if not b:
                    raise WireError("connection closed during the handshake")
                raw.extend(b)

            def read_ms():
                nonlocal raw
                while True:
                    r = ms_parse(raw)
                    if r is not None:
                        proto, rest = r
                        raw = bytearray(rest)
                        return proto
                    recv_more()

            sock.sendall(ms_message(MULTISTREAM) + ms_message("/noise"))
            if read_ms() != MULTISTREAM:
                raise WireError("no multistream header")
            if (got := read_ms()) != "/noise":
                raise WireError(f"/noise refused: {got}")

            def read_frame():
                while len(raw) < 2 or len(raw) < 2 + struct.unpack(">H", raw[:2])[0]:
                    recv_more()
                n = struct.unpack(">H", raw[:2])[0]
                frame = bytes(raw[2:2 + n])
                del raw[:2 + n]
                return frame

            hs = HandshakeState(identity)
            m1 = hs.message1()
            sock.sendall(struct.pack(">H", len(m1)) + m1)
            hs.read_message2(read_frame())
            m3 = hs.message3()
            sock.sendall(struct.pack(">H", len(m3)) + m3)
            send_c, recv_c = hs.split()
            remote = peer_id_of_public_proto(hs.remote_identity_proto)
            if expected_peer_id is not None and remote != expected_peer_id:
                raise WireError(f"remote is {b58encode(remote)}, expected {b58encode(expected_peer_id)}")
            # Bytes that arrived after message 2 (normally none) are the first transport frames.
            return SecureChannel(sock, send_c, recv_c, remote, raw)
        except BaseException:
            sock.close()
            raise

    def write(self, data):
        """Encrypts `data` as Noise transport messages of at most 65,519 plaintext bytes."""
        with self.send_lock:
            view = memoryview(data)
            out = []
            for i in range(0, len(view), MAX_PLAINTEXT):
                c = self.send_cipher.encrypt(b"", bytes(view[i:i + MAX_PLAINTEXT]))
                out.append(struct.pack(">H", len(c)))
                out.append(c)
                if len(out) >= 32:
                    self.sock.sendall(b"".join(out))
                    out = []
            if out:
                self.sock.sendall(b"".join(out))
            self.bytes_sent += len(data)

    def _read_frame(self):
        raw = self.raw
        while len(raw) < 2 or len(raw) < 2 + ((raw[0] << 8) | raw[1]):
            try:
                b = self.sock.recv(1 << 18)
            except socket.timeout:      # the writer's timeout (oversized-frame sets one): keep waiting
                continue
            if not b:
                raise WireError("connection closed by the remote")
            raw.extend(b)
        n = (raw[0] << 8) | raw[1]
        c = bytes(raw[2:2 + n])
        del raw[:2 + n]
        return self.recv_cipher.decrypt(b"", c)

    def read_exact(self, n):
        while len(self.buffer) < n:
            self.buffer.extend(self._read_frame())
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    def read_ms(self):
        while True:
            r = ms_parse(self.buffer)
            if r is not None:
                proto, rest = r
                self.buffer = bytearray(rest)
                return proto
            self.buffer.extend(self._read_frame())

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


# MARK: yamux (yamux spec)

DATA, WINDOW_UPDATE, PING, GO_AWAY = 0, 1, 2, 3
STALLED = "write stalled: the remote stopped reading"
SYN, ACK, FIN, RST = 1, 2, 4, 8
INITIAL_WINDOW = 256 * 1024


def yamux_header(ftype, flags, stream_id, length):
    return struct.pack(">BBHII", 0, ftype, flags, stream_id, length)


class Stream:
    def __init__(self, session, stream_id):
        self.session = session
        self.id = stream_id
        self.received = bytearray()
        self.bytes_received = 0
        self.send_window = INITIAL_WINDOW
        self.remote_fin = self.reset = False
        self.cond = threading.Condition(session.lock)

    def write(self, data, deadline=None):
        """Data frames within the send window the remote granted; waits for window updates.
        Returns False if the stream or session ended (or the deadline passed) first."""
        view = memoryview(data)
        while view:
            with self.cond:
                while self.send_window == 0 and not (self.reset or self.session.closed):
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self.cond.wait(0.2 if left is None else min(0.2, left))
                if self.reset or self.session.closed:
                    return False
                n = min(len(view), self.send_window, 1 << 20)
                self.send_window -= n
            self.session.send_raw(yamux_header(DATA, 0, self.id, n) + bytes(view[:n]))
            view = view[n:]
        return True

    def close_write(self):
        self.session.send_raw(yamux_header(WINDOW_UPDATE, FIN, self.id, 0))

    def read_until_end(self, timeout):
        """Everything received until FIN/RST/close or `timeout`; (bytes, how it ended)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not (self.remote_fin or self.reset or self.session.closed):
                left = deadline - time.monotonic()
                if left <= 0:
                    return bytes(self.received), "timeout"
                self.cond.wait(min(left, 0.2))
            ending = "reset" if self.reset else "eof" if self.remote_fin else "closed"
            return bytes(self.received), ending


class YamuxSession:
    """The dialer's side: odd stream ids. A reader thread answers pings, refuses the remote's
    protocols with multistream `na` (so its requests end politely), grants window as data is
    read unless `grant_window` is False, and notes GoAway or the end of the connection."""

    def __init__(self, channel, grant_window=True):
        self.channel = channel
        self.grant_window = grant_window
        self.lock = threading.Lock()
        self.ended = threading.Condition(self.lock)
        self.streams = {}
        self.inbound = {}
        self.next_id = 1
        self.closed = False
        self.close_reason = None
        self.go_away_code = None
        self.frames_received = 0
        self.opened_at = time.monotonic()
        self.closed_at = None
        self.reader = threading.Thread(target=self._read_loop, daemon=True)
        self.reader.start()

    @staticmethod
    def dial(multiaddr, identity=None, source=None, grant_window=True, timeout=10.0):
        host, port, expected = parse_multiaddr(multiaddr)
        ch = SecureChannel.dial(host, port, identity or Identity(), expected, source, timeout)
        try:
            ch.write(ms_message(MULTISTREAM) + ms_message("/yamux/1.0.0"))
            if ch.read_ms() != MULTISTREAM:
                raise WireError("no multistream header inside Noise")
            if (got := ch.read_ms()) != "/yamux/1.0.0":
                raise WireError(f"/yamux/1.0.0 refused: {got}")
            ch.sock.settimeout(None)
        except BaseException:
            ch.close()
            raise
        return YamuxSession(ch, grant_window)

    @property
    def remote_peer_id(self):
        return self.channel.remote_peer_id

    def send_raw(self, data):
        """Writes bytes (any yamux frames, well-formed or not) into the Noise channel."""
        if self.closed:
            raise WireError(f"session closed: {self.close_reason}")
        try:
            self.channel.write(data)
        except socket.timeout:
            self._end(STALLED)
            raise WireError(f"session closed: {self.close_reason}")
        except OSError as e:
            self._end(f"write failed: {e}")
            raise WireError(f"session closed: {self.close_reason}")

    def open_stream(self, first_payload=b""):
        with self.lock:
            sid = self.next_id
            self.next_id += 2
            s = Stream(self, sid)
            self.streams[sid] = s
        # SYN with the first bytes: the remote may answer before or after its ACK.
        self.send_raw(yamux_header(DATA if first_payload else WINDOW_UPDATE, SYN, sid, len(first_payload))
                      + first_payload)
        if first_payload:
            s.send_window -= len(first_payload)
        return s

    def open_protocol_stream(self, protocol, request=b"", lazy=True):
        """A stream on `protocol`; lazily (header, protocol and request in one write, as Go's
        client does) or by waiting for the echo first."""
        if lazy:
            return self.open_stream(ms_message(MULTISTREAM) + ms_message(protocol) + request)
        s = self.open_stream(ms_message(MULTISTREAM) + ms_message(protocol))
        with s.cond:
            deadline = time.monotonic() + 10
            while True:
                r = ms_parse(s.received)
                if r is not None:
                    r2 = ms_parse(r[1])
                    if r2 is not None:
                        if r[0] != MULTISTREAM or r2[0] != protocol:
                            raise WireError(f"{protocol} refused: {r[0]} {r2[0]}")
                        s.received = bytearray(r2[1])
                        break
                if s.reset or self.closed:
                    raise WireError(f"{protocol}: stream ended during negotiation ({self.close_reason})")
                if time.monotonic() > deadline:
                    raise WireError(f"{protocol}: no multistream answer within 10 s")
                s.cond.wait(0.2)
        if request:
            s.write(request)
        return s

    def ping(self, value=0x5EED):
        self.send_raw(yamux_header(PING, SYN, 0, value))

    def go_away(self, code=0):
        try:
            self.send_raw(yamux_header(GO_AWAY, 0, 0, code))
        except WireError:
            pass

    def close(self):
        self._end("closed by us")
        self.channel.close()

    def wait_closed(self, timeout):
        deadline = time.monotonic() + timeout
        with self.ended:
            while not self.closed and (left := deadline - time.monotonic()) > 0:
                self.ended.wait(min(left, 0.2))
        return self.closed

    def _wake_all(self):
        for s in self.streams.values():
            s.cond.notify_all()

    def _end(self, reason):
        with self.lock:
            if not self.closed:
                self.closed = True
                self.close_reason = reason
                self.closed_at = time.monotonic()
            self._wake_all()
            self.ended.notify_all()

    def _read_loop(self):
        ch = self.channel
        try:
            while True:
                hdr = ch.read_exact(12)
                _version, ftype, flags, sid, length = struct.unpack(">BBHII", hdr)
                self.frames_received += 1
                if ftype == DATA:
                    payload = ch.read_exact(length) if length else b""
                    self._on_stream_frame(sid, flags, payload, 0)
                elif ftype == WINDOW_UPDATE:
                    self._on_stream_frame(sid, flags, b"", length)
                elif ftype == PING:
                    if flags & SYN:
                        self.send_raw(yamux_header(PING, ACK, 0, length))
                elif ftype == GO_AWAY:
                    self.go_away_code = length
                    self._end(f"GoAway {length}")
                    return
                else:
                    raise WireError(f"yamux frame type {ftype}")
        except Exception as e:   # the remote's bytes end the session, never the reader silently
            self._end(str(e) or type(e).__name__)

    def _on_stream_frame(self, sid, flags, payload, delta):
        if sid % 2 == 0 and sid != 0:
            self._on_inbound(sid, flags, payload)
            return
        with self.lock:
            s = self.streams.get(sid)
            if s is None:
                return
            s.send_window += delta
            if payload:
                s.received.extend(payload)
                s.bytes_received += len(payload)
            if flags & FIN:
                s.remote_fin = True
            if flags & RST:
                s.reset = True
            s.cond.notify_all()
        if payload and self.grant_window and not (flags & RST):
            self.send_raw(yamux_header(WINDOW_UPDATE, 0, sid, len(payload)))

    def _on_inbound(self, sid, flags, payload):
        """The remote's streams (identify, head requests, its pubsub stream): answered `na`."""
        if flags & RST:
            self.inbound.pop(sid, None)
            return
        if flags & SYN:
            self.inbound[sid] = bytearray()
            self.send_raw(yamux_header(WINDOW_UPDATE, ACK, sid, 0))
        buf = self.inbound.get(sid)
        if buf is None:
            return
        buf.extend(payload)
        if payload:
            self.send_raw(yamux_header(WINDOW_UPDATE, 0, sid, len(payload)))
        out = b""
        while True:
            r = ms_parse(buf)
            if r is None:
                break
            proto, rest = r
            buf[:] = rest
            out += ms_message(MULTISTREAM) if proto == MULTISTREAM else ms_message("na")
        if out:
            self.send_raw(yamux_header(DATA, 0, sid, len(out)) + out)
        if flags & FIN:
            self.send_raw(yamux_header(WINDOW_UPDATE, FIN, sid, 0))
            self.inbound.pop(sid, None)
