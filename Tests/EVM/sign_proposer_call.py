#!/usr/bin/env python3
"""Prints a signed EIP-1559 transaction (raw EIP-2718 bytes, hex) calling ev-reth's proposer-control
precompile at 0x…F101 with setNextProposer(bytes32), signed with eth-account, for evnode's tests:
sign_proposer_call.py --key K --proposer 0x<32-byte word> [--nonce N] [--chain-id C]."""
import argparse
from eth_account import Account
from eth_utils import decode_hex, function_signature_to_4byte_selector

ap = argparse.ArgumentParser()
ap.add_argument("--key", required=True)
ap.add_argument("--proposer", required=True)
ap.add_argument("--nonce", type=int, default=0)
ap.add_argument("--chain-id", type=int, default=1234)
args = ap.parse_args()
word = decode_hex(args.proposer)
if len(word) != 32:
    raise SystemExit("--proposer must be a 32-byte word")
tx = Account.from_key(args.key).sign_transaction({
    "type": 2, "chainId": args.chain_id, "nonce": args.nonce, "to": "0x000000000000000000000000000000000000F101",
    "value": 0, "gas": 100000, "maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 1,
    "data": function_signature_to_4byte_selector("setNextProposer(bytes32)") + word})
print(tx.raw_transaction.hex().removeprefix("0x"))
