"""The shipped gunicorn settings (deploy/gunicorn.conf.py), served by gunicorn itself with a trivial app."""
from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = "def app(environ, start_response):\n    start_response('200 OK', [('Content-Length', '2')])\n    return [b'ok']\n"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_connection_idle_for_a_few_seconds_is_still_served(tmp_path):
    """A client that reuses its connection after a pause gets its answer. With gunicorn's default keep-alive (2 s)
    the server closed such connections as the next request arrived: the load run (bench/load.py, 50 users waiting
    0.5 to 2 s between requests) lost 1 request in 500 to "connection reset" that way."""
    (tmp_path / "trivial.py").write_text(APP)
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-c", str(ROOT / "deploy" / "gunicorn.conf.py"), "--workers",
         "1", "--bind", f"127.0.0.1:{port}", "--pythonpath", str(tmp_path), "trivial:app"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request("GET", "/")
                break
            except OSError:
                connection.close()
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        assert connection.getresponse().read() == b"ok"
        time.sleep(3)  # longer than gunicorn's default keep-alive
        connection.request("GET", "/")
        assert connection.getresponse().read() == b"ok"
        connection.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
