"""The classroom start: several Streamlit processes behind HAProxy, in one command.

    python classroom.py --web 2 --port 8501 [--host 0.0.0.0] [--ray ADDRESS] [--tls-cert PEM]

Each web process serves its own learners (HAProxy's cookie keeps a browser on the same
process, WebSockets included) and trains in its own worker processes, so no single
interpreter lock carries the room. All of them share one run store on disk, so a
learner whose reload reaches another process (its process restarted, say) finds their
saved run there. With --ray the web processes send training to a Ray cluster instead
(started beforehand with `ray start --head`). Set DLLAB_TEACHER_TOKEN (12 characters or
more) for the teacher's view; --tls-cert makes HAProxy serve https with that certificate.

The room is supervised: a web process that ends (a crash, an out-of-memory kill) is started
again on its port after a pause that doubles while it keeps failing (1 s, 2 s, 4 s ... 30 s),
with one line on stderr, while HAProxy sends its learners to the others; HAProxy is restarted
the same way. HAProxy also bounds what one client can hold: request, keep-alive and client
timeouts, a connection cap, and per-address connection and request-rate limits (the options
below). Only Ctrl-C (or SIGTERM) stops the room: HAProxy, then every web process, each
stopping its workers.

The plain `streamlit run app.py` stays the default start: one web process and its pool.
See docs/CLASSROOM.md for the measurements behind the defaults and the limits.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from dl_core.classroom import MIN_TOKEN_CHARS  # the app's own rule (plain Python: no torch is loaded)

ROOT = Path(__file__).resolve().parent
FIRST_PAUSE_S, LONGEST_PAUSE_S = 1, 30  # before restarting a process that ended; doubles each time
STEADY_S = 60  # a process that ran this long before ending is restarted after the first pause again

HAPROXY_CFG = """\
global
    maxconn {max_conns}
defaults
    mode http
    option forwardfor
    option redispatch
    retry-on conn-failure empty-response
    timeout connect 5s
    timeout http-request {request_timeout}s
    timeout http-keep-alive {request_timeout}s
    timeout client {client_timeout}s
    timeout server 1h
    timeout tunnel 1h
frontend lab
    bind {bind}
    maxconn {max_conns}
    stick-table type ipv6 size 100k expire 30s store conn_cur,http_req_rate(10s)
    tcp-request connection track-sc0 src
    tcp-request connection reject if {{ sc_conn_cur(0) gt {client_conns} }}
    http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt {client_rate} }}
    http-request disable-l7-retry if METH_POST
    http-request set-header X-Forwarded-Proto {scheme}
    default_backend web
backend web
    balance leastconn
    cookie DLLAB_WEB insert indirect nocache httponly{secure}
    option httpchk GET /_stcore/health
{servers}
"""


def config(host: str, port: int, web_ports: list[int], tls_cert: str | None = None, *,
           request_timeout: int = 10, client_timeout: int = 30, max_conns: int = 4000,
           client_conns: int = 500, client_rate: int = 20_000) -> str:
    """HAProxy's configuration: cookie affinity (a browser stays on its process, WebSocket too);
    a request that a dying process refused or dropped unanswered tried again on another (not a
    POST, which may have done something); and the limits docs/CLASSROOM.md explains. Once a
    WebSocket is upgraded, `timeout tunnel` replaces the client timeout."""
    servers = "\n".join(f"    server web{i} 127.0.0.1:{p} check inter 2s cookie web{i}"
                        for i, p in enumerate(web_ports, 1))
    bind = f"{host}:{port}" + (f' ssl crt "{tls_cert}"' if tls_cert else "")
    return HAPROXY_CFG.format(bind=bind, servers=servers, secure=" secure" if tls_cert else "",
                              scheme="https" if tls_cert else "http",  # the app marks its cookie Secure behind TLS
                              request_timeout=request_timeout, client_timeout=client_timeout,
                              max_conns=max_conns, client_conns=client_conns, client_rate=client_rate)


def streamlit_cmd(port: int) -> list[str]:
    """One web process: the app, headless, on 127.0.0.1 (HAProxy, or a test, is what others reach)."""
    return [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
            "--server.address", "127.0.0.1", "--server.port", str(port)]


def healthy(url: str, timeout: float, alive=lambda: True, context: ssl.SSLContext | None = None) -> bool:
    """Whether `url`'s /_stcore/health answers ok within `timeout` seconds (False at once when
    `alive()` turns false: the process behind it has ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2, context=context).read() == b"ok":
                return True
        except OSError:
            time.sleep(0.3)
    return False


