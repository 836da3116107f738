"""ev-node's P2P envelopes and go-header's exchange messages, built with Google's protobuf
runtime from descriptors written here from the public schemas (evstack/ev-node
proto/evnode/v1/evnode.proto + types/p2p_envelope.go; celestiaorg/go-header
p2p/pb/header_request.proto). No generated code: the descriptors are assembled at import."""
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto
U64, BYTES, STR, MSG, ENUM = F.TYPE_UINT64, F.TYPE_BYTES, F.TYPE_STRING, F.TYPE_MESSAGE, F.TYPE_ENUM
OPT, REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED


def _message(fdp, name, fields, oneofs=()):
    m = fdp.message_type.add(name=name)
    for o in oneofs:
        m.oneof_decl.add(name=o)
    for spec in fields:
        fname, number, ftype = spec[:3]
        label = spec[3] if len(spec) > 3 else OPT
        extra = spec[4] if len(spec) > 4 else {}
        f = m.field.add(name=fname, number=number, type=ftype, label=label)
        if "type_name" in extra:
            f.type_name = extra["type_name"]
        if "oneof" in extra:
            f.oneof_index = extra["oneof"]
        if extra.get("proto3_optional"):
            f.proto3_optional = True
    return m


def _build():
    pool = descriptor_pool.DescriptorPool()
    ev = descriptor_pb2.FileDescriptorProto(name="evnode_p2p.proto", package="evnode.v1", syntax="proto3")
    _message(ev, "Version", [("block", 1, U64), ("app", 2, U64)])
    _message(ev, "Header", [
        ("version", 1, MSG, OPT, {"type_name": ".evnode.v1.Version"}),
        ("height", 2, U64), ("time", 3, U64), ("last_header_hash", 4, BYTES),
        ("data_hash", 6, BYTES), ("app_hash", 8, BYTES), ("proposer_address", 10, BYTES),
        ("validator_hash", 11, BYTES), ("chain_id", 12, STR)])
    _message(ev, "Signer", [("address", 1, BYTES), ("pub_key", 2, BYTES)])
    _message(ev, "P2PSignedHeader", [
        ("header", 1, MSG, OPT, {"type_name": ".evnode.v1.Header"}),
        ("signature", 2, BYTES),
        ("signer", 3, MSG, OPT, {"type_name": ".evnode.v1.Signer"}),
        ("da_height_hint", 4, U64, OPT, {"oneof": 0, "proto3_optional": True})],
        oneofs=["_da_height_hint"])
    _message(ev, "Metadata", [("chain_id", 1, STR), ("height", 2, U64), ("time", 3, U64),
                              ("last_data_hash", 4, BYTES)])
    _message(ev, "P2PData", [
        ("metadata", 1, MSG, OPT, {"type_name": ".evnode.v1.Metadata"}),
        ("txs", 2, BYTES, REP),
        ("da_height_hint", 3, U64, OPT, {"oneof": 0, "proto3_optional": True})],
        oneofs=["_da_height_hint"])
    pool.Add(ev)

    gh = descriptor_pb2.FileDescriptorProto(name="header_request.proto", package="p2p.pb", syntax="proto3")
    _message(gh, "HeaderRequest", [("origin", 1, U64, OPT, {"oneof": 0}), ("hash", 2, BYTES, OPT, {"oneof": 0}),
                                   ("amount", 3, U64)], oneofs=["data"])
    e = gh.enum_type.add(name="StatusCode")
    for n, v in (("INVALID", 0), ("OK", 1), ("NOT_FOUND", 2)):
        e.value.add(name=n, number=v)
    _message(gh, "HeaderResponse", [("body", 1, BYTES),
                                    ("statusCode", 2, ENUM, OPT, {"type_name": ".p2p.pb.StatusCode"})])
    pool.Add(gh)

    def cls(name):
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
    return {n.split(".")[-1]: cls(n) for n in (
        "evnode.v1.Header", "evnode.v1.P2PSignedHeader", "evnode.v1.P2PData", "evnode.v1.Metadata",
        "p2p.pb.HeaderRequest", "p2p.pb.HeaderResponse")}


_C = _build()
Header = _C["Header"]
P2PSignedHeader = _C["P2PSignedHeader"]
P2PData = _C["P2PData"]
HeaderRequest = _C["HeaderRequest"]
HeaderResponse = _C["HeaderResponse"]
OK, NOT_FOUND = 1, 2


def header_envelope(signed_header_bytes, hint=0):
    """A P2PSignedHeader from an encoded SignedHeader (fields 1-3 are the same)."""
    m = P2PSignedHeader()
    m.ParseFromString(signed_header_bytes)
    m.da_height_hint = hint
    return m.SerializeToString()


def data_envelope(data_bytes, hint=0):
    m = P2PData()
    m.ParseFromString(data_bytes)
    m.da_height_hint = hint
    return m.SerializeToString()


def uvarint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def framed(msg):
    b = msg.SerializeToString()
    return uvarint(len(b)) + b
