#!/usr/bin/env python3
"""A test execution client: py-evm (real Prague state roots and block hashes) behind the Engine
API and the eth JSON-RPC methods evnode uses. Written from the Engine API specification
(execution-apis: paris/cancun/prague/authentication) and ev-reth's documented behaviour, for
evnode's integration tests and benchmark. Not a production EL: state is in memory.

Usage: test_el.py --genesis G --jwt-secret FILE --engine-port P --eth-port Q [--fault F]

Engine (JWT HS256 checked, iat within 60 s): engine_forkchoiceUpdatedV3/V4,
engine_getPayloadV4, engine_newPayloadV4. Eth: eth_getBlockByNumber, eth_getBalance,
eth_getTransactionCount, eth_chainId, eth_blockNumber, eth_sendRawTransaction, txpoolExt_getTxs.
`POST /control` on the eth port sets a fault (see FAULTS) and `GET /stats` reports the time
spent executing blocks (the benchmark's floor). `POST /stall {"height": H}` makes the EL hold the
answer to engine_getPayload for the block numbered H (null: release it); `GET /stats` says
`stalled_at` once a node is waiting there: a test can kill -9 the node at exactly that point
(forkchoiceUpdated answered and recorded, the block neither fetched nor sent) with no hook in the
node itself.

ev-reth's proposer control (v0.5.0, ADR-0004), when the genesis' `config.evolve` names a
`proposerControlAdmin`: the precompile at 0x…F101 and `evolve_getNextProposer` (see the
"proposer control" section below; `POST /proposer-control` injects its faults).

Like ev-reth: a child may have its parent's timestamp; undecodable or failing transactions are
left out of a block; payload attributes carry transactions and gasLimit (numbers accepted).
"""
import argparse, base64, hashlib, hmac, json, os, signal, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.vm.forks import PragueVM
from eth.exceptions import VMError
from eth_utils import to_canonical_address, encode_hex, decode_hex, function_signature_to_4byte_selector

FAULTS = {
    "none",
    "fcu-invalid",        # forkchoiceUpdated with attributes answers INVALID
    "fcu-syncing",        # forkchoiceUpdated answers SYNCING
    "fcu-null-payload",   # forkchoiceUpdated with attributes answers VALID with payloadId null
    "fcu-v3-unsupported", # forkchoiceUpdatedV3 answers -38005 (V4 works)
    "malformed",          # every engine answer is not JSON
    "new-payload-invalid",# newPayload answers INVALID
}
ZERO32 = b"\0" * 32


class EvolvePragueVM(PragueVM):
    """Prague, with ev-reth's one consensus difference: a block may share its parent's timestamp
    (EvolveConsensus rejects only earlier ones)."""

    @classmethod
    def validate_header(cls, header, parent_header):
        if parent_header is not None and header.timestamp == parent_header.timestamp:
            parent_header = parent_header.copy(timestamp=parent_header.timestamp - 1)
        super().validate_header(header, parent_header)


def hx(b):
    return encode_hex(b)


def q(n):
    return hex(n)


