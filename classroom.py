"""The classroom start: several Streamlit processes behind HAProxy, in one command.

    python classroom.py --web 2 --port 8501 [--host 0.0.0.0] [--ray ADDRESS]

Each web process serves its own learners (HAProxy's cookie keeps a browser on the same
process, WebSockets included) and trains in its own worker processes, so no single
interpreter lock carries the room. All of them share one run store on disk, so a
learner whose reload reaches another process (its process restarted, say) finds their
saved run there. With --ray the web processes send training to a Ray cluster instead
(started beforehand with `ray start --head`). Set DLLAB_TEACHER_TOKEN for the teacher's
view. Ctrl-C (or SIGTERM) stops HAProxy and every web process, each stopping its workers.

The plain `streamlit run app.py` stays the default start: one web process and its pool.
See docs/CLASSROOM.md for the measurements behind the defaults.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent

HAPROXY_CFG = """\
global
    maxconn 4096
defaults
    mode http
    option forwardfor
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
frontend lab
    bind {host}:{port}
    default_backend web
backend web
    balance leastconn
    cookie DLLAB_WEB insert indirect nocache httponly
    option httpchk GET /_stcore/health
{servers}
"""


def config(host: str, port: int, web_ports: list[int]) -> str:
    """HAProxy's configuration: cookie affinity (a browser stays on its process, WebSocket too)."""
    servers = "\n".join(f"    server web{i} 127.0.0.1:{p} check inter 2s cookie web{i}"
                        for i, p in enumerate(web_ports, 1))
    return HAPROXY_CFG.format(host=host, port=port, servers=servers)


def streamlit_cmd(port: int) -> list[str]:
    """One web process: the app, headless, on 127.0.0.1 (HAProxy, or a test, is what others reach)."""
    return [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
            "--server.address", "127.0.0.1", "--server.port", str(port)]


def healthy(url: str, timeout: float, alive=lambda: True) -> bool:
    """Whether `url`'s /_stcore/health answers ok within `timeout` seconds (False at once when
    `alive()` turns false: the process behind it has ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return True
        except OSError:
            time.sleep(0.3)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--web", type=int, default=2, help="Streamlit processes (default 2)")
    parser.add_argument("--port", type=int, default=8501, help="the port learners open (default 8501)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for a room)")
    parser.add_argument("--ray", metavar="ADDRESS", help="train on this Ray cluster instead of local workers")
    parser.add_argument("--haproxy", default=shutil.which("haproxy") or "/usr/sbin/haproxy")
    args = parser.parse_args(argv)
    if not Path(args.haproxy).exists():
        print("HAProxy is not installed: apt-get install haproxy (see docs/CLASSROOM.md).", file=sys.stderr)
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
    procs: list[subprocess.Popen] = []
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    with tempfile.TemporaryDirectory(prefix="dllab-haproxy-") as tmp:
        try:
            for p in web_ports:
                procs.append(subprocess.Popen(streamlit_cmd(p), cwd=ROOT, env=env))
            if not all(healthy(f"http://127.0.0.1:{p}", 90) for p in web_ports):
                print("A web process did not start; see its output above.", file=sys.stderr)
                return 1
            cfg = Path(tmp) / "haproxy.cfg"
            cfg.write_text(config(args.host, args.port, web_ports))
            procs.append(subprocess.Popen([args.haproxy, "-f", str(cfg), "-db"], cwd=tmp))
            if not healthy(f"http://127.0.0.1:{args.port}", 30):
                print("HAProxy did not start.", file=sys.stderr)
                return 1
            print(f"Deep Learning Lab for a classroom: http://{args.host}:{args.port} "
                  f"({args.web} web processes, "
                  f"{'Ray at ' + args.ray if args.ray else env['DLLAB_WORKERS'] + ' training workers each'})",
                  flush=True)
            while not stop["now"] and all(p.poll() is None for p in procs):
                time.sleep(0.2)
            return 0 if stop["now"] else 1
        finally:
            for p in reversed(procs):  # the proxy first, then each web process stops its workers
                if p.poll() is None:
                    p.terminate()
            for p in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    sys.exit(main())
