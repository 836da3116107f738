#!/usr/bin/env python3
"""Prints signed EIP-1559 transfers (raw EIP-2718 bytes, hex, one per line) for evnode's tests,
signed with eth-account: sign_transfers.py --key K --to ADDR --count N [--nonce S] [--value V]."""
import argparse
from eth_account import Account

ap = argparse.ArgumentParser()
ap.add_argument("--key", required=True)
ap.add_argument("--to", required=True)
ap.add_argument("--count", type=int, default=1)
ap.add_argument("--nonce", type=int, default=0)
ap.add_argument("--value", type=int, default=1000)
ap.add_argument("--chain-id", type=int, default=1234)
args = ap.parse_args()
acct = Account.from_key(args.key)
for i in range(args.count):
    tx = acct.sign_transaction({"type": 2, "chainId": args.chain_id, "nonce": args.nonce + i, "to": args.to,
                                "value": args.value, "gas": 21000, "maxFeePerGas": 2 * 10**9,
                                "maxPriorityFeePerGas": 1, "data": b""})
    print(tx.raw_transaction.hex().removeprefix("0x"))