class EL:
    def __init__(self, genesis_path):
        g = json.load(open(genesis_path))
        self.chain_id = g["config"]["chainId"]
        state = {}
        for addr, acct in g.get("alloc", {}).items():
            state[to_canonical_address(addr)] = {
                "balance": int(acct.get("balance", "0x0"), 16), "nonce": int(acct.get("nonce", "0x0"), 16),
                "code": decode_hex(acct.get("code", "0x")), "storage": {}}
        params = {
            "difficulty": int(g.get("difficulty", "0x0"), 16), "gas_limit": int(g["gasLimit"], 16),
            "timestamp": int(g.get("timestamp", "0x0"), 16), "extra_data": decode_hex(g.get("extraData", "0x")),
            "nonce": int(g.get("nonce", "0x0"), 16).to_bytes(8, "big"), "mix_hash": decode_hex(g.get("mixHash", hx(ZERO32))),
            "coinbase": decode_hex(g.get("coinbase", "0x" + "00" * 20)),
            "base_fee_per_gas": int(g.get("baseFeePerGas", "0x3b9aca00"), 16),
            # reth's genesis has a zero parentBeaconBlockRoot; py-evm's default differs.
            "parent_beacon_block_root": ZERO32,
        }
        self.proposer_control = ProposerControl(g["config"].get("evolve", {}))
        cls = MiningChain.configure(__name__="EvolveTestChain",
                                    vm_configuration=((0, self.proposer_control.vm(EvolvePragueVM)),),
                                    chain_id=self.chain_id)
        self.chain = cls.from_genesis(AtomicDB(), params, state)
        genesis = self.chain.get_canonical_head()
        self.blocks = {genesis.hash: self.chain.get_canonical_block_by_number(0)}
        self.canonical = [genesis.hash]
        self.safe = self.finalized = genesis.hash
        self.payloads = {}
        self.next_payload = 1
        self.pool = []          # raw txs in arrival order
        self.fault = "none"
        self.stall_height = None   # engine_getPayload for this block number is held (POST /stall)
        self.stalled_at = None     # the block number a request is held at now
        self.exec_seconds = 0.0
        self.blocks_built = 0
        self.lock = threading.Lock()

    # --- block building -------------------------------------------------------------------

    def decode_tx(self, raw):
        vm = self.chain.get_vm(self.blocks[self.canonical[-1]].header)
        return vm.get_transaction_builder().decode(raw)

    def build(self, parent_hash, timestamp, prev_randao, fee_recipient, gas_limit, raw_txs):
        parent = self.blocks[parent_hash].header
        txs = []
        for raw in raw_txs:
            try:
                txs.append(self.decode_tx(raw))
            except Exception:
                pass  # undecodable: dropped, as ev-reth does
        kwargs = dict(timestamp=timestamp, gas_limit=gas_limit, coinbase=fee_recipient, mix_hash=prev_randao,
                      parent_beacon_block_root=ZERO32)
        start = time.perf_counter()
        try:
            result, _, _ = self.chain.mine_all(txs, parent_header=parent, **kwargs)
        except Exception:
            # Some tx fails (nonce, balance): keep the ones that apply, in order.
            kept = []
            for tx in txs:
                try:
                    self.chain.mine_all(kept + [tx], parent_header=parent, **kwargs)
                    kept.append(tx)
                except Exception:
                    pass
            result, _, _ = self.chain.mine_all(kept, parent_header=parent, **kwargs)
        self.exec_seconds += time.perf_counter() - start
        self.blocks_built += 1
        block = result.imported_block
        self.blocks[block.hash] = block
        return block

    def make_canonical(self, head_hash):
        chain = []
        h = head_hash
        while True:
            block = self.blocks[h]
            n = block.header.block_number
            if n < len(self.canonical) and self.canonical[n] == h:
                break
            chain.append(h)
            if n == 0:
                break
            h = block.header.parent_hash
        base = self.blocks[head_hash].header.block_number - len(chain)
        self.canonical = self.canonical[:base + 1] + list(reversed(chain))
        included = set()
        for h in chain:
            for tx in self.blocks[h].transactions:
                included.add(tx.hash)
        if included:
            self.pool = [raw for raw in self.pool if self.tx_hash(raw) not in included]

    def tx_hash(self, raw):
        try:
            return self.decode_tx(raw).hash
        except Exception:
            return None

    # --- views ----------------------------------------------------------------------------

    def payload_json(self, block):
        h = block.header
        return {
            "parentHash": hx(h.parent_hash), "feeRecipient": hx(h.coinbase), "stateRoot": hx(h.state_root),
            "receiptsRoot": hx(h.receipt_root), "logsBloom": hx(h.bloom.to_bytes(256, "big")),
            "prevRandao": hx(h.mix_hash), "blockNumber": q(h.block_number), "gasLimit": q(h.gas_limit),
            "gasUsed": q(h.gas_used), "timestamp": q(h.timestamp), "extraData": hx(h.extra_data),
            "baseFeePerGas": q(h.base_fee_per_gas), "blockHash": hx(h.hash),
            "transactions": [hx(tx.encode()) for tx in block.transactions],
            "withdrawals": [], "blobGasUsed": q(h.blob_gas_used), "excessBlobGas": q(h.excess_blob_gas),
        }

    def block_json(self, block):
        h = block.header
        return {
            "number": q(h.block_number), "hash": hx(h.hash), "parentHash": hx(h.parent_hash),
            "stateRoot": hx(h.state_root), "receiptsRoot": hx(h.receipt_root), "miner": hx(h.coinbase),
            "gasLimit": q(h.gas_limit), "gasUsed": q(h.gas_used), "timestamp": q(h.timestamp),
            "baseFeePerGas": q(h.base_fee_per_gas), "mixHash": hx(h.mix_hash), "extraData": hx(h.extra_data),
            "parentBeaconBlockRoot": hx(h.parent_beacon_block_root),
            "transactions": [hx(tx.hash) for tx in block.transactions],
        }

    def block_at(self, tag):
        if tag in ("latest", "safe", "finalized", "pending"):
            h = {"latest": self.canonical[-1], "pending": self.canonical[-1], "safe": self.safe,
                 "finalized": self.finalized}[tag]
            return self.blocks[h]
        n = int(tag, 16)
        return self.blocks[self.canonical[n]] if n < len(self.canonical) else None

    def state_at(self, tag):
        return self.chain.get_vm(self.block_at(tag).header).state

    # --- engine ---------------------------------------------------------------------------

    def status(self, s, lvh=None, err=None):
        return {"status": s, "latestValidHash": lvh, "validationError": err}

    def forkchoice_updated(self, version, params):
        if self.fault == "fcu-v3-unsupported" and version == 3:
            raise RPCError(-38005, "Unsupported fork")
        state, attrs = params[0], params[1] if len(params) > 1 else None
        head = decode_hex(state["headBlockHash"])
        if self.fault == "fcu-syncing" or head not in self.blocks:
            return {"payloadStatus": self.status("SYNCING"), "payloadId": None}
        if attrs is not None and self.fault == "fcu-invalid":
            return {"payloadStatus": self.status("INVALID", None, "injected INVALID"), "payloadId": None}
        self.make_canonical(head)
        for key, attr in (("safeBlockHash", "safe"), ("finalizedBlockHash", "finalized")):
            h = decode_hex(state[key])
            if h in self.blocks:
                setattr(self, attr, h)
        ok = self.status("VALID", hx(head))
        if attrs is None:
            return {"payloadStatus": ok, "payloadId": None}
        if self.fault == "fcu-null-payload":
            return {"payloadStatus": ok, "payloadId": None}
        ts, gas = attrs["timestamp"], attrs.get("gasLimit")
        ts = int(ts, 16) if isinstance(ts, str) else int(ts)
        gas = self.blocks[head].header.gas_limit if gas is None else (int(gas, 16) if isinstance(gas, str) else int(gas))
        if ts < self.blocks[head].header.timestamp:
            raise RPCError(-38003, "Invalid payload attributes: timestamp before the parent's")
        raw_txs = [decode_hex(t) for t in attrs.get("transactions", [])]
        block = self.build(head, ts, decode_hex(attrs["prevRandao"]), decode_hex(attrs["suggestedFeeRecipient"]),
                           gas, raw_txs)
        pid = self.next_payload.to_bytes(8, "big")
        self.next_payload += 1
        self.payloads[pid] = block
        return {"payloadStatus": ok, "payloadId": hx(pid)}

    def get_payload(self, params):
        pid = decode_hex(params[0])
        if pid not in self.payloads:
            raise RPCError(-38001, "Unknown payload")
        block = self.payloads[pid]
        return {"executionPayload": self.payload_json(block), "blockValue": "0x0",
                "blobsBundle": {"commitments": [], "proofs": [], "blobs": []},
                "shouldOverrideBuilder": False, "executionRequests": []}

    def new_payload(self, params):
        if self.fault == "new-payload-invalid":
            return self.status("INVALID", None, "injected INVALID")
        p = params[0]
        h = decode_hex(p["blockHash"])
        if h in self.blocks:
            return self.status("VALID", hx(h))
        parent = decode_hex(p["parentHash"])
        if parent not in self.blocks:
            return self.status("SYNCING")
        # A payload this EL did not build: execute it and check that it hashes the same.
        block = self.build(parent, int(p["timestamp"], 16), decode_hex(p["prevRandao"]),
                           decode_hex(p["feeRecipient"]), int(p["gasLimit"], 16),
                           [decode_hex(t) for t in p["transactions"]])
        if block.hash != h:
            del self.blocks[block.hash]
            return self.status("INVALID_BLOCK_HASH", None, "blockHash mismatch: computed " + hx(block.hash))
        return self.status("VALID", hx(h))

    # --- dispatch -------------------------------------------------------------------------

    def engine(self, method, params):
        if method in ("engine_forkchoiceUpdatedV3", "engine_forkchoiceUpdatedV4"):
            return self.forkchoice_updated(int(method[-1]), params)
        if method in ("engine_getPayloadV4", "engine_getPayloadV5", "engine_getPayloadV6"):
            return self.get_payload(params)
        if method == "engine_newPayloadV4":
            return self.new_payload(params)
        raise RPCError(-32601, "Method not found: " + method)

    def eth(self, method, params):
        if method == "eth_getBlockByNumber":
            block = self.block_at(params[0])
            return None if block is None else self.block_json(block)
        if method == "eth_blockNumber":
            return q(len(self.canonical) - 1)
        if method == "eth_chainId":
            return q(self.chain_id)
        if method == "eth_getBalance":
            return q(self.state_at(params[1] if len(params) > 1 else "latest").get_balance(to_canonical_address(params[0])))
        if method == "eth_getTransactionCount":
            return q(self.state_at(params[1] if len(params) > 1 else "latest").get_nonce(to_canonical_address(params[0])))
        if method == "eth_sendRawTransaction":
            raw = decode_hex(params[0])
            try:
                tx = self.decode_tx(raw)
                tx.check_signature_validity()
            except Exception as e:
                raise RPCError(-32602, "invalid transaction: %s" % e)
            if raw not in self.pool:
                self.pool.append(raw)
            return hx(tx.hash)
        if method == "txpoolExt_getTxs":
            return [hx(raw) for raw in self.pool]
        if method == ProposerControl.RPC_METHOD and self.proposer_control.enabled:
            return self.proposer_control.rpc(self, params)
        raise RPCError(-32601, "Method not found: " + method)


