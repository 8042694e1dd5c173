#!/usr/bin/env python3
"""Independent phivault decryptor, written from docs/FORMAT.md alone.

No phivault code is used: only the Python standard library and the
`cryptography` package (AES-256-GCM; for backups also ECDH P-384, HKDF,
Ed25519 and ECDSA). It decrypts every vector in
tests/vectors/{envelope,stream,backup}.json, checks that every "invalid"
entry is rejected for the reason its `expect` (backups: `verify`,
`decrypt`) field names (§10), and that every `invalid_texts` string is
rejected as a text form (§3.1). Backups are also verified without their
private key (§13.5).

Usage: python3 tests/interop/decrypt.py      (exit status 0 iff all pass)
Byte ranges "a … b" are half-open [a, b) (§0).
"""

import base64
import hashlib
import hmac
import json
import re
import struct
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


class Reject(Exception):
    """The input must be rejected. `kind` is one of the §10 reasons:
    malformed, unsupported, commitment, tag, truncated; for backups also
    incomplete, signer, signature, recipient."""

    def __init__(self, kind: str, msg: str):
        super().__init__(msg)
        self.kind = kind


# --- §2 Key derivation and key commitment ----------------------------------

def kbkdf_dk_c(key: bytes, label: bytes, context: bytes) -> tuple[bytes, bytes]:
    """SP 800-108r1 counter mode, PRF = HMAC-SHA-256, 32-bit counter before
    the fixed input, L = 512. Returns (DK, C) = (K(1), K(2))."""
    fixed = label + b"\x00" + context + struct.pack(">I", 512)
    k1, k2 = (hmac.new(key, struct.pack(">I", i) + fixed, hashlib.sha256).digest()
              for i in (1, 2))
    return k1, k2


def derive_checked(lookup, name, version, label, context, commitment) -> bytes:
    """§2: no key for (name, version), or C' != C (constant time), is a
    "commitment" failure, found before any AEAD operation."""
    key = lookup(name, version)
    if key is None:
        raise Reject("commitment", f"no ring key for {name} v{version}")
    dk, c = kbkdf_dk_c(key, label, context)
    if not hmac.compare_digest(c, commitment):
        raise Reject("commitment", "commitment mismatch")
    return dk


# --- Common header parts (§3, §4, §6.1) --------------------------------------

_PART = r"[a-z0-9][a-z0-9_.-]{0,62}"
_NAME = re.compile(rf"{_PART}/{_PART}")


def check_magic_version_alg(buf: bytes, magic: bytes, algs=(0x01,)) -> int:
    if buf[:3] != magic:
        raise Reject("malformed", "bad magic")
    if len(buf) < 5:
        raise Reject("malformed", "too short")
    if buf[3] != 0x01:
        raise Reject("unsupported", f"format version {buf[3]}")
    if buf[4] not in algs:
        raise Reject("unsupported", f"algorithm id {buf[4]}")
    return buf[4]


def parse_ring_ref(buf: bytes, off: int) -> tuple[str, int, int]:
    """At `off`: n(1) ‖ name(n) ‖ key version u32be. Returns (name, version, end)."""
    if len(buf) < off + 1:
        raise Reject("malformed", "too short")
    n = buf[off]
    if not 3 <= n <= 127:
        raise Reject("malformed", f"name length {n} out of range")
    if len(buf) < off + 1 + n + 4:
        raise Reject("malformed", "too short")
    raw = buf[off + 1:off + 1 + n]
    if not _NAME.fullmatch(raw.decode("latin-1")):
        raise Reject("malformed", f"bad key ring name {raw!r}")
    (version,) = struct.unpack_from(">I", buf, off + 1 + n)
    if version == 0:
        raise Reject("malformed", "key version 0")
    return raw.decode("ascii"), version, off + 1 + n + 4


# --- §3 Envelope -------------------------------------------------------------

ENV_LABEL = b"phivault envelope v1"


def decrypt_envelope(env: bytes, lookup, enc_context: bytes) -> bytes:
    alg = check_magic_version_alg(env, b"PVE", (0x01, 0x02))  # step 1 (§1: 0x02 = AES-128)
    name, version, p = parse_ring_ref(env, 5)             # p = 10+n
    if len(env) < p + 64 + 16:                            # total >= 74+n+16
        raise Reject("malformed", "shorter than header and tag")
    dk = derive_checked(lookup, name, version, ENV_LABEL,  # steps 2-3
                        env[:p + 32], env[p + 32:p + 64])
    try:                                                  # step 4
        key = dk if alg == 0x01 else dk[:16]
        return AESGCM(key).decrypt(bytes(12), env[p + 64:], env[:p + 64] + enc_context)
    except InvalidTag:
        raise Reject("tag", "GCM tag mismatch") from None


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def parse_text_envelope(text: str) -> bytes:
    """§3.1: strip only SP/HT/CR/LF at the ends; exact lower-case "pve:";
    unpadded, canonical base64url."""
    text = text.strip(" \t\r\n")
    if not text.startswith("pve:"):
        raise Reject("malformed", "missing pve: prefix")
    body = text[4:]
    if not _B64URL.fullmatch(body) or len(body) % 4 == 1:
        raise Reject("malformed", "not unpadded base64url")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != body:
        raise Reject("malformed", "non-canonical base64url")
    return raw


