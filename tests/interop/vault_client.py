#!/usr/bin/env python3
"""Drives phivault with the stock HashiCorp Vault client library `hvac`: an
application already using a Vault client switches by changing only its address
and credentials (mTLS cert=/verify= and a token); the calls are the ordinary
`client.secrets.transit.*` ones. Starts `phivault serve --dev` on a fresh temp
data dir, prints "ok - ..."/"FAIL - ..." per check, exits 1 on any failure.

Usage: python3 tests/interop/vault_client.py [--phivault PATH] [--port N]
Needs: pip install hvac requests
"""

import argparse, base64, os, signal, socket, subprocess, sys, tempfile, time  # noqa: E401
from importlib.metadata import version
from pathlib import Path

import hvac
import requests
from hvac import exceptions as hx

REPO = Path(__file__).resolve().parents[2]
RESULTS = []


def check(desc, fn):
    """fn() must return a truthy value (and not raise)."""
    try:
        r = fn()
        ok, why = bool(r), "" if r else f"got {r!r}"
    except Exception as e:  # noqa: BLE001 - report any failure as FAIL
        ok, why = False, f"{type(e).__name__}: {e}"
    RESULTS.append(ok)
    print(f"{'ok' if ok else 'FAIL'} - {desc}" + ("" if ok else f"  ({why})"), flush=True)
    return ok


