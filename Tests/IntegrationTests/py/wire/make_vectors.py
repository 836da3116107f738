#!/usr/bin/env python3
"""Make a chain of signed blocks in the ev-node wire format, independently of the project.

Encoding is done by Google's protobuf runtime from evnode_wire.proto, signing by the
`cryptography` package, so a vector made here checks the project against code that
no one on the project wrote.

usage: make_vectors.py --seed HEX32 --chain-id ID --blocks N [--start-ns T] [--step-ns S]
                       [--txs-per-block K] [--namespace NAME] > chain.json
       make_vectors.py --seed HEX32 --chain-id ID --block-txs JSON
                       [--da-start-height S] [--da-epoch E] ... > chain.json

evnode's copy (Tests/IntegrationTests/py/wire, from shared/tools/wire), extended for the
forced-inclusion tests (issue 32):
- --block-txs '[["a=1"], [], ["fk=1", "b=2"]]' gives each block's transactions exactly (one
  list per block, --blocks and the default pattern are then ignored), so a test can write a
  chain that carries, or omits, a forced transaction;
- --da-start-height / --da-epoch go into the genesis (da_start_height, da_epoch_forced_inclusion);
- without grpc_tools the schema is compiled by `protoc --descriptor_set_out` and the message
  classes made by protobuf's message_factory (still Google's runtime, no generated code).
"""
import argparse, hashlib, json, os, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def load_pb():
    try:
        import grpc_tools  # noqa: F401
    except ImportError:
        return load_pb_from_descriptors()
    out = os.environ.get("WIRE_PB_DIR") or os.path.join(tempfile.gettempdir(), "evnode-wire-pb")
    os.makedirs(out, exist_ok=True)
    if not os.path.exists(os.path.join(out, "evnode_wire_pb2.py")):
        subprocess.check_call([sys.executable, "-m", "grpc_tools.protoc", "-I", HERE,
                               "--python_out", out, os.path.join(HERE, "evnode_wire.proto")])
    sys.path.insert(0, out)
    import evnode_wire_pb2
    return evnode_wire_pb2


def load_pb_from_descriptors():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "wire.desc")
        subprocess.check_call(["protoc", "-I", HERE, "--descriptor_set_out", out,
                               os.path.join(HERE, "evnode_wire.proto")])
        fds = descriptor_pb2.FileDescriptorSet.FromString(open(out, "rb").read())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)

    class Messages:
        pass
    pb = Messages()
    for name in ["Version", "Header", "Signer", "SignedHeader", "DAHeaderEnvelope", "Metadata", "Data",
                 "SignedData"]:
        setattr(pb, name, message_factory.GetMessageClass(pool.FindMessageTypeByName("evnode.v1." + name)))
    return pb


def sha(b):
    return hashlib.sha256(b).digest()


def namespace(name):
    return bytes(19) + sha(name.encode())[:10]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", required=True, help="32-byte ed25519 seed, hex")
    ap.add_argument("--chain-id", required=True)
    ap.add_argument("--blocks", type=int)
    ap.add_argument("--block-txs", help="JSON list of each block's txs (strings); replaces --blocks")
    ap.add_argument("--da-start-height", type=int, default=0)
    ap.add_argument("--da-epoch", type=int, default=1)
    ap.add_argument("--start-ns", type=int, default=1_700_000_000_000_000_000)
    ap.add_argument("--step-ns", type=int, default=100_000_000)
    ap.add_argument("--txs-per-block", type=int, default=3)
    ap.add_argument("--namespace", default="evnode-test")
    a = ap.parse_args()
    given = json.loads(a.block_txs) if a.block_txs else None
    if given is not None:
        a.blocks = len(given)
    elif a.blocks is None:
        ap.error("--blocks or --block-txs is required")

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives import serialization
    pb = load_pb()

    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(a.seed))
    raw_pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    address = sha(raw_pub)
    pub_proto = bytes([0x08, 0x01, 0x12, 0x20]) + raw_pub

    def signer():
        s = pb.Signer()
        s.address = address
        s.pub_key = pub_proto
        return s

    root = bytes(32)
    last_header_hash = b""
    last_data_full_hash = b""
    blocks = []
    for h in range(1, a.blocks + 1):
        t = a.start_ns + (h - 1) * a.step_ns
        if given is not None:
            txs = [t.encode() for t in given[h - 1]]
        else:
            k = a.txs_per_block if h % 4 else 0  # every fourth block is empty
            txs = [f"key{h}-{i}=value{h}-{i}".encode() for i in range(k)]
            if h % 7 == 0:
                txs.append(b"not-a-kv-tx")  # invalid for the KV app, still part of the block
        txs_only = pb.Data()
        txs_only.txs.extend(txs)
        data_hash = sha(b"\x00" + txs_only.SerializeToString())

        hdr = pb.Header()
        hdr.version.SetInParent()
        hdr.height = h
        hdr.time = t
        hdr.last_header_hash = last_header_hash
        hdr.data_hash = data_hash
        hdr.app_hash = root
        hdr.proposer_address = address
        hdr.chain_id = a.chain_id
        hdr_bytes = hdr.SerializeToString()
        header_hash = sha(hdr_bytes)
        sig = key.sign(hdr_bytes)

        sh = pb.SignedHeader()
        sh.header.CopyFrom(hdr)
        sh.signature = sig
        sh.signer.CopyFrom(signer())
        sh_bytes = sh.SerializeToString()

        env = pb.DAHeaderEnvelope()
        env.header.CopyFrom(hdr)
        env.signature = sig
        env.signer.CopyFrom(signer())
        env.envelope_signature = key.sign(sh_bytes)

        data = pb.Data()
        data.metadata.chain_id = a.chain_id
        data.metadata.height = h
        data.metadata.time = t
        data.metadata.last_data_hash = last_data_full_hash
        data.txs.extend(txs)
        data_bytes = data.SerializeToString()
        data_full_hash = sha(b"\x00" + data_bytes)
        sd = pb.SignedData()
        sd.data.CopyFrom(data)
        sd.signature = key.sign(data_bytes)
        sd.signer.CopyFrom(signer())

        new_root = sha(root + data_hash)
        blocks.append({
            "height": h, "time_ns": t, "txs": [x.decode() for x in txs],
            "header_hex": hdr_bytes.hex(), "header_hash": header_hash.hex(),
            "signature_hex": sig.hex(), "signed_header_hex": sh_bytes.hex(),
            "da_header_envelope_hex": env.SerializeToString().hex(),
            "data_hex": data_bytes.hex(), "data_hash": data_hash.hex(),
            "data_full_hash": data_full_hash.hex(), "signed_data_hex": sd.SerializeToString().hex(),
            "app_hash_before": root.hex(), "app_hash_after": new_root.hex(),
        })
        root = new_root
        last_header_hash = header_hash
        last_data_full_hash = data_full_hash

    json.dump({
        "chain_id": a.chain_id,
        "proposer": {"seed_hex": a.seed, "pub_raw_hex": raw_pub.hex(),
                     "pub_key_proto_hex": pub_proto.hex(), "address_hex": address.hex()},
        "genesis": {"chain_id": a.chain_id, "initial_height": 1, "start_time_ns": a.start_ns,
                    "proposer_address_hex": address.hex(),
                    "da_start_height": a.da_start_height, "da_epoch_forced_inclusion": a.da_epoch},
        "namespace": {"name": a.namespace, "bytes_hex": namespace(a.namespace).hex()},
        "empty_data_hash": sha(b"\x00").hex(),
        "blocks": blocks,
    }, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