# --- §4 Stream -------------------------------------------------------------

STREAM_LABEL = b"phivault stream v1"


def decrypt_stream(data: bytes, lookup) -> bytes:
    check_magic_version_alg(data, b"PVS")
    if len(data) < 7:
        raise Reject("malformed", "too short")
    e = data[5]
    if not 12 <= e <= 24:
        raise Reject("malformed", f"segment exponent {e} out of range")
    if data[6] != 0x01:
        raise Reject("malformed", f"key source {data[6]}")
    name, version, p = parse_ring_ref(data, 7)            # p = 12+n
    if len(data) < p + 64:
        raise Reject("malformed", "truncated header")
    dk = derive_checked(lookup, name, version, STREAM_LABEL,
                        data[:p + 32], data[p + 32:p + 64])
    return open_segments(data[p + 64:], e, dk)            # segments at 76+n


def open_segments(body: bytes, e: int, dk: bytes) -> bytes:
    """§4 segments: S = 2^e plaintext bytes each, the final one ends at the
    end of `body`."""
    seg = (1 << e) + 16
    if not body:
        raise Reject("truncated", "no segments")
    chunks = [body[i:i + seg] for i in range(0, len(body), seg)]
    aead, out = AESGCM(dk), []
    for i, chunk in enumerate(chunks[:-1]):               # in order, last = 0
        try:
            out.append(aead.decrypt(i.to_bytes(11, "big") + b"\x00", chunk, b""))
        except InvalidTag:
            raise Reject("tag", f"GCM tag mismatch in segment {i}") from None
    i, final = len(chunks) - 1, chunks[-1]
    if len(final) < 16:
        raise Reject("truncated", "final segment shorter than a tag")
    if len(final) == 16 and i > 0:
        raise Reject("truncated", "empty final segment after segment 0")
    try:
        out.append(aead.decrypt(i.to_bytes(11, "big") + b"\x01", final, b""))
    except InvalidTag:
        try:   # §4: cut at a segment boundary if it opens with last = 0
            aead.decrypt(i.to_bytes(11, "big") + b"\x00", final, b"")
        except InvalidTag:
            raise Reject("tag", f"GCM tag mismatch in final segment {i}") from None
        raise Reject("truncated", f"segment {i} was sealed as non-final") from None
    return b"".join(out)


# --- §13 Backup file ---------------------------------------------------------

BACKUP_KDF_LABEL = b"phivault backup v1"
BACKUP_SIG_LABEL = b"phivault backup signature v1"
SIGNERS = {0x01: ("ed25519", 32), 0x02: ("ecdsa-p256", 65)}   # id: (name, p)


def parse_backup_meta(raw: bytes) -> dict:
    """§13.3: a JSON object with string `created` and `source` and a list of
    strings `contents`; other members are ignored."""
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Reject("malformed", "metadata is not JSON") from None
    if not (isinstance(meta, dict) and isinstance(meta.get("created"), str)
            and isinstance(meta.get("source"), str) and isinstance(meta.get("contents"), list)
            and all(isinstance(c, str) for c in meta["contents"])):
        raise Reject("malformed", "metadata is not the §13.3 object")
    return meta


