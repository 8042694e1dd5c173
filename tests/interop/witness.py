#!/usr/bin/env python3
"""Independent check of phivault's transparency-log witness vectors,
written from the C2SP specs and RFC 9162 alone (signed-note,
tlog-checkpoint, tlog-witness, tlog-cosignature).

No phivault code is used: only the Python standard library and the
`cryptography` package (Ed25519). For tests/vectors/witness.json it

* parses both verifier keys and recomputes their key ids (type 0x01 for
  the log's Ed25519 note key, 0x04 for the witness's cosignature/v1 key);
* verifies both checkpoints under the log key and recomputes their roots
  from the leaves (RFC 9162 MTH);
* parses the add-checkpoint body and verifies its consistency proof
  (RFC 9162 §2.1.4.2) from the held checkpoint to the new one;
* verifies the witness's cosignature (timestamp, message, key id);
* decides every `invalid` request as a witness holding `old_checkpoint`
  must (tlog-witness: 404, 403, 400, 409, 422 in that order) and checks
  the expected status.

Usage: python3 tests/interop/witness.py      (exit status 0 iff all pass)
"""

import base64
import hashlib
import json
import struct
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
DASH = "\u2014 "


def sha256(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def leaf(data: bytes) -> bytes:
    return sha256(b"\x00", data)


def node(l: bytes, r: bytes) -> bytes:
    return sha256(b"\x01", l, r)


def mth(leaves: list) -> bytes:
    """RFC 9162 §2.1.1, recursively."""
    n = len(leaves)
    if n == 0:
        return sha256()
    if n == 1:
        return leaves[0]
    k = 1 << ((n - 1).bit_length() - 1)
    return node(mth(leaves[:k]), mth(leaves[k:]))


class Verifier:
    """A signed-note verifier key: <name>+<hex key id>+<base64(type || key)>."""

    def __init__(self, vkey: str):
        name, kid, b64 = vkey.split("+", 2)
        typed = base64.b64decode(b64, validate=True)
        self.name, self.type, self.key = name, typed[0], typed[1:]
        if self.type not in (0x01, 0x04) or len(self.key) != 32:
            raise ValueError("only Ed25519 note keys (0x01) and cosignature/v1 keys (0x04)")
        self.kid = sha256(name.encode(), b"\n", bytes([self.type]), self.key)[:4]
        if self.kid.hex() != kid:
            raise ValueError(f"key id {kid} does not match {self.kid.hex()}")
        self.pub = ed25519.Ed25519PublicKey.from_public_bytes(self.key)

    def verify(self, note: str):
        """Returns (text, timestamp or None) if a line from this key verifies."""
        cut = note.rindex("\n\n")
        text, sigs = note[: cut + 1], note[cut + 2 :]
        for line in sigs.splitlines():
            if not line.startswith(DASH):
                raise ValueError("malformed signature line")
            name, b64 = line[len(DASH) :].split(" ")
            raw = base64.b64decode(b64, validate=True)
            if name != self.name or raw[:4] != self.kid:
                continue
            if self.type == 0x01:
                self.pub.verify(raw[4:], text.encode())
                return text, None
            if len(raw) != 4 + 8 + 64:
                raise InvalidSignature()
            (ts,) = struct.unpack(">Q", raw[4:12])
            msg = f"cosignature/v1\ntime {ts}\n{text}".encode()
            self.pub.verify(raw[12:], msg)
            return text, ts
        raise LookupError("no signature from this key")


def checkpoint(text: str):
    lines = text.split("\n")
    return lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True)


def verify_consistency(m: int, n: int, old_root: bytes, new_root: bytes, proof: list) -> bool:
    """RFC 9162 §2.1.4.2."""
    if m > n:
        return False
    if m == n:
        return not proof and old_root == new_root
    if m == 0:
        return not proof and old_root == sha256()
    if not proof:
        return False
    if m & (m - 1) == 0:  # m is an exact power of 2
        proof = [old_root] + proof
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node(c, fr)
            sr = node(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


def parse_request(body: str):
    head, note = body.split("\n\n", 1)
    lines = head.split("\n")
    assert lines[0].startswith("old "), "old line"
    old = lines[0][4:]
    assert old == "0" or not old.startswith("0"), "leading zero"
    proof = [base64.b64decode(l, validate=True) for l in lines[1:]]
    assert len(proof) <= 63 and all(len(p) == 32 for p in proof)
    return int(old), proof, note


def decide(body: str, origin: str, log: Verifier, held) -> int:
    """The status a witness holding `held` (size, root) answers."""
    old, proof, note = parse_request(body)
    o, _, _ = checkpoint(note[: note.rindex("\n\n") + 1])
    if o != origin:
        return 404
    try:
        text, _ = log.verify(note)
    except (InvalidSignature, LookupError):
        return 403
    _, size, root = checkpoint(text)
    if old > size:
        return 400
    if old != held[0]:
        return 409
    if old == size and root != held[1]:
        return 409
    if not verify_consistency(old, size, held[1], root, proof):
        return 422
    return 200


def main() -> int:
    v = json.loads((VECTORS / "witness.json").read_text())
    log = Verifier(v["log_vkey"])
    cos = Verifier(v["cosigner_vkey"])
    assert log.type == 0x01 and cos.type == 0x04
    leaves = [leaf(struct.pack(">Q", i)) for i in range(v["leaf_count"])]
    old_text, _ = log.verify(v["old_checkpoint"])
    origin, m, old_root = checkpoint(old_text)
    assert origin == v["origin"] and old_root == mth(leaves[:m]), "old checkpoint root"
    old, proof, note = parse_request(v["add_checkpoint"])
    text, _ = log.verify(note)
    _, n, root = checkpoint(text)
    assert root == mth(leaves[:n]), "new checkpoint root"
    assert old == m and verify_consistency(m, n, old_root, root, proof), "consistency proof"
    assert decide(v["add_checkpoint"], origin, log, (m, old_root)) == 200
    ctext, ts = cos.verify(note + v["cosignature"])
    assert ctext == text and ts == v["cosignature_time"], "cosignature"
    # A cosignature moved to another time or checkpoint must not verify.
    bad = 0
    for case in v["invalid"]:
        got = decide(case["body"], origin, log, (m, old_root))
        if got != case["status"]:
            print(f"FAIL {case['why']}: {got}, expected {case['status']}")
            bad += 1
    raw = bytearray(base64.b64decode(v["cosignature"].split(" ")[2]))
    raw[11] ^= 1
    moved = f"{DASH}{cos.name} {base64.b64encode(bytes(raw)).decode()}\n"
    try:
        cos.verify(note + moved)
        print("FAIL a cosignature with another timestamp verified")
        bad += 1
    except InvalidSignature:
        pass
    print(f"witness vectors: {len(v['invalid']) + 5} checks, {bad} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