class RPCError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


def check_jwt(secret, header):
    """execution-apis authentication.md: HS256, iat within ±60 s."""
    if not header or not header.startswith("Bearer "):
        return "missing bearer token"
    try:
        h, c, s = header[7:].split(".")
        pad = lambda t: t + "=" * (-len(t) % 4)
        if json.loads(base64.urlsafe_b64decode(pad(h))).get("alg") != "HS256":
            return "alg is not HS256"
        want = hmac.new(secret, (h + "." + c).encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(want, base64.urlsafe_b64decode(pad(s))):
            return "signature mismatch"
        iat = json.loads(base64.urlsafe_b64decode(pad(c)))["iat"]
        if abs(time.time() - iat) > 60:
            return "iat too far from now"
    except Exception as e:
        return "malformed token: %s" % e
    return None


def serve(el, port, engine, secret):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are two writes: without this, Nagle and delayed ACKs add ~40 ms.
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def reply(self, code, body, ctype="application/json"):
            data = body if isinstance(body, bytes) else body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/proposer-control":
                with el.lock:
                    self.reply(200, json.dumps(el.proposer_control.report()))
            elif self.path == "/stats":
                with el.lock:
                    self.reply(200, json.dumps({"exec_seconds": el.exec_seconds, "blocks_built": el.blocks_built,
                                                "height": len(el.canonical) - 1, "stalled_at": el.stalled_at}))
            else:
                self.reply(404, "{}")

        def held(self, req):
            """Holds an engine_getPayload for the stalled block number until /stall releases it;
            True when it was held (the caller, killed meanwhile, gets no answer)."""
            if not str(req.get("method", "")).startswith("engine_getPayload"):
                return False
            with el.lock:
                try:
                    block = el.payloads.get(decode_hex(req.get("params", [""])[0]))
                except Exception:
                    block = None
                if block is None or el.stall_height is None or block.header.block_number != el.stall_height:
                    return False
                el.stalled_at = el.stall_height
            while True:
                time.sleep(0.05)
                with el.lock:
                    if el.stall_height != el.stalled_at:
                        el.stalled_at = None
                        break
            self.close_connection = True
            return True

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if not engine and self.path == "/proposer-control":
                with el.lock:
                    problem = el.proposer_control.set_faults(body)
                return self.reply(400 if problem else 200, json.dumps({"error": problem} if problem else {}))
            if not engine and self.path == "/stall":
                try:
                    height = json.loads(body).get("height")
                    height = None if height is None else int(height)
                except Exception:
                    return self.reply(400, json.dumps({"error": "expected {\"height\": N or null}"}))
                with el.lock:
                    el.stall_height = height
                return self.reply(200, "{}")
            if not engine and self.path == "/control":
                fault = json.loads(body).get("fault", "none")
                if fault not in FAULTS:
                    return self.reply(400, json.dumps({"error": "unknown fault"}))
                with el.lock:
                    el.fault = fault
                return self.reply(200, "{}")
            if engine:
                problem = check_jwt(secret, self.headers.get("Authorization"))
                if problem:
                    return self.reply(401, json.dumps({"error": "JWT: " + problem}))
            try:
                req = json.loads(body)
            except Exception:
                return self.reply(400, json.dumps({"jsonrpc": "2.0", "id": None,
                                                   "error": {"code": -32700, "message": "parse error"}}))
            rid = req.get("id")
            if engine and self.held(req):
                return
            with el.lock:
                if engine and el.fault == "malformed":
                    return self.reply(200, "this is not JSON {")
                try:
                    handler = el.engine if engine else el.eth
                    out = {"jsonrpc": "2.0", "id": rid, "result": handler(req["method"], req.get("params", []))}
                except RPCError as e:
                    out = {"jsonrpc": "2.0", "id": rid, "error": {"code": e.code, "message": e.message}}
                except Exception as e:
                    out = {"jsonrpc": "2.0", "id": rid, "error": {"code": -32603, "message": "internal: %r" % e}}
            self.reply(200, json.dumps(out))

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server

# --- proposer control: ev-reth v0.5.0's precompile at 0x…F101 and evolve_getNextProposer ---------
# Written from ev-reth's ADR-0004 and its documented behaviour. Chainspec `config.evolve`:
# `proposerControlAdmin` (absent or zero: disabled, and the RPC method does not exist),
# `proposerControlActivationHeight` (default 0), `initialNextProposer` (a 32-byte word; zero or
# absent: none). The precompile keeps the next proposer as one opaque 32-byte word in its slot 0.

class ProposerHalt(VMError):
    """The precompile refused the call: the call fails (all its gas is used) and changes nothing."""


class ProposerControl:
    ADDRESS = to_canonical_address("0x000000000000000000000000000000000000f101")
    SLOT = 0
    RPC_METHOD = "evolve_getNextProposer"
    NEXT_PROPOSER = function_signature_to_4byte_selector("nextProposer()")
    SET_NEXT_PROPOSER = function_signature_to_4byte_selector("setNextProposer(bytes32)")
    ADMIN = function_signature_to_4byte_selector("admin()")
    CALL_LOG = 256  # the block arguments of the last calls kept for GET /proposer-control

    def __init__(self, evolve):
        admin = decode_hex(evolve.get("proposerControlAdmin") or "0x" + "00" * 20)
        if len(admin) != 20:
            raise SystemExit("config.evolve.proposerControlAdmin must be a 20-byte address")
        self.admin = admin
        self.enabled = admin != b"\0" * 20
        self.activation = int(evolve.get("proposerControlActivationHeight", 0) or 0)
        initial = decode_hex(evolve.get("initialNextProposer") or hx(ZERO32))
        if len(initial) != 32:
            raise SystemExit("config.evolve.initialNextProposer must be a 32-byte word")
        self.initial = initial
        self.fail_next = 0       # evolve_getNextProposer answers -32603 this many times
        self.malformed_next = 0  # then answers a 2-byte word this many times
        self.calls = []

    def vm(self, base):
        """`base` with the precompile installed, when the chainspec enables it."""
        if not self.enabled:
            return base
        precompiles = dict(base._state_class.computation_class.get_precompiles())
        precompiles[self.ADDRESS] = self.precompile
        computation = type("ProposerControlComputation", (base._state_class.computation_class,),
                           {"_precompiles": precompiles})
        state = type("ProposerControlState", (base._state_class,), {"computation_class": computation})
        return type("ProposerControlVM", (base,), {"_state_class": state})

    def stored(self, state):
        word = state.get_storage(self.ADDRESS, self.SLOT).to_bytes(32, "big")
        return self.initial if word == ZERO32 else word

    def precompile(self, computation):
        state = computation.state
        if state.block_number < self.activation:
            return computation  # not active yet: an empty account
        data = computation.msg.data_as_bytes
        selector = data[:4]
        if selector == self.NEXT_PROPOSER:
            computation.output = self.stored(state)
        elif selector == self.ADMIN:
            computation.output = b"\0" * 12 + self.admin
        elif selector == self.SET_NEXT_PROPOSER and len(data) >= 36:
            if computation.msg.is_static:
                raise ProposerHalt("state change during static call")
            if computation.msg.sender != self.admin:
                raise ProposerHalt("unauthorized caller")
            proposer = data[4:36]
            if proposer == ZERO32:
                raise ProposerHalt("proposer cannot be zero")
            if state.account_is_empty(self.ADDRESS):
                # Like ev-reth: a non-empty account, so its storage is never pruned as empty.
                state.set_code(self.ADDRESS, b"\xfe")
                state.set_nonce(self.ADDRESS, 1)
            state.set_storage(self.ADDRESS, self.SLOT, int.from_bytes(proposer, "big"))
        else:
            raise ProposerHalt("unknown call")
        return computation

    def rpc(self, el, params):
        tag = params[0] if params else "latest"
        if isinstance(tag, str) and tag == "earliest":
            tag = "0x0"
        self.calls = (self.calls + [tag])[-self.CALL_LOG:]
        if self.fail_next > 0:
            self.fail_next -= 1
            raise RPCError(-32603, "injected failure")
        if self.malformed_next > 0:
            self.malformed_next -= 1
            return "0x1234"
        try:
            block = el.block_at(tag)
        except (ValueError, TypeError):
            raise RPCError(-32602, "invalid block argument %r" % (tag,))
        if block is None:
            raise RPCError(-32603, "failed to load state for %s: unknown block" % tag)
        return hx(self.stored(el.chain.get_vm(block.header).state))

    def set_faults(self, body):
        try:
            req = json.loads(body)
            self.fail_next = int(req.get("fail_next", 0))
            self.malformed_next = int(req.get("malformed_next", 0))
        except Exception as e:
            return "bad proposer-control request: %s" % e
        return None

    def report(self):
        return {"enabled": self.enabled, "admin": hx(self.admin), "initial": hx(self.initial),
                "calls": self.calls, "fail_next": self.fail_next, "malformed_next": self.malformed_next}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--genesis", required=True)
    ap.add_argument("--jwt-secret", required=True)
    ap.add_argument("--engine-port", type=int, required=True)
    ap.add_argument("--eth-port", type=int, required=True)
    ap.add_argument("--fault", default="none", choices=sorted(FAULTS))
    args = ap.parse_args()
    text = open(args.jwt_secret).read().strip()
    secret = bytes.fromhex(text[2:] if text.startswith("0x") else text)
    el = EL(args.genesis)
    el.fault = args.fault
    serve(el, args.engine_port, True, secret)
    serve(el, args.eth_port, False, secret)
    g = el.blocks[el.canonical[0]].header
    print("test EL ready engine=%d eth=%d genesis=%s stateRoot=%s" % (args.engine_port, args.eth_port,
          hx(g.hash), hx(g.state_root)), flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1):
        pass
    # Request threads may hold keep-alive connections open; nothing is persisted, so just exit.
    os._exit(0)


if __name__ == "__main__":
    main()