def parse_backup(data: bytes, expected_signer=None) -> dict:
    """§13.5 steps 1-4: footer, header, expected signer, stream header."""
    if len(data) < 8 or data[-6:] != b"PVBEND":                  # step 1
        raise Reject("incomplete", "the file does not end with PVBEND")
    (s,) = struct.unpack(">H", data[-8:-6])
    t = len(data) - 8 - s
    if s < 1 or t < 0:
        raise Reject("malformed", f"signature length {s} out of range")
    signed, sig = data[:t], data[t:t + s]
    if signed[:3] != b"PVB" or len(signed) < 22:                 # step 2
        raise Reject("malformed", "bad magic or too short")
    if signed[3] != 0x01:
        raise Reject("unsupported", f"format version {signed[3]}")
    if signed[4] != 0x01:
        raise Reject("unsupported", f"algorithm id {signed[4]}")
    if signed[5] not in SIGNERS:
        raise Reject("unsupported", f"signer algorithm {signed[5]}")
    signer_alg, p = SIGNERS[signed[5]]
    if len(signed) < 123 + p:
        raise Reject("malformed", "header truncated")
    key_id, e_pub, signer_pub = signed[6:22], signed[22:119], signed[119:119 + p]
    if e_pub[0] != 0x04:
        raise Reject("malformed", "ephemeral key is not an uncompressed point")
    try:    # full public-key validation: on the curve, coordinates < p
        ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), e_pub)
    except ValueError:
        raise Reject("malformed", "ephemeral key is not a P-384 point") from None
    if signer_alg == "ecdsa-p256" and signer_pub[0] != 0x04:
        raise Reject("malformed", "signer key is not an uncompressed point")
    (m,) = struct.unpack_from(">I", signed, 119 + p)
    if not 2 <= m <= 65536:
        raise Reject("malformed", f"metadata length {m} out of range")
    h = 123 + p + m
    if len(signed) < h:
        raise Reject("malformed", "header runs into the trailer")
    meta = parse_backup_meta(signed[123 + p:h])
    if expected_signer is not None and signer_pub != expected_signer:   # step 3
        raise Reject("signer", "signed by another key than the expected one")
    stream = signed[h:]                                            # step 4 (§4.1)
    check_magic_version_alg(stream, b"PVS")
    if len(stream) < 71:
        raise Reject("malformed", "stream header truncated")
    if not 12 <= stream[5] <= 24:
        raise Reject("malformed", f"segment exponent {stream[5]} out of range")
    if stream[6] != 0x02:
        raise Reject("malformed", f"stream key source {stream[6]}, not 0x02")
    return dict(signed=signed, sig=sig, header=signed[:h], key_id=key_id, e_pub=e_pub,
                ephemeral=ephemeral, signer_alg=signer_alg, signer_pub=signer_pub,
                meta=meta, stream=stream)


