#!/usr/bin/env python3
"""Independent phivault decryptor, written from docs/FORMAT.md alone.

No phivault code is used: only the Python standard library and the
`cryptography` package (AES-256-GCM). It decrypts every vector in
tests/vectors/{envelope,stream}.json and checks that every "invalid" entry
is rejected.

Usage: python3 tests/interop/decrypt.py      (exit status 0 iff all pass)

Notation: FORMAT.md writes byte ranges as "0 … x"; they are read here as
half-open [0, x), the only reading consistent with §3 ("Header = bytes
0 … 74+n (including the commitment)", commitment at 42+n, 32 bytes).
"""

import base64
import hashlib
import hmac
import json
import re
import struct
import sys
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


class Reject(Exception):
    """The input must be rejected (format error or authentication failure)."""


# --- §2 Key derivation and key commitment ----------------------------------

def kbkdf_dk_c(key: bytes, label: bytes, context: bytes) -> tuple[bytes, bytes]:
    """SP 800-108r1 counter mode, PRF = HMAC-SHA-256, 32-bit counter before
    the fixed input, L = 512. Returns (DK, C) = (K(1), K(2))."""
    fixed = label + b"\x00" + context + struct.pack(">I", 512)
    k = [hmac.new(key, struct.pack(">I", i) + fixed, hashlib.sha256).digest()
         for i in (1, 2)]
    return k[0], k[1]


def check_commitment(key, label, context, commitment) -> bytes:
    """§2 "Commitment check": constant-time compare before any AEAD use."""
    dk, c = kbkdf_dk_c(key, label, context)
    if not hmac.compare_digest(c, commitment):
        raise Reject("commitment mismatch")
    return dk


# --- §6.1 Key ring names ---------------------------------------------------

_PART = r"[a-z0-9][a-z0-9_.-]{0,62}"
_NAME = re.compile(rf"{_PART}/{_PART}")


def parse_name(raw: bytes) -> str:
    if not 1 <= len(raw) <= 128 or not _NAME.fullmatch(raw.decode("latin-1")):
        raise Reject(f"bad key ring name {raw!r}")
    return raw.decode("ascii")


def parse_ring_ref(buf: bytes, off: int) -> tuple[str, int, int]:
    """At `off`: n(1) ‖ name(n) ‖ version u32be. Returns (name, version, end)."""
    if len(buf) < off + 1:
        raise Reject("too short")
    n = buf[off]
    if not 1 <= n <= 128:                          # §3 / §4: n in 1..=128
        raise Reject(f"name length {n} out of range")
    if len(buf) < off + 1 + n + 4:
        raise Reject("too short")
    name = parse_name(buf[off + 1:off + 1 + n])
    (version,) = struct.unpack_from(">I", buf, off + 1 + n)
    if version == 0:                               # key version >= 1
        raise Reject("key version 0")
    return name, version, off + 1 + n + 4


# --- §3 Envelope -------------------------------------------------------------

ENV_LABEL = b"phivault envelope v1"


def decrypt_envelope(env: bytes, lookup, enc_context: bytes) -> bytes:
    # Step 1: magic "PVE", version 1, algorithm 1, n, name, version.
    if env[:3] != b"PVE":
        raise Reject("bad magic")
    if len(env) < 6 or env[3] != 0x01 or env[4] != 0x01:
        raise Reject("unknown format version / algorithm")
    name, version, p = parse_ring_ref(env, 5)      # p = 10+n (nonce offset)
    if len(env) < p + 32 + 32 + 16:                # total >= 74+n+16
        raise Reject("too short")
    context = env[:p + 32]                         # bytes 0 … 42+n
    commitment = env[p + 32:p + 64]                # 42+n … 74+n
    header = env[:p + 64]                          # bytes 0 … 74+n
    # Step 2-3: ring key, derive DK ‖ C', check C' = C.
    dk = check_commitment(lookup(name, version), ENV_LABEL, context, commitment)
    # Step 4: AES-256-GCM, IV = 12 zero bytes, AAD = Header ‖ EncryptionContext;
    # the rest of the input is ciphertext ‖ tag (so no trailing data exists).
    try:
        return AESGCM(dk).decrypt(bytes(12), env[p + 64:], header + enc_context)
    except InvalidTag:
        raise Reject("GCM tag mismatch") from None


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def parse_text_envelope(text: str) -> bytes:
    """§3.1: "pve:" ‖ base64url(envelope) (RFC 4648 §5, no padding, §0);
    surrounding ASCII whitespace is stripped."""
    text = text.strip(" \t\n\r\f")
    if not text.startswith("pve:"):
        raise Reject("missing pve: prefix")
    body = text[4:]
    if not _B64URL.fullmatch(body) or len(body) % 4 == 1:
        raise Reject("not unpadded base64url")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != body:
        raise Reject("non-canonical base64url")    # stray low bits set
    return raw


# --- §4 Stream -------------------------------------------------------------

