"""ev-node's RPC services checked with clients evnode did not write.

gRPC: Google's grpcio with stubs generated here by grpcio-tools from Protos/evnode/v1. Connect:
plain HTTP/1.1 POSTs with urllib, binary (application/proto) and proto3 JSON bodies. Reflection:
grpcio-reflection's descriptor database (v1alpha) resolving the services without the protos.

Usage: rpc_client.py --rpc http://127.0.0.1:PORT --protos DIR [--peer PEER_ID] [--aggregator]
Checks everything against the node's own JSON API (/status, /blocks/N); prints one JSON line
{"ok": true, ...} on success, raises (exit 1) naming the first mismatch otherwise.
"""
import argparse
import hashlib
import importlib.resources
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def generate_stubs(protos):
    out = tempfile.mkdtemp(prefix="evnode-rpc-stubs-")
    include = str(importlib.resources.files("grpc_tools") / "_proto")
    files = [os.path.join(protos, "evnode/v1", f) for f in
             ("evnode.proto", "state.proto", "state_rpc.proto", "p2p_rpc.proto", "config.proto")]
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", protos, "-I", include,
                    "--python_out", out, "--grpc_python_out", out] + files, check=True)
    # Our v1 reflection.proto as a top-level module: package `grpc` is grpcio itself.
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.join(protos, "grpc/reflection/v1"),
                    "--python_out", out, "--grpc_python_out", out,
                    os.path.join(protos, "grpc/reflection/v1/reflection.proto")], check=True)
    sys.path.insert(0, out)