def verify_backup(data: bytes, expected_signer=None) -> dict:
    """§13.5 without the private key. Returns the parsed backup."""
    b = parse_backup(data, expected_signer)
    digest = hashlib.sha256(b["signed"]).digest()                  # step 5 (§13.4)
    message = BACKUP_SIG_LABEL + b"\x00" + digest
    try:
        if b["signer_alg"] == "ed25519":
            ed25519.Ed25519PublicKey.from_public_bytes(b["signer_pub"]).verify(b["sig"], message)
        else:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b["signer_pub"]).verify(
                b["sig"], message, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise Reject("signature", "the signature does not verify") from None
    body, slot = len(b["stream"]) - 71, (1 << b["stream"][5]) + 16  # step 6 (§4)
    n = -(-body // slot)
    final = body - (n - 1) * slot
    if body <= 0 or final < 16 or (final == 16 and n > 1):
        raise Reject("malformed", "the segments' lengths are not a valid layout")
    b["digest"] = digest
    return b


def backup_key(private_der: bytes, b: dict) -> bytes:
    """§13.6 step 2 and §13.2: check the key id, then K from ECDH and HKDF."""
    priv = serialization.load_der_private_key(private_der, password=None)
    assert isinstance(priv, ec.EllipticCurvePrivateKey) and priv.curve.name == "secp384r1"
    r_pub = priv.public_key().public_bytes(serialization.Encoding.X962,
                                           serialization.PublicFormat.UncompressedPoint)
    if hashlib.sha256(r_pub).digest()[:16] != b["key_id"]:
        raise Reject("recipient", "the backup is for another backup key")
    z = priv.exchange(ec.ECDH(), b["ephemeral"])
    return HKDF(algorithm=hashes.SHA384(), length=32, salt=b["e_pub"] + r_pub,
                info=BACKUP_KDF_LABEL + b"\x00" + b["header"]).derive(z)


def decrypt_backup(data: bytes, private_der: bytes, expected_signer=None) -> bytes:
    """§13.6, checking everything of §13.5 first (the whole file is in memory)."""
    b = verify_backup(data, expected_signer)
    k = backup_key(private_der, b)
    stream = b["stream"]                                           # §4.1 under K
    dk, c = kbkdf_dk_c(k, STREAM_LABEL, stream[:39])
    if not hmac.compare_digest(c, stream[39:71]):
        raise Reject("commitment", "commitment mismatch")
    return open_segments(stream[71:], stream[5], dk)


# --- §10 Test vectors ------------------------------------------------------

def keyring(key_hex, name=None, version=None):
    """A one-key ring; name/version None mean "whatever the header names"."""
    key = bytes.fromhex(key_hex)
    return lambda n, v: key if name in (None, n) and version in (None, v) else None


def main() -> int:
    results = []

    def run(label, fn, expect):
        """expect: plaintext bytes (or b"ok" for a check that returns it),
        or a §10 reason string the input must be rejected for ("fail": any)."""
        try:
            got = fn()
            if isinstance(expect, str):
                ok, why = False, f"accepted, expected rejection ({expect})"
            else:
                ok = got == expect
                why = "plaintext matches" if expect != b"ok" else "accepted"
                why = why if ok else f"WRONG result {got!r:.60}"
        except Reject as exc:
            ok = exc.kind == expect or expect == "fail"
            why = f"rejected ({exc.kind}: {exc})" + ("" if ok else f", expected {expect!r}")
        results.append(ok)
        print(f"{'PASS' if ok else 'FAIL'}  {label}: {why}")

    def text_then_decrypt(text, ct, ring, ctx):
        raw = parse_text_envelope(text)
        if raw != ct:
            return None                                   # WRONG plaintext
        return decrypt_envelope(raw, ring, ctx)

    env = json.loads((VECTORS / "envelope.json").read_text())
    for v in env["vectors"]:
        ring = keyring(v["ring_key"], v["ring"], v["version"])
        ctx, pt = bytes.fromhex(v["context"]), bytes.fromhex(v["plaintext"])
        ct = bytes.fromhex(v["ciphertext"])
        run(f"envelope {v['name']!r} (binary)", lambda: decrypt_envelope(ct, ring, ctx), pt)
        run(f"envelope {v['name']!r} (text)",
            lambda: text_then_decrypt(v["text"], ct, ring, ctx), pt)
        run(f"envelope {v['name']!r} (text, surrounding whitespace)",
            lambda: text_then_decrypt(" \t\r\n" + v["text"] + "\r\n ", ct, ring, ctx), pt)
    for v in env["invalid"]:
        ring = keyring(v["ring_key"])
        run(f"envelope invalid {v['name']!r}",
            lambda: decrypt_envelope(bytes.fromhex(v["ciphertext"]), ring,
                                     bytes.fromhex(v["context"])), v["expect"])
    for t in env["invalid_texts"]:
        run(f"envelope invalid text {t[:24]!r}…", lambda: parse_text_envelope(t), "malformed")

    st = json.loads((VECTORS / "stream.json").read_text())
    for v in st["vectors"]:
        ring = keyring(v["ring_key"], v["ring"], v["version"])
        ct = bytes.fromhex(v["ciphertext"])
        pt = bytes(i % 251 for i in range(v["plaintext_len"]))
        run(f"stream {v['name']!r}",
            lambda: decrypt_stream(ct, ring) if ct[5] == v["segment_exp"] else None, pt)
    for v in st["invalid"]:
        ring = keyring(v["ring_key"], "test/vectors", st.get("invalid_ring_version", 3))
        run(f"stream invalid {v['name']!r}",
            lambda: decrypt_stream(bytes.fromhex(v["ciphertext"]), ring), v["expect"])

    bk = json.loads((VECTORS / "backup.json").read_text())
    recipient = bytes.fromhex(bk["recipient_private_key"])
    other = bytes.fromhex(bk["other_private_key"])
    for v in bk["vectors"]:
        ct, signer = bytes.fromhex(v["backup"]), bytes.fromhex(v["signer_public_key"])
        pt = bytes(i % 251 for i in range(v["plaintext_len"]))
        run(f"backup {v['name']!r} (decrypt)", lambda: decrypt_backup(ct, recipient, signer), pt)

        def verify_steps(ct=ct, signer=signer, v=v):
            b = verify_backup(ct, signer)
            ok = (b["digest"].hex() == v["digest"]
                  and backup_key(recipient, b).hex() == v["backup_key"]
                  and b["meta"] == v["meta"] and b["key_id"].hex() == bk["recipient_key_id"])
            return b"ok" if ok else b"digest, key, metadata or key id differs"
        run(f"backup {v['name']!r} (verify without the key; digest, K)", verify_steps, b"ok")
    for v in bk["invalid"]:
        ct = bytes.fromhex(v["backup"])
        signer = bytes.fromhex(v["expected_signer"]) if "expected_signer" in v else None
        key = other if v.get("decrypt_with") == "other" else recipient
        run(f"backup invalid {v['name']!r} (verify)", lambda: verify_backup(ct, signer) and b"ok",
            b"ok" if v["verify"] == "ok" else v["verify"])
        run(f"backup invalid {v['name']!r} (decrypt)",
            lambda: decrypt_backup(ct, key, signer), v["decrypt"])

    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
