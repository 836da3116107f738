#!/usr/bin/env python3
"""An independent writer and reader of ev-node homes, for evnode's tests.

Written from the facts of ev-node's operator surface (the reference notes: home layout, the
evnode.yaml keys and defaults, genesis fields, the file signer and node_key.json), not from
evnode's Swift code, so that a home evnode did not write can be handed to it, and a home
evnode wrote can be checked by something else.

    write-home   --home DIR --chain-id ID --passphrase-file FILE [--aggregator] [--da-address URL]
                 [--block-time D] [--da-block-time D] [--rpc-address H:P] [--p2p-listen MADDR]
                 [--seed-hex HEX] [--da-epoch-forced-inclusion N]
        writes config/evnode.yaml, config/genesis.json, config/signer.json (0600),
        config/node_key.json (0600); the passphrase file must exist (its content is trimmed as
        Go's strings.TrimSpace trims). Prints {"address", "pub_key", "node_pub_key"} as JSON.
    write-signer --out FILE --passphrase-file FILE [--seed-hex HEX]
        writes only a signer.json; prints {"address", "pub_key"}.
    read-signer  --file FILE --passphrase-file FILE
        decrypts a signer.json; prints {"address", "pub_key", "private_key"} (hex) as JSON, or
        exits 1 with the reason on stderr.

signer.json: {"priv_key_encrypted", "nonce", "pub_key", "salt"}, each standard base64 with
padding. The plaintext is the 64-byte raw Ed25519 key (32-byte seed, then the 32-byte public
key), sealed with AES-256-GCM (12-byte nonce, no associated data, tag appended) under
Argon2id(passphrase, 16-byte salt, t=3, m=32768 KiB, p=4, 32 bytes).
"""

import argparse
import base64
import datetime
import hashlib
import json
import os
import sys

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ARGON2_TIME = 3
ARGON2_MEMORY_KIB = 32 * 1024
ARGON2_LANES = 4
KEY_LENGTH = 32

# unicode.IsSpace in Go: \t \n \v \f \r, space, U+0085, U+00A0, and the other White_Space code
# points. Python's str.strip() also strips U+001C..U+001F, which Go keeps: not used here.
GO_SPACE = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F,
            0x205F, 0x3000} | set(range(0x2000, 0x200B))


def _utf8_first(b, i, end):
    """(code point, length) of the UTF-8 sequence at b[i:end], or None if it is not valid."""
    try:
        for n in (1, 2, 3, 4):
            if i + n > end:
                return None
            try:
                s = b[i:i + n].decode("utf-8")
            except UnicodeDecodeError as e:
                if e.reason == "unexpected end of data":
                    continue
                return None
            return (ord(s), n) if len(s) == 1 else None
    except Exception:
        return None
    return None


def go_trim_space(b):
    """Go's strings.TrimSpace on bytes: strips leading/trailing unicode.IsSpace runes; an invalid
    UTF-8 sequence (decoded by Go as U+FFFD, not a space) stops the trim."""
    start, end = 0, len(b)
    while start < end:
        r = _utf8_first(b, start, end)
        if r is None or r[0] not in GO_SPACE:
            break
        start += r[1]
    while start < end:
        found = None
        for n in (1, 2, 3, 4):
            i = end - n
            if i < start:
                break
            r = _utf8_first(b, i, end)
            if r is not None and r[1] == n:
                found = r
                break
        if found is None or found[0] not in GO_SPACE:
            break
        end -= found[1]
    return b[start:end]


def read_passphrase(path):
    with open(path, "rb") as f:
        p = go_trim_space(f.read())
    if not p:
        raise SystemExit(f"passphrase file {path} is empty")
    return p


def derive(passphrase, salt):
    return hash_secret_raw(secret=passphrase, salt=salt, time_cost=ARGON2_TIME, memory_cost=ARGON2_MEMORY_KIB,
                           parallelism=ARGON2_LANES, hash_len=KEY_LENGTH, type=Type.ID)


def b64(b):
    return base64.b64encode(b).decode()


def new_key(seed_hex=None):
    if seed_hex:
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
    return Ed25519PrivateKey.generate()


def raw_pair(key):
    seed = key.private_bytes_raw()
    pub = key.public_key().public_bytes_raw()
    return seed, pub


