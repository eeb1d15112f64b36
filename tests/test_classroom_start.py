"""The classroom start's guards (classroom.py): what it refuses before starting, how it paces
restarting a process that keeps ending, and what its HAProxy holds against one client
(half-sent requests, too many connections or requests from one address) and offers (TLS).
Attacks come from other loopback addresses (127.0.0.2, .3), which Linux routes like
127.0.0.1, so the limits per address leave the test's own requests be.
"""
from __future__ import annotations

import contextlib
import http.client
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from types import SimpleNamespace

import pytest

import classroom
from benchmarks.browser import free_port, output, spawn, wait_healthy
from classroom import LONGEST_PAUSE_S, MIN_TOKEN_CHARS, ROOT, STEADY_S, Supervised, healthy, unverified

REQUEST_TIMEOUT = 3  # s: long enough to look at the stalled sockets first, short enough to wait for
MAX_CONNS, CLIENT_CONNS, CLIENT_RATE = 300, 100, 20


def _start(tmp_path, *args: str, env: dict | None = None) -> tuple[int, subprocess.Popen]:
    if shutil.which("haproxy") is None and not os.path.exists("/usr/sbin/haproxy"):
        if os.environ.get("CI"):
            pytest.fail("HAProxy is missing; .ci/run should have installed it")
        pytest.skip("HAProxy not installed (apt-get install haproxy)")
    port = free_port()
    proc = spawn([sys.executable, "classroom.py", "--web", "1", "--port", str(port), *args],
                 {"DLLAB_RUN_STORE": str(tmp_path)} | (env or {}))
    return port, proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    os.unlink(proc.log_path)


@pytest.fixture(scope="module")
def limited_room(tmp_path_factory):
    """A one-process room with small limits, so that a test can reach them (and a teacher's
    token of just the least length, which it accepts)."""
    port, proc = _start(tmp_path_factory.mktemp("store"), "--request-timeout", str(REQUEST_TIMEOUT),
                        "--max-conns", str(MAX_CONNS), "--client-conns", str(CLIENT_CONNS),
                        "--client-rate", str(CLIENT_RATE), env={"DLLAB_TEACHER_TOKEN": "t" * MIN_TOKEN_CHARS})
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, 120)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield port, proc
    _stop(proc)


def _closed(sock: socket.socket) -> bytes | None:
    """What a socket the server has closed received (b"" for nothing or a reset), or None while
    it is still open with nothing to read."""
    if not select.select([sock], [], [], 0)[0]:
        return None
    try:
        return sock.recv(4096)
    except ConnectionError:
        return b""


def test_half_sent_requests_neither_shut_the_room_out_nor_stay(limited_room):
    """As many stalled requests from one address as the room holds connections: that address
    gets its share, the rest are refused at once, the room answers others meanwhile, and the
    stalled ones are answered 408 (HAProxy's request timeout) and closed. Before, they stayed
    an hour, and as many from one address as the room held kept everyone else waiting."""
    port, _ = limited_room
    socks = []
    try:
        for _ in range(MAX_CONNS):
            sock = socket.socket()
            sock.bind(("127.0.0.2", 0))
            sock.connect(("127.0.0.1", port))
            socks.append(sock)
            with contextlib.suppress(ConnectionError):  # already refused: over the address's share
                sock.sendall(b"GET /_stcore/health HTTP/1.1\r\nHost: lab\r\nX-Half: ")
        opened = time.monotonic()
        stalled = list(socks)
        while len(stalled) > CLIENT_CONNS and time.monotonic() < opened + REQUEST_TIMEOUT / 2:
            stalled = [s for s in stalled if _closed(s) is None]
            time.sleep(0.05)
        assert len(stalled) == CLIENT_CONNS  # the address's share; the others were refused

        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=10).read() == b"ok"
        assert [_closed(s) for s in stalled] == [None] * CLIENT_CONNS  # answered while they stall

        answers = {}
        while len(answers) < CLIENT_CONNS and time.monotonic() < opened + REQUEST_TIMEOUT + 10:
            answers |= {s: got for s in stalled if s not in answers and (got := _closed(s)) is not None}
            time.sleep(0.1)
        assert len(answers) == CLIENT_CONNS
        assert {got.split(b"\r\n")[0] for got in answers.values()} == {b"HTTP/1.1 408 Request Time-out"}
    finally:
        for sock in socks:
            sock.close()


def test_one_address_over_its_request_rate_is_refused_and_others_are_not(limited_room):
    port, _ = limited_room
    statuses = []
    for _ in range(CLIENT_RATE + 5):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=("127.0.0.3", 0))
        conn.request("GET", "/_stcore/health")
        statuses.append(conn.getresponse().status)
        conn.close()
    assert statuses == [200] * CLIENT_RATE + [429] * 5
    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=10).read() == b"ok"


def test_the_room_serves_https_with_the_certificate_given(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: nothing here makes the test's self-signed certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    pem = tmp_path / "lab.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    port, proc = _start(tmp_path, "--tls-cert", str(pem))
    try:
        url = f"https://127.0.0.1:{port}"
        assert healthy(url, 120, lambda: proc.poll() is None, unverified()), output(proc)[-3000:]
        answer = urllib.request.urlopen(f"{url}/_stcore/health", timeout=10, context=unverified())
        assert answer.read() == b"ok"
        affinity = next(c for c in answer.headers.get_all("Set-Cookie") if c.startswith("DLLAB_WEB="))
        assert "secure" in affinity.lower()  # the affinity cookie is never sent over plain http
        page = urllib.request.urlopen(f"{url}/", timeout=30, context=unverified())
        secret = next(c for c in page.headers.get_all("Set-Cookie") if c.startswith("dllab_browser="))
        assert "Secure" in secret and "HttpOnly" in secret  # the browser's secret, as HAProxy says https
        with pytest.raises(OSError):  # plain http is not served
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5).read()
    finally:
        _stop(proc)


@pytest.mark.parametrize(("env", "args", "says"), [
    ({"DLLAB_TEACHER_TOKEN": "x" * (MIN_TOKEN_CHARS - 1)}, [], f"shorter than {MIN_TOKEN_CHARS} characters"),
    ({}, ["--tls-cert", "/nonexistent/lab.pem"], "is not a file"),
])
def test_the_room_refuses_to_start_with_a_short_token_or_a_missing_certificate(env, args, says):
    without_token = {k: v for k, v in os.environ.items() if k != "DLLAB_TEACHER_TOKEN"}
    done = subprocess.run([sys.executable, "classroom.py", "--port", str(free_port()), *args],
                          cwd=ROOT, env=without_token | env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and says in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""


def test_a_process_that_keeps_ending_is_restarted_after_a_doubling_pause(monkeypatch, capsys):
    """1, 2, 4 ... s, capped; back to 1 s for a process that had run steadily; one line each."""
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(classroom, "time", SimpleNamespace(monotonic=lambda: clock.now))
    toy = Supervised("toy", [sys.executable, "-c", "raise SystemExit(3)"])
    pauses = []
    for _ in range(7):
        toy.proc.wait()
        toy.tend()  # sees it ended
        pauses.append(toy.due - clock.now)
        clock.now = toy.due
        toy.tend()  # starts it again
    assert pauses == [1, 2, 4, 8, 16, LONGEST_PAUSE_S, LONGEST_PAUSE_S]
    toy.proc.wait()
    clock.now += STEADY_S
    toy.tend()
    assert toy.due - clock.now == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 8 and lines[0] == "classroom.py: toy exited with status 3; starting it again in 1 s."