def unverified() -> ssl.SSLContext:
    """A TLS context that accepts any certificate: for asking our own HAProxy whether it is up."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


class Supervised:
    """One process of the room, started again whenever it ends, after a pause that doubles while
    it keeps ending soon after its start (a process failing at once must not spin)."""

    def __init__(self, name: str, cmd: list[str], **popen):
        self.name, self.cmd, self.popen = name, cmd, popen
        self.pause, self.due = FIRST_PAUSE_S, None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, **self.popen)
        self.started, self.due = time.monotonic(), None

    def tend(self) -> None:
        """Start it again if its pause is over; if it has just ended, say how and schedule that."""
        now = time.monotonic()
        if self.due is not None:
            if now >= self.due:
                self.start()
            return
        code = self.proc.poll()
        if code is None:
            return
        if now - self.started >= STEADY_S:
            self.pause = FIRST_PAUSE_S
        signame = {s.value: s.name for s in signal.Signals}.get(-code, f"signal {-code}")  # real-time ones have none
        how = f"was killed by {signame}" if code < 0 else f"exited with status {code}"
        print(f"classroom.py: {self.name} {how}; starting it again in {self.pause} s.", file=sys.stderr, flush=True)
        self.due = now + self.pause
        self.pause = min(2 * self.pause, LONGEST_PAUSE_S)

    def alive(self) -> bool:
        return self.proc.poll() is None


def refusal(args) -> str | None:
    """Why the room cannot start as asked (one sentence), or None."""
    token = os.environ.get("DLLAB_TEACHER_TOKEN", "")
    if 0 < len(token) < MIN_TOKEN_CHARS:
        return (f"DLLAB_TEACHER_TOKEN is shorter than {MIN_TOKEN_CHARS} characters: choose a longer one "
                "(or unset it to turn the teacher's view off).")
    if args.tls_cert and not Path(args.tls_cert).is_file():
        return f"The TLS certificate {args.tls_cert} is not a file (a PEM with the certificate and its key)."
    if not Path(args.haproxy).exists():
        return "HAProxy is not installed: apt-get install haproxy (see docs/CLASSROOM.md)."
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--web", type=int, default=2, help="Streamlit processes (default 2)")
    parser.add_argument("--port", type=int, default=8501, help="the port learners open (default 8501)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for a room)")
    parser.add_argument("--ray", metavar="ADDRESS", help="train on this Ray cluster instead of local workers")
    parser.add_argument("--haproxy", default=shutil.which("haproxy") or "/usr/sbin/haproxy")
    parser.add_argument("--tls-cert", metavar="PEM", help="serve https: a PEM file with the certificate and key")
    limits = parser.add_argument_group("limits (docs/CLASSROOM.md says why these defaults)")
    limits.add_argument("--request-timeout", type=int, default=10, metavar="S",
                        help="seconds for a request's head to arrive, and for an idle connection's next one")
    limits.add_argument("--client-timeout", type=int, default=30, metavar="S",
                        help="seconds a client may stay silent mid-request (WebSockets: 1 h)")
    limits.add_argument("--max-conns", type=int, default=4000, help="connections HAProxy holds at once")
    limits.add_argument("--client-conns", type=int, default=500, help="connections from one address at once")
    limits.add_argument("--client-rate", type=int, default=20_000, help="requests from one address per 10 s")
    args = parser.parse_args(argv)
    if why := refusal(args):
        print(why, file=sys.stderr)
        return 2

    cores = os.cpu_count() or 1
    env = os.environ | {
        "DLLAB_WORKERS": os.environ.get("DLLAB_WORKERS", str(max(1, cores // args.web))),
        "DLLAB_RUN_STORE": os.environ.get("DLLAB_RUN_STORE",
                                          str(Path.home() / ".cache" / "deep-learning-lab" / "runs")),
    }
    if args.ray:
        env |= {"DLLAB_EXECUTOR": "ray", "DLLAB_RAY_ADDRESS": args.ray}
    web_ports = [args.port + 10 + i for i in range(args.web)]
    room: list[Supervised] = []
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    with tempfile.TemporaryDirectory(prefix="dllab-haproxy-") as tmp:
        try:
            for i, p in enumerate(web_ports, 1):
                room.append(Supervised(f"web process web{i} (port {p})", streamlit_cmd(p), cwd=ROOT, env=env))
            if not all(healthy(f"http://127.0.0.1:{p}", 90, lambda w=w: w.alive() and not stop["now"])
                       for w, p in zip(room, web_ports)):
                if stop["now"]:
                    return 0
                print("A web process did not start; see its output above.", file=sys.stderr)
                return 1
            cfg = Path(tmp) / "haproxy.cfg"
            tls_cert = args.tls_cert and str(Path(args.tls_cert).resolve())
            cfg.write_text(config(args.host, args.port, web_ports, tls_cert,
                                  request_timeout=args.request_timeout, client_timeout=args.client_timeout,
                                  max_conns=args.max_conns, client_conns=args.client_conns,
                                  client_rate=args.client_rate))
            room.append(Supervised("HAProxy", [args.haproxy, "-f", str(cfg), "-db"], cwd=tmp))
            scheme = "https" if tls_cert else "http"
            if not healthy(f"{scheme}://127.0.0.1:{args.port}", 30, room[-1].alive,
                           unverified() if tls_cert else None):
                print("HAProxy did not start.", file=sys.stderr)
                return 1
            print(f"Deep Learning Lab for a classroom: {scheme}://{args.host}:{args.port} "
                  f"({args.web} web processes, "
                  f"{'Ray at ' + args.ray if args.ray else env['DLLAB_WORKERS'] + ' training workers each'})",
                  flush=True)
            while not stop["now"]:
                for w in room:
                    w.tend()
                time.sleep(0.2)
            return 0
        finally:
            for w in reversed(room):  # the proxy first, then each web process stops its workers
                if w.alive():
                    w.proc.terminate()
            for w in room:
                try:
                    w.proc.wait(20)
                except subprocess.TimeoutExpired:
                    w.proc.kill()


if __name__ == "__main__":
    sys.exit(main())