def http(url, body=None, content_type=None, method=None):
    req = urllib.request.Request(url, data=body, method=method or ("POST" if body is not None else "GET"))
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rpc", required=True)
    ap.add_argument("--protos", required=True)
    ap.add_argument("--peer", default="")
    ap.add_argument("--aggregator", action="store_true")
    args = ap.parse_args()

    generate_stubs(args.protos)
    import grpc
    from google.protobuf import empty_pb2, json_format
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
    from evnode.v1 import config_pb2_grpc, p2p_rpc_pb2, p2p_rpc_pb2_grpc, state_rpc_pb2, state_rpc_pb2_grpc
    from evnode.v1 import config_pb2
    import reflection_pb2 as refl_v1
    import reflection_pb2_grpc as refl_v1_grpc

    target = args.rpc.replace("http://", "")
    channel = grpc.insecure_channel(target)
    store = state_rpc_pb2_grpc.StoreServiceStub(channel)
    p2p = p2p_rpc_pb2_grpc.P2PServiceStub(channel)
    config = config_pb2_grpc.ConfigServiceStub(channel)
    empty = empty_pb2.Empty()
    report = {}

    def connect(service, method, message, response_type, json_body=False):
        url = f"{args.rpc}/evnode.v1.{service}/{method}"
        if json_body:
            status, ctype, body = http(url, json_format.MessageToJson(message).encode(), "application/json")
            check(status == 200, f"Connect JSON {method}: HTTP {status} {body[:300]!r}")
            check(ctype.startswith("application/json"), f"Connect JSON {method}: Content-Type {ctype}")
            return json_format.Parse(body, response_type(), ignore_unknown_fields=False)
        status, ctype, body = http(url, message.SerializeToString(), "application/proto")
        check(status == 200, f"Connect proto {method}: HTTP {status} {body[:300]!r}")
        check(ctype == "application/proto", f"Connect proto {method}: Content-Type {ctype}")
        return response_type.FromString(body)

    # --- health (ev-node's bodies) ---
    status, _, body = http(args.rpc + "/health/live")
    check((status, body) == (200, b"OK\n"), f"/health/live: {status} {body!r}")
    status, _, body = http(args.rpc + "/health/ready")
    check((status, body) == (200, b"READY\n"), f"/health/ready: {status} {body!r}")

    node_status = json.loads(http(args.rpc + "/status")[2])
    chain_id = node_status["chain_id"]

    # --- StoreService.GetState against /status ---
    state = store.GetState(empty).state
    check(state.chain_id == chain_id, f"GetState chain_id {state.chain_id} != {chain_id}")
    check(state.initial_height == 1, f"GetState initial_height {state.initial_height}")
    check(state.next_proposer_address.hex() == node_status["proposer"], "GetState next_proposer_address != /status proposer")
    check(state.last_block_height >= node_status["heights"]["store"], "GetState height went back")
    check(len(state.last_header_hash) == 32, "GetState last_header_hash not filled")
    check(state.last_block_time.seconds > 1_600_000_000, f"GetState last_block_time {state.last_block_time}")
    for via_json in (False, True):
        over_connect = connect("StoreService", "GetState", empty, state_rpc_pb2.GetStateResponse, via_json).state
        check(over_connect.chain_id == chain_id and over_connect.last_block_height >= state.last_block_height,
              f"Connect GetState (json={via_json}) disagrees with gRPC")

    # --- GetBlock: by height against /blocks/h, by hash, 0 = latest, missing ---
    upto = min(state.last_block_height, 5)
    check(upto >= 3, f"too few blocks to check: {state.last_block_height}")
    for h in range(1, upto + 1):
        r = store.GetBlock(state_rpc_pb2.GetBlockRequest(height=h))
        header = r.block.header.header
        check(header.height == h, f"GetBlock({h}) returned height {header.height}")
        hash_hex = hashlib.sha256(header.SerializeToString(deterministic=True)).hexdigest()
        view = json.loads(http(f"{args.rpc}/blocks/{h}")[2])
        check(hash_hex == view["hash"], f"GetBlock({h}) header hash {hash_hex} != /blocks/{h} {view['hash']}")
        check(r.block.header.signer.address.hex() == node_status["proposer"], f"GetBlock({h}) signer")
        by_hash = store.GetBlock(state_rpc_pb2.GetBlockRequest(hash=bytes.fromhex(hash_hex)))
        check(by_hash.block.SerializeToString() == r.block.SerializeToString(), f"GetBlock by hash of {h} differs")
        for via_json in (False, True):
            c = connect("StoreService", "GetBlock", state_rpc_pb2.GetBlockRequest(height=h), state_rpc_pb2.GetBlockResponse, via_json)
            check(c.block.SerializeToString() == r.block.SerializeToString(), f"Connect GetBlock({h}) json={via_json} differs")
    latest = store.GetBlock(state_rpc_pb2.GetBlockRequest(height=0))
    check(latest.block.header.header.height >= state.last_block_height, "GetBlock(0) is not the latest")
    try:
        store.GetBlock(state_rpc_pb2.GetBlockRequest(height=10**12))
        check(False, "GetBlock of a missing height succeeded")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.NOT_FOUND, f"GetBlock missing: {e.code()} {e.details()}")
    try:
        store.GetBlock(state_rpc_pb2.GetBlockRequest())
        check(False, "GetBlock without identifier succeeded")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, f"GetBlock empty: {e.code()}")

    # DA heights appear once block 1 is DA-included (the node's finalized height).
    first = store.GetBlock(state_rpc_pb2.GetBlockRequest(height=1))
    check(first.header_da_height > 0 and first.data_da_height > 0,
          f"GetBlock(1) DA heights {first.header_da_height}/{first.data_da_height}")

    # --- GetMetadata / GetGenesisDaHeight ---
    def meta(key):
        return int.from_bytes(store.GetMetadata(state_rpc_pb2.GetMetadataRequest(key=key)).value, "little")
    check(meta("rhb/1/h") == first.header_da_height, "rhb/1/h != GetBlock(1).header_da_height")
    check(meta("rhb/1/d") == first.data_da_height, "rhb/1/d != GetBlock(1).data_da_height")
    gdh = store.GetGenesisDaHeight(empty).height
    check(gdh == meta("gdh") == min(first.header_da_height, first.data_da_height), f"gdh {gdh}")
    check(meta("d") >= 1, "d (DA-included height) is 0")
    if args.aggregator:
        check(meta("last-submitted-header-height") >= 1, "last-submitted-header-height")
    try:
        store.GetMetadata(state_rpc_pb2.GetMetadataRequest(key="no-such-key"))
        check(False, "unknown metadata key succeeded")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.NOT_FOUND, f"unknown metadata key: {e.code()}")
    c = connect("StoreService", "GetMetadata", state_rpc_pb2.GetMetadataRequest(key="gdh"), state_rpc_pb2.GetMetadataResponse, True)
    check(int.from_bytes(c.value, "little") == gdh, "Connect JSON GetMetadata(gdh)")

    stores = store.GetP2PStoreInfo(empty).stores
    check([s.label for s in stores] == ["Header Store", "Data Store"], f"GetP2PStoreInfo labels {[s.label for s in stores]}")
    check(stores[0].head.height >= upto and stores[0].tail.height == 1, "GetP2PStoreInfo head/tail")
    check(stores[0].tail.hash == hashlib.sha256(first.block.header.header.SerializeToString(deterministic=True)).digest(),
          "GetP2PStoreInfo tail hash is not block 1's header hash")

    # --- P2PService ---
    net = p2p.GetNetInfo(empty).net_info
    check(net.id == node_status["peer_id"], f"GetNetInfo id {net.id} != /status peer_id")
    check(list(net.listen_addresses) == node_status["p2p_listen"], "GetNetInfo listen_addresses != /status p2p_listen")
    peers = p2p.GetPeerInfo(empty).peers
    if args.peer:
        check(args.peer in net.connected_peers, f"GetNetInfo does not list {args.peer}: {list(net.connected_peers)}")
        check(any(p.id == args.peer and p.address.endswith("/p2p/" + args.peer) for p in peers),
              f"GetPeerInfo does not list {args.peer}: {[(p.id, p.address) for p in peers]}")
    for via_json in (False, True):
        c = connect("P2PService", "GetNetInfo", empty, p2p_rpc_pb2.GetNetInfoResponse, via_json)
        check(c.net_info.id == net.id, "Connect GetNetInfo")
        connect("P2PService", "GetPeerInfo", empty, p2p_rpc_pb2.GetPeerInfoResponse, via_json)

    # --- ConfigService ---
    ns = config.GetNamespace(empty)
    check(len(bytes.fromhex(ns.header_namespace)) == 29 and len(bytes.fromhex(ns.data_namespace)) == 29,
          f"GetNamespace: {ns}")
    signer = config.GetSignerInfo(empty)
    check(signer.address.hex() == node_status["proposer"], "GetSignerInfo address != genesis proposer")
    for via_json in (False, True):
        c = connect("ConfigService", "GetNamespace", empty, config_pb2.GetNamespaceResponse, via_json)
        check(c == ns, "Connect GetNamespace")
        c = connect("ConfigService", "GetSignerInfo", empty, config_pb2.GetSignerInfoResponse, via_json)
        check(c == signer, "Connect GetSignerInfo")
    report["namespace"] = ns.header_namespace

    # --- Connect errors: the JSON shape and HTTP status ---
    base = args.rpc + "/evnode.v1.StoreService/"
    status, ctype, body = http(base + "GetBlock", b'{"height": "999999999"}', "application/json")
    check(status == 404 and json.loads(body)["code"] == "not_found", f"Connect missing block: {status} {body!r}")
    status, _, body = http(base + "GetBlock", b"\xff\xff\xff", "application/proto")
    err = json.loads(body)
    check(status == 400 and err["code"] == "invalid_argument" and "GetBlockRequest" in err["message"],
          f"Connect garbage body: {status} {body!r}")
    status, _, body = http(base + "GetBlock", b'{"height": ', "application/json")
    check(status == 400 and json.loads(body)["code"] == "invalid_argument", f"Connect bad JSON: {status} {body!r}")
    status, _, body = http(base + "GetState", b"{}", "text/plain")
    check(status == 415 and "application/proto" in json.loads(body)["message"], f"Connect bad content type: {status} {body!r}")
    status, _, body = http(base + "GetMetadata", b"\x0a" + b"\xff\xff\x07" + b"k" * (128 << 10), "application/proto")
    check(status == 429 and json.loads(body)["code"] == "resource_exhausted", f"Connect oversize body: {status} {body[:200]!r}")
    try:
        store.GetMetadata(state_rpc_pb2.GetMetadataRequest(key="k" * (128 << 10)))
        check(False, "an oversize gRPC request succeeded")
    except grpc.RpcError as e:
        # grpc-swift refuses a message over its limit by resetting the stream (RST_STREAM CANCEL).
        check(e.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED),
              f"oversize gRPC request: {e.code()} {e.details()}")

    # --- reflection: v1alpha through grpcio-reflection's client, v1 by hand ---
    db = ProtoReflectionDescriptorDatabase(channel)
    services = set(db.get_services())
    want = {"evnode.v1.StoreService", "evnode.v1.P2PService", "evnode.v1.ConfigService"}
    check(want <= services, f"reflection services {services}")
    pool = DescriptorPool(db)
    method = pool.FindMethodByName("evnode.v1.StoreService.GetBlock")
    check(method.input_type.full_name == "evnode.v1.GetBlockRequest"
          and method.output_type.full_name == "evnode.v1.GetBlockResponse", "reflection GetBlock types")
    check([f.name for f in method.input_type.fields] == ["height", "hash"], "reflection GetBlockRequest fields")
    state_fields = {f.name: f.number for f in pool.FindMessageTypeByName("evnode.v1.State").fields}
    check(state_fields.get("next_proposer_address") == 10 and state_fields.get("last_header_hash") == 9,
          f"reflection State fields {state_fields}")
    v1 = refl_v1_grpc.ServerReflectionStub(channel)
    answers = list(v1.ServerReflectionInfo(iter([
        refl_v1.ServerReflectionRequest(list_services=""),
        refl_v1.ServerReflectionRequest(file_containing_symbol="evnode.v1.ConfigService"),
        refl_v1.ServerReflectionRequest(file_containing_symbol="no.such.Symbol"),
    ])))
    check(want <= {s.name for s in answers[0].list_services_response.service}, "reflection v1 list_services")
    check(len(answers[1].file_descriptor_response.file_descriptor_proto) >= 1, "reflection v1 file_containing_symbol")
    check(answers[2].error_response.error_code == 5, "reflection v1 unknown symbol is not NOT_FOUND")

    report.update(ok=True, height=state.last_block_height, services=sorted(services))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