def raises(desc, exc, fn):
    """fn() must raise `exc` (an hvac exception class)."""
    def run():
        try:
            r = fn()
        except exc:
            return True
        raise AssertionError(f"expected {exc.__name__}, got result {r!r}")
    return check(desc, run)


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def wait_healthy(proc, url, ca):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"phivault exited early with {proc.returncode}")
        try:
            if ca.exists() and requests.get(f"{url}/v1/sys/health", verify=str(ca),
                                            timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError("phivault did not become healthy within 30 s")


def token(url, cert, ca, scopes, ttl="5m"):
    # verify= per request: a Session's verify loses to $REQUESTS_CA_BUNDLE.
    r = requests.post(f"{url}/v1/auth/token", cert=cert, verify=ca,
                      json={"scopes": scopes, "ttl": ttl}, timeout=10)
    r.raise_for_status()
    return r.json()["auth"]["client_token"]


def run(url, data, exe):
    ca = str(Path(data, "ca", "ca.pem"))
    cert = lambda n: tuple(str(Path(data, "clients", f"{n}.{x}")) for x in ("pem", "key"))
    admin, other = cert("admin"), cert("other")
    client = lambda crt=admin, tok=None: hvac.Client(url=url, token=tok, cert=crt, verify=ca)

    # --- no token: the client certificate's own scopes
    c0 = client()
    check("sys.read_health_status(GET): initialized, unsealed",
          lambda: (h := c0.sys.read_health_status(method="GET"))["initialized"] and not h["sealed"])
    check("no token: read_key('billing') with the certificate alone",
          lambda: c0.secrets.transit.read_key("billing")["data"]["name"] == "billing")
    check("no token: encrypt_data('billing') gives a pve: ciphertext", lambda: c0.secrets
          .transit.encrypt_data("billing", plaintext=b64(b"x"))["data"]["ciphertext"][:4] == "pve:")

    # --- a token bound to the admin certificate
    tok = token(url, admin, ca, ["keys:admin", "keys:read", "transit:*:*", "transit:random"])
    c = client(tok=tok)
    t = c.secrets.transit
    enc = lambda k, p, **kw: t.encrypt_data(k, plaintext=p, **kw)["data"]
    dec = lambda k, ct, **kw: t.decrypt_data(k, ciphertext=ct, **kw)["data"]["plaintext"]
    check("is_authenticated() with a token (lookup-self)", c.is_authenticated)
    check("auth.token.lookup_self names the principal",
          lambda: c.auth.token.lookup_self()["data"]["display_name"].endswith("/admin"))

    check("create_key('orders', aes256-gcm96)",
          lambda: t.create_key("orders", key_type="aes256-gcm96") is not None)
    # hvac 2.x checks key_type client-side and does not know Vault's "hmac"
    # type (Vault >= 1.12), so this one goes through hvac's own adapter.
    check("create_key('sig', type=hmac) via hvac adapter",
          lambda: c.adapter.post("/v1/transit/keys/sig", json={"type": "hmac"}) is not None)
    check("read_key('orders'): type aes256-gcm96, latest_version 1",
          lambda: (d := t.read_key("orders")["data"])["type"] == "aes256-gcm96"
          and d["latest_version"] == 1 and d["supports_encryption"])
    check("read_key('sig'): type hmac", lambda: t.read_key("sig")["data"]["type"] == "hmac")
    check("create_key('signer', ecdsa-p256); sign_data / verify_signed_data(signature=...)",
          lambda: t.create_key("signer", key_type="ecdsa-p256") is not None
          and (sig := t.sign_data("signer", hash_input=b64(b"claim"))["data"]["signature"]).startswith("vault:v1:")
          and t.verify_signed_data("signer", hash_input=b64(b"claim"), signature=sig)["data"]["valid"] is True
          and t.verify_signed_data("signer", hash_input=b64(b"claim!"), signature=sig)["data"]["valid"] is False)
    check("read_key('signer') publishes a PEM public key",
          lambda: t.read_key("signer")["data"]["keys"]["1"]["public_key"].startswith("-----BEGIN PUBLIC KEY-----"))
    # hvac's client-side key_type list lacks aes128-gcm96 too.
    check("create_key('small', aes128-gcm96) via adapter; encrypt and decrypt",
          lambda: c.adapter.post("/v1/transit/keys/small", json={"type": "aes128-gcm96"}) is not None
          and t.decrypt_data("small", t.encrypt_data("small", b64(b"x"))["data"]["ciphertext"])
          ["data"]["plaintext"] == b64(b"x"))
    check("list_keys() has billing, orders, sig",
          lambda: {"billing", "orders", "sig"} <= set(t.list_keys()["data"]["keys"]))

    pt = b64(b"MRN 12345 - patient record")
    e1 = enc("orders", pt)
    ct1 = e1["ciphertext"]
    check("encrypt_data: pve: ciphertext, key_version 1",
          lambda: ct1.startswith("pve:") and e1["key_version"] == 1)
    check("decrypt_data round trip", lambda: dec("orders", ct1) == pt)
    ad = b64(b"record-id=42")
    ct_ad = enc("orders", pt, associated_data=ad)["ciphertext"]
    check("decrypt_data with the same associated_data",
          lambda: dec("orders", ct_ad, associated_data=ad) == pt)
    raises("decrypt_data with other associated_data -> InvalidRequest", hx.InvalidRequest,
           lambda: dec("orders", ct_ad, associated_data=b64(b"record-id=43")))
    raises("decrypt_data without the associated_data -> InvalidRequest", hx.InvalidRequest,
           lambda: dec("orders", ct_ad))

    items = [b64(f"item {i}".encode()) for i in range(5)]
    be = t.encrypt_data("orders", batch_input=[{"plaintext": p, "reference": str(i)} for i, p
                                               in enumerate(items)])["data"]["batch_results"]
    check("batch encrypt_data: 5 results, references echoed",
          lambda: [r["reference"] for r in be] == [str(i) for i in range(5)]
          and all(r["ciphertext"].startswith("pve:") for r in be))
    check("batch decrypt_data returns the plaintexts in order",
          lambda: [r["plaintext"] for r in t.decrypt_data("orders", batch_input=[
              {"ciphertext": r["ciphertext"]} for r in be])["data"]["batch_results"]] == items)

    # --- rotation, rewrap, min_decryption_version
    check("rotate_key -> latest_version 2", lambda: t.rotate_key("orders") is not None
          and t.read_key("orders")["data"]["latest_version"] == 2)
    check("encrypt_data after rotate uses key_version 2",
          lambda: enc("orders", pt)["key_version"] == 2)
    rw = t.rewrap_data("orders", ciphertext=ct1)["data"]
    check("rewrap_data moves a v1 ciphertext to v2",
          lambda: rw["key_version"] == 2 and rw["ciphertext"] != ct1)
    check("rewrapped ciphertext decrypts to the same plaintext",
          lambda: dec("orders", rw["ciphertext"]) == pt)
    check("update_key_configuration(min_decryption_version=2)",
          lambda: t.update_key_configuration("orders", min_decryption_version=2) is not None
          and t.read_key("orders")["data"]["min_decryption_version"] == 2)
    raises("decrypt of a v1 ciphertext below min_decryption_version -> InvalidRequest",
           hx.InvalidRequest, lambda: dec("orders", ct1))

    # --- data keys, HMAC, random
    dk = t.generate_data_key("orders", key_type="plaintext")["data"]
    check("generate_data_key(plaintext): 32-byte key + ciphertext that decrypts to it",
          lambda: len(base64.b64decode(dk["plaintext"])) == 32
          and dec("orders", dk["ciphertext"]) == dk["plaintext"])
    wk = t.generate_data_key("orders", key_type="wrapped", bits=512)["data"]
    check("generate_data_key(wrapped, bits=512): no plaintext, 64-byte key inside",
          lambda: not wk.get("plaintext")
          and len(base64.b64decode(dec("orders", wk["ciphertext"]))) == 64)
    msg = b64(b"claim 991 approved")
    verify = lambda m, mac, **kw: t.verify_signed_data("sig", hash_input=m, hmac=mac, **kw)[
        "data"]["valid"]
    mac = t.generate_hmac("sig", hash_input=msg)["data"]["hmac"]
    check("generate_hmac: vault:v1:...", lambda: mac.startswith("vault:v1:"))
    check("verify_signed_data(hmac=...) valid", lambda: verify(msg, mac) is True)
    check("verify_signed_data on other input is not valid",
          lambda: verify(b64(b"claim 992"), mac) is False)
    mac512 = t.generate_hmac("sig", hash_input=msg, algorithm="sha2-512")["data"]["hmac"]
    check("verify_signed_data(hash_algorithm='sha2-512') of a sha2-512 HMAC",
          lambda: verify(msg, mac512, hash_algorithm="sha2-512") is True)
    check("generate_hmac with an aes256-gcm96 key (any type, as in Vault)",
          lambda: t.generate_hmac("orders", hash_input=msg)["data"]["hmac"].startswith("vault:v"))
    rnd = lambda **kw: t.generate_random_bytes(n_bytes=16, **kw)["data"]["random_bytes"]
    check("generate_random_bytes(16): 16 bytes base64", lambda: len(base64.b64decode(rnd())) == 16)
    check("generate_random_bytes(16, hex): 32 hex digits",
          lambda: len(bytes.fromhex(rnd(output_format="hex"))) == 16)

    # --- negative checks
    ct_b = enc("billing", pt)["ciphertext"]
    raises("decrypt with the wrong key name -> InvalidRequest", hx.InvalidRequest,
           lambda: dec("orders", ct_b))
    mid = len(ct_b) // 2
    bad = ct_b[:mid] + ("A" if ct_b[mid] != "A" else "B") + ct_b[mid + 1:]
    raises("decrypt of a tampered ciphertext -> InvalidRequest", hx.InvalidRequest,
           lambda: dec("billing", bad))
    # Vault answers a data operation on a missing key with 400 "encryption
    # key not found", and a read of a missing key with 404.
    raises("decrypt with an unknown key -> InvalidRequest (as Vault)", hx.InvalidRequest,
           lambda: dec("no-such-key", ct_b))
    raises("read_key of an unknown key -> InvalidPath", hx.InvalidPath,
           lambda: t.read_key("no-such-key"))
    eo = client(tok=token(url, admin, ca, ["transit:encrypt:billing"])).secrets.transit
    check("encrypt-only token: encrypt_data('billing') works", lambda: eo.encrypt_data(
        "billing", plaintext=pt)["data"]["ciphertext"].startswith("pve:"))
    raises("encrypt-only token: decrypt_data -> Forbidden", hx.Forbidden,
           lambda: eo.decrypt_data("billing", ciphertext=ct_b))

    out = subprocess.run([exe, "--data-dir", data, "--insecure-dev", "ca", "issue", "client",
                          "--name", "other", "--scopes", "transit:encrypt:billing"],
                         capture_output=True, text=True, timeout=60)
    if not check("phivault ca issue client --name other",
                 lambda: (out.returncode == 0 and Path(other[0]).exists())
                 or f"rc {out.returncode}: {out.stderr.strip()[-300:]}" == ""):
        return
    check("other certificate with its own token: encrypt works",
          lambda: client(other, token(url, other, ca, ["transit:encrypt:billing"]))
          .secrets.transit.encrypt_data("billing", plaintext=pt)["data"]["ciphertext"])
    raises("admin's token presented with a different certificate -> Unauthorized",
           hx.Unauthorized, lambda: client(other, tok).secrets.transit.encrypt_data(
               "billing", plaintext=pt))
    raises("a garbage token -> Unauthorized", hx.Unauthorized,
           lambda: client(tok="not-a-token").secrets.transit.read_key("billing"))
    check("is_authenticated() is False for a bogus token (as with Vault)",
          lambda: client(tok="not-a-token").is_authenticated() is False)

    # --- deletion
    raises("delete_key without deletion_allowed -> InvalidRequest", hx.InvalidRequest,
           lambda: t.delete_key("orders"))
    check("update_key_configuration(deletion_allowed=True)",
          lambda: t.update_key_configuration("orders", deletion_allowed=True) is not None
          and t.read_key("orders")["data"]["deletion_allowed"] is True)
    check("delete_key('orders')", lambda: t.delete_key("orders").status_code in (200, 204))
    raises("read_key after delete -> InvalidPath", hx.InvalidPath, lambda: t.read_key("orders"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phivault", default=str(REPO / "target" / "debug" / "phivault"))
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    if not (port := a.port):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    url = f"https://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="phivault-hvac-") as tmp:
        data, logpath = os.path.join(tmp, "data"), os.path.join(tmp, "server.log")
        with open(logpath, "wb") as log:
            proc, show_log = None, False
            try:
                proc = subprocess.Popen(
                    [a.phivault, "--data-dir", data, "serve", "--dev", "--listen",
                     f"127.0.0.1:{port}"], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    env={**os.environ, "NO_COLOR": "1"})
                wait_healthy(proc, url, Path(data, "ca", "ca.pem"))
                print(f"# phivault on {url}, hvac {version('hvac')}")
                run(url, data, a.phivault)
            except Exception as e:  # noqa: BLE001
                show_log = not check(f"harness: {type(e).__name__}: {e}", lambda: False)
            finally:
                if proc is not None:
                    rc = proc.poll()
                    if rc is None:
                        proc.send_signal(signal.SIGTERM)
                        try:
                            rc = proc.wait(timeout=10)
                        except subprocess.TimeoutExpired:
                            proc.kill()
                            rc = f"killed after 10 s (rc {proc.wait()})"
                    else:
                        rc = f"had already exited with {rc}"
                    show_log |= not check(f"graceful shutdown on SIGTERM (exit {rc})",
                                          lambda: rc == 0)
        if show_log:
            print("# server log (tail):\n" + Path(logpath).read_text(errors="replace")[-3000:])
        failed = RESULTS.count(False)
    print(f"# {len(RESULTS) - failed}/{len(RESULTS)} checks passed"
          + (f", {failed} FAILED" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
