#!/usr/bin/env python3
"""phivault scan tls next to sslscan and testssl.sh, on the same local servers,
in one run: wall time per full scan of one target, and whether the versions
and accepted suites each tool found agree with phivault's.

Servers (all on loopback, started here):
  legacy  openssl s_server, TLS 1.0-1.3, 'ALL:@SECLEVEL=0' (91 suites)
  nginx   nginx, TLS 1.0-1.2, three suites, server order, HSTS
  phivault phivault serve --dev (TLS 1.2/1.3, mTLS)

Usage: scripts/bench-scan.py [--runs N] [--testssl-full]
Needs: openssl, nginx, sslscan, testssl (apt-get install sslscan testssl.sh),
and a release build (cargo build --release -p phivault-cli).
"""
import json, os, re, shutil, socket, statistics, subprocess, sys, tempfile, time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PV = os.path.join(ROOT, "target/release/phivault")
RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
FULL = "--testssl-full" in sys.argv

def port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def wait(p):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", p), 0.2).close(); return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on {p} did not start")

def sh(cmd, cwd):
    subprocess.run(cmd, shell=True, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

VER = {"TLSv1.0": "tls1", "TLSv1.1": "tls1_1", "TLSv1.2": "tls1_2", "TLSv1.3": "tls1_3", "SSLv3": "ssl3", "SSLv2": "ssl2"}

def ours(target, extra):
    t = time.perf_counter()
    out = subprocess.run([PV, "--json", "scan", "tls", target] + extra, capture_output=True, text=True)
    dt = time.perf_counter() - t
    r = json.loads(out.stdout)[0]
    sets = {VER[v["version"]]: {s["code"].lower().replace("0x", "") for s in v["suites"]}
            for v in r["observed"]["versions"] if v["supported"]}
    return dt, sets

def sslscan(target):
    with tempfile.NamedTemporaryFile(suffix=".xml") as f:
        host, p = target.split(",")[0].rsplit(":", 1)
        t = time.perf_counter()
        subprocess.run(["sslscan", "--no-colour", "--sni-name=localhost", f"--xml={f.name}", f"{host}:{p}"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dt = time.perf_counter() - t
        sets = {}
        for c in ET.parse(f.name).getroot().iter("cipher"):
            v = {"TLSv1.0": "tls1", "TLSv1.1": "tls1_1", "TLSv1.2": "tls1_2", "TLSv1.3": "tls1_3", "SSLv3": "ssl3", "SSLv2": "ssl2"}[c.get("sslversion")]
            sets.setdefault(v, set()).add(c.get("id").lower().replace("0x", "").lstrip("0") .rjust(4, "0"))
        return dt, sets

def testssl(target):
    host, p = target.split(",")[0].rsplit(":", 1)
    with tempfile.TemporaryDirectory() as d:
        j = os.path.join(d, "t.json")
        args = ["testssl", "--quiet", "--warnings", "off", "--color", "0", "--jsonfile", j]
        if not FULL:
            args += ["-p", "-E"]
        t = time.perf_counter()
        subprocess.run(args + [f"{host}:{p}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dt = time.perf_counter() - t
        sets = {}
        for x in json.load(open(j)):
            m = re.match(r"cipher-(tls1(?:_[123])?|ssl3|ssl2)_x([0-9a-f]+)$", x["id"])
            if m:
                sets.setdefault(m.group(1), set()).add(m.group(2).rjust(4, "0"))
        return dt, sets

def main():
    if not os.path.exists(PV):
        raise SystemExit("build first: cargo build --release -p phivault-cli")
    w = tempfile.mkdtemp()
    procs = []
    try:
        sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 30 -subj '/CN=bench-ca' && "
           "openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj '/CN=localhost' && "
           "printf 'subjectAltName=DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > ext && "
           "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 20 -extfile ext", w)
        p1 = port()
        procs.append(subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{p1}", "-cert", "srv.pem", "-key", "srv.key",
                                       "-www", "-quiet", "-cipher", "ALL:@SECLEVEL=0"], cwd=w, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        p2 = port()
        os.makedirs(f"{w}/tmp")
        root = "user root;" if os.geteuid() == 0 else ""
        open(f"{w}/nginx.conf", "w").write(
            f"{root}\nmaster_process off;\ndaemon off;\npid {w}/nginx.pid;\nerror_log {w}/error.log warn;\nevents {{}}\n"
            f"http {{ access_log off; client_body_temp_path {w}/tmp;\n server {{ listen 127.0.0.1:{p2} ssl; "
            f"ssl_certificate {w}/srv.pem; ssl_certificate_key {w}/srv.key; ssl_protocols TLSv1 TLSv1.1 TLSv1.2; "
            f"ssl_prefer_server_ciphers on; ssl_ciphers 'ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-SHA:AES128-SHA:@SECLEVEL=0'; "
            f"add_header Strict-Transport-Security \"max-age=63072000\" always; location / {{ return 200 ok; }} }} }}\n")
        procs.append(subprocess.Popen(["nginx", "-c", f"{w}/nginx.conf", "-e", f"{w}/error.log"], stderr=subprocess.DEVNULL))
        pvd = os.path.join(w, "pv")
        pvp = subprocess.Popen([PV, "--data-dir", pvd, "--json", "serve", "--dev", "--listen", "127.0.0.1:0", "--log", "warn"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(pvp)
        p3 = int(json.loads(pvp.stdout.readline())["listening"].rsplit(":", 1)[1].strip("/"))
        for p in (p1, p2, p3):
            wait(p)
        targets = [("legacy s_server", f"127.0.0.1:{p1},sni=localhost", ["--ca-file", f"{w}/ca.pem"]),
                   ("nginx", f"127.0.0.1:{p2},sni=localhost", ["--ca-file", f"{w}/ca.pem"]),
                   ("phivault serve", f"127.0.0.1:{p3},sni=localhost", ["--ca-file", f"{pvd}/ca/ca.pem"])]
        print(f"# {time.strftime('%Y-%m-%d')} {os.uname().nodename}, {os.cpu_count()} cpu, runs={RUNS}, testssl {'full' if FULL else '-p -E'}")
        print("| server | phivault (median) | sslscan (median) | testssl.sh (1 run) | ratio sslscan/phivault | suites phivault | agree sslscan | agree testssl |")
        print("|---|---|---|---|---|---|---|---|")
        for name, t, extra in targets:
            ot = []; os_ = None
            for _ in range(RUNS):
                dt, os_ = ours(t, extra); ot.append(dt)
            st = []; ss = None
            for _ in range(RUNS):
                dt, ss = sslscan(t); st.append(dt)
            tt, ts = testssl(t)
            n = sum(len(v) for v in os_.values())
            mo, ms = statistics.median(ot), statistics.median(st)
            print(f"| {name} | {mo*1000:.0f} ms | {ms*1000:.0f} ms | {tt:.1f} s | {ms/mo:.2f} | {n} | {'yes' if ss == os_ else diff(os_, ss)} | {'yes' if ts == os_ else diff(os_, ts)} |")
    finally:
        for p in procs:
            p.terminate()
            try: p.wait(5)
            except Exception: p.kill()
        shutil.rmtree(w, ignore_errors=True)

def diff(a, b):
    out = []
    for v in sorted(set(a) | set(b)):
        x, y = a.get(v, set()), b.get(v, set())
        if x != y:
            out.append(f"{v}: only phivault {sorted(x - y)}, only other {sorted(y - x)}")
    return "no: " + "; ".join(out)

main()