STREAM_LABEL = b"phivault stream v1"


def decrypt_stream(data: bytes, lookup) -> bytes:
    if data[:3] != b"PVS":
        raise Reject("bad magic")
    if len(data) < 8 or data[3] != 0x01 or data[4] != 0x01:
        raise Reject("unknown format version / algorithm")
    e = data[5]
    if not 12 <= e <= 24:
        raise Reject(f"segment exponent {e} out of range")
    if data[6] != 0x01:
        raise Reject("unknown key source")
    name, version, p = parse_ring_ref(data, 7)     # p = 12+n (nonce offset)
    if len(data) < p + 64:
        raise Reject("truncated header")
    dk = check_commitment(lookup(name, version), STREAM_LABEL,
                          data[:p + 32],           # Context = bytes 0 … 44+n
                          data[p + 32:p + 64])     # commitment at 44+n
    body = data[p + 64:]                           # segments start at 76+n
    seg = (1 << e) + 16                            # stored size S+16

    # Split the body: full S+16 chunks, the final one ends at end of input.
    # An empty plaintext is still one (16-byte) segment, so B = 0 is invalid.
    if not body:
        raise Reject("no segments")
    chunks = [body[i:i + seg] for i in range(0, len(body), seg)]
    if len(chunks[-1]) < 16:
        raise Reject("final segment shorter than a tag")
    if len(chunks[-1]) == 16 and len(chunks) > 1:
        raise Reject("empty final segment after segment 0")

    aead, out = AESGCM(dk), []
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        iv = i.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
        try:
            out.append(aead.decrypt(iv, chunk, b""))   # verifies before release
        except InvalidTag:
            # Diagnostic only (§4 Reading): a final segment that opens with
            # last = 0 means the stream was cut at a segment boundary.
            if last:
                try:
                    aead.decrypt(iv[:11] + b"\x00", chunk, b"")
                    raise Reject(f"truncated (segment {i} sealed as non-final)")
                except InvalidTag:
                    pass
            raise Reject(f"GCM tag mismatch in segment {i}") from None
    return b"".join(out)


# --- §8 Test vectors ------------------------------------------------------

def keyring(name=None, version=None, key_hex=""):
    """A one-key ring. name/version None mean "any" (the invalid lists give
    only a key, and for envelopes not even a version)."""
    def lookup(n, v):
        if (name is not None and n != name) or (version is not None and v != version):
            raise Reject(f"no ring key for {n} v{v}")
        return bytes.fromhex(key_hex)
    return lookup


def main() -> int:
    results = []

    def run(label, fn, expect):
        """expect = plaintext bytes, or None if the input must be rejected."""
        try:
            got = fn()
            if expect is None:
                ok, why = False, "accepted but must be rejected"
            else:
                ok = got == expect
                why = "plaintext matches" if ok else "WRONG plaintext"
        except Reject as exc:
            ok, why = expect is None, f"rejected: {exc}"
        results.append(ok)
        print(f"{'PASS' if ok else 'FAIL'}  {label}: {why}")

    env = json.loads((VECTORS / "envelope.json").read_text())
    for v in env["vectors"]:
        ring = keyring(v["ring"], v["version"], v["ring_key"])
        ctx, pt = bytes.fromhex(v["context"]), bytes.fromhex(v["plaintext"])
        ct = bytes.fromhex(v["ciphertext"])
        run(f"envelope {v['name']!r} (binary)",
            lambda: decrypt_envelope(ct, ring, ctx), pt)
        # The text form must decode to the same bytes and decrypt too (§3.1).
        run(f"envelope {v['name']!r} (text)",
            lambda: (parse_text_envelope(v["text"]) == ct
                     and decrypt_envelope(parse_text_envelope("  " + v["text"] + "\n"),
                                          ring, ctx)), pt)
    for v in env["invalid"]:
        ring = keyring(key_hex=env["invalid_ring_key"])
        run(f"envelope invalid {v['name']!r}",
            lambda: decrypt_envelope(bytes.fromhex(v["ciphertext"]), ring,
                                     bytes.fromhex(v["context"])), None)

    st = json.loads((VECTORS / "stream.json").read_text())
    for v in st["vectors"]:
        ring = keyring(v["ring"], v["version"], v["ring_key"])
        ct = bytes.fromhex(v["ciphertext"])
        pt = bytes(i % 251 for i in range(v["plaintext_len"]))
        if ct[5] != v["segment_exp"]:
            raise SystemExit(f"{v['name']}: header e != segment_exp")
        run(f"stream {v['name']!r}", lambda: decrypt_stream(ct, ring), pt)
    for v in st["invalid"]:
        ring = keyring(version=st["invalid_ring_version"], key_hex=st["invalid_ring_key"])
        run(f"stream invalid {v['name']!r}",
            lambda: decrypt_stream(bytes.fromhex(v["ciphertext"]), ring), None)

    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