def write_private(path, text):
    """Writes a 0600 file via a temp file and a rename."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.rename(tmp, path)


def signer_json(key, passphrase):
    seed, pub = raw_pair(key)
    salt = os.urandom(16)
    nonce = os.urandom(12)
    sealed = AESGCM(derive(passphrase, salt)).encrypt(nonce, seed + pub, None)
    return json.dumps({"priv_key_encrypted": b64(sealed), "nonce": b64(nonce), "pub_key": b64(pub),
                       "salt": b64(salt)}, separators=(",", ":"))


def read_signer(path, passphrase):
    with open(path, "rb") as f:
        obj = json.loads(f.read())
    for field in ("priv_key_encrypted", "nonce", "pub_key", "salt"):
        if not obj.get(field):
            raise SystemExit(f"{path}: field {field} missing or empty")
    sealed = base64.b64decode(obj["priv_key_encrypted"], validate=True)
    nonce = base64.b64decode(obj["nonce"], validate=True)
    pub = base64.b64decode(obj["pub_key"], validate=True)
    salt = base64.b64decode(obj["salt"], validate=True)
    if len(nonce) != 12 or len(pub) != 32:
        raise SystemExit(f"{path}: nonce {len(nonce)} bytes, pub_key {len(pub)} bytes")
    try:
        raw = AESGCM(derive(passphrase, salt)).decrypt(nonce, sealed, None)
    except InvalidTag:
        raise SystemExit(f"{path}: wrong passphrase or altered file (GCM tag)")
    if len(raw) != 64:
        raise SystemExit(f"{path}: plaintext is {len(raw)} bytes, expected 64")
    key = Ed25519PrivateKey.from_private_bytes(raw[:32])
    derived_pub = key.public_key().public_bytes_raw()
    if derived_pub != raw[32:] or derived_pub != pub:
        raise SystemExit(f"{path}: public key does not match the decrypted seed")
    return key


def key_summary(key):
    seed, pub = raw_pair(key)
    return {"address": hashlib.sha256(pub).hexdigest(), "pub_key": pub.hex()}


def rfc3339_now():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}000Z"


def evnode_yaml(a):
    """config/evnode.yaml with ev-node's keys, defaults and the chosen values, commented."""
    t = "true" if a.aggregator else "false"
    return f"""# ev-node configuration (written by evnode's independent test writer, from ev-node's keys).
# Flags (--evnode.<key>) override these values.
# Path to the database, relative to the home.
db_path: data
node:
  # Produce blocks.
  aggregator: {t}
  promotable: false
  based_sequencer: false
  light: false
  # Time between blocks.
  block_time: {a.block_time}
  lazy_mode: false
  lazy_block_interval: 1m0s
  max_pending_headers_and_data: 0
  readiness_window_seconds: 15
  readiness_max_blocks_behind: 15
  scrape_interval: 1s
  catchup_timeout: 0s
da:
  # DA node JSON-RPC address.
  address: "{a.da_address}"
  auth_token: ""
  block_time: {a.da_block_time}
  namespace: "{a.chain_id}-headers"
  data_namespace: ""
  forced_inclusion_namespace: ""
  submit_options: ""
  signing_addresses: []
  mempool_ttl: 0
  max_submit_attempts: 30
  request_timeout: 1m0s
  batching_strategy: time
  batch_size_threshold: 0.8
  batch_max_delay: 0s
  batch_min_items: 1
p2p:
  listen_address: "{a.p2p_listen}"
  peers: ""
  blocked_peers: ""
  allowed_peers: ""
  disable_connection_gater: true
rpc:
  address: "{a.rpc_address}"
  enable_da_visualization: false
instrumentation:
  prometheus: false
  prometheus_listen_addr: ":26660"
  max_open_connections: 3
  pprof: false
  pprof_listen_addr: ":6060"
  tracing: false
  tracing_endpoint: "localhost:4318"
  tracing_service_name: ev-node
  tracing_sample_rate: 0.1
  namespace: evnode
log:
  level: info
  format: text
  trace: false
signer:
  # file: config/signer.json, encrypted; unlocked by --evnode.signer.passphrase_file.
  signer_type: file
  signer_path: config
pruning:
  pruning_mode: disabled
  pruning_keep_recent: 100000
  pruning_interval: 15m0s
"""


def write_home(a):
    config = os.path.join(a.home, "config")
    os.makedirs(config, mode=0o700, exist_ok=True)
    os.makedirs(os.path.join(a.home, "data"), mode=0o700, exist_ok=True)
    passphrase = read_passphrase(a.passphrase_file)
    signer = new_key(a.seed_hex)
    node = Ed25519PrivateKey.generate()
    _, signer_pub = raw_pair(signer)
    node_seed, node_pub = raw_pair(node)
    write_private(os.path.join(config, "signer.json"), signer_json(signer, passphrase))
    write_private(os.path.join(config, "node_key.json"),
                  json.dumps({"priv_key": b64(node_seed + node_pub), "pub_key": b64(node_pub)}))
    genesis = {
        "chain_id": a.chain_id,
        "start_time": rfc3339_now(),
        "initial_height": 1,
        "proposer_address": b64(hashlib.sha256(signer_pub).digest()),
        "da_start_height": 0,
        "da_epoch_forced_inclusion": a.da_epoch_forced_inclusion,
    }
    with open(os.path.join(config, "genesis.json"), "w") as f:
        json.dump(genesis, f, indent=2)
    with open(os.path.join(config, "evnode.yaml"), "w") as f:
        f.write(evnode_yaml(a))
    out = key_summary(signer)
    out["node_pub_key"] = node_pub.hex()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("write-home")
    h.add_argument("--home", required=True)
    h.add_argument("--chain-id", required=True)
    h.add_argument("--passphrase-file", required=True)
    h.add_argument("--aggregator", action="store_true")
    h.add_argument("--da-address", default="http://localhost:7980")
    h.add_argument("--block-time", default="1s")
    h.add_argument("--da-block-time", default="6s")
    h.add_argument("--rpc-address", default="127.0.0.1:7331")
    h.add_argument("--p2p-listen", default="/ip4/0.0.0.0/tcp/7676")
    h.add_argument("--seed-hex")
    h.add_argument("--da-epoch-forced-inclusion", type=int, default=50)
    w = sub.add_parser("write-signer")
    w.add_argument("--out", required=True)
    w.add_argument("--passphrase-file", required=True)
    w.add_argument("--seed-hex")
    r = sub.add_parser("read-signer")
    r.add_argument("--file", required=True)
    r.add_argument("--passphrase-file", required=True)
    a = p.parse_args()
    if a.cmd == "write-home":
        print(json.dumps(write_home(a)))
    elif a.cmd == "write-signer":
        key = new_key(a.seed_hex)
        write_private(a.out, signer_json(key, read_passphrase(a.passphrase_file)))
        print(json.dumps(key_summary(key)))
    else:
        key = read_signer(a.file, read_passphrase(a.passphrase_file))
        out = key_summary(key)
        seed, pub = raw_pair(key)
        out["private_key"] = (seed + pub).hex()
        print(json.dumps(out))


if __name__ == "__main__":
    main()
