"""Real deployment parts for the deploy tests: self-signed certificates (the openssl command),
``rxaudio serve`` instances as processes, and Debian's nginx running the documented recipe.

The nginx fixture runs ``docs/deploy/nginx.conf`` itself: it replaces only the public name,
the certificate folder, the listen lines and the instances' addresses (each replacement must
match, so the recipe and this fixture cannot drift apart), and includes it in a small main
configuration of its own: loopback only, its own prefix and temporary folders, no root,
``daemon off``, the error log in a temporary file, stopped at teardown.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "docs" / "deploy" / "nginx.conf"
NAME = "rxaudio.test"  # the public name (Chromium maps it to 127.0.0.1 with a resolver rule)
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60) -> None:
    """Until something accepts on 127.0.0.1:``port`` (bounded only against a hang)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@dataclass
class Certs:
    folder: Path
    cert: Path  # fullchain.pem
    key: Path  # privkey.pem


def make_cert(folder: Path, *, days: int = 2, name: str = NAME, key: str = "rsa:2048") -> Certs:
    """A self-signed certificate for ``name`` (and 127.0.0.1), as ``docs/deploy.md`` makes one."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, pkey = folder / "fullchain.pem", folder / "privkey.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", key, "-nodes", "-days", str(days),
            "-keyout", str(pkey), "-out", str(cert), "-subj", f"/CN={name}",
            "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return Certs(folder, cert, pkey)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_cert(tmp_path_factory.mktemp("tls"))


class Instance:
    """``rxaudio serve`` as a process, on a free loopback port."""

    def __init__(self, out: Path, *flags: str) -> None:
        self.out = out
        cmd = [sys.executable, "-m", "rxaudio.apps.cli", "serve", "--host", "127.0.0.1"]
        self.proc = subprocess.Popen(
            [*cmd, "--port", "0", "--out", str(out), *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"(https?)://127\.0\.0\.1:(\d+)/", line)
        if m is None:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=30)
            raise RuntimeError(f"rxaudio serve did not start: {line!r} {err}")
        self.scheme, self.port = m.group(1), int(m.group(2))

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
        return err


@dataclass
class Proxy:
    """nginx with the recipe in front of instances ``a`` and ``b``."""

    https: int  # nginx's TLS port
    http: int  # its plain port (redirects to HTTPS)
    a: Instance
    b: Instance
    conf: str  # the filled recipe
    error_log: Path

    @property
    def origin(self) -> str:
        return f"https://{NAME}:{self.https}"

    @property
    def headers(self) -> dict[str, str]:
        """What a browser on the public name sends (the test connects to 127.0.0.1)."""
        return {"Host": f"{NAME}:{self.https}", "Origin": self.origin}


def fill_recipe(text: str, *, certs: Path, https: int, http: int, a: int, b: int) -> str:
    """The recipe with this test's names, ports and files (every replacement must match)."""
    swaps = [
        ("/etc/letsencrypt/live/rxaudio.example.org/", f"{certs}/"),
        ("rxaudio.example.org", NAME),
        ("listen 443 ssl;", f"listen 127.0.0.1:{https} ssl;"),
        ("listen [::]:443 ssl;", ""),
        ("listen 80;", f"listen 127.0.0.1:{http};"),
        ("listen [::]:80;", ""),
        ("127.0.0.1:8001", f"127.0.0.1:{a}"),
        ("127.0.0.1:8002", f"127.0.0.1:{b}"),
    ]
    for old, new in swaps:
        assert old in text, f"docs/deploy/nginx.conf no longer has {old!r}; update the fixture"
        text = text.replace(old, new)
    return text


MAIN_CONF = """\
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    include {d}/rxaudio.conf;
}}
"""


@contextlib.contextmanager
def nginx_with_recipe(folder: Path, certs: Certs, a: Instance, b: Instance) -> Iterator[Proxy]:
    """Debian's nginx running the recipe on loopback in front of ``a`` and ``b``."""
    assert os.path.exists(NGINX), "nginx is not installed (scripts/setup.sh installs it)"
    (folder / "tmp").mkdir(parents=True)
    https, http = free_port(), free_port()
    conf = fill_recipe(
        RECIPE.read_text(), certs=certs.folder, https=https, http=http, a=a.port, b=b.port
    )
    (folder / "rxaudio.conf").write_text(conf)
    (folder / "nginx.conf").write_text(MAIN_CONF.format(d=folder))
    log = folder / "error.log"
    proc = subprocess.Popen(
        [NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        try:
            wait_port(https, proc)
        except RuntimeError as exc:
            err = proc.stderr.read().decode() if proc.stderr and proc.poll() is not None else ""
            text = log.read_text() if log.exists() else ""
            raise RuntimeError(f"nginx: {exc}: {err} {text}") from None
        yield Proxy(https, http, a, b, conf, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # graceful: finish the open connections
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


INSTANCE_FLAGS = ("--trusted-proxy", "127.0.0.1", "--allowed-host", NAME, "--backend", "energy")


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[Proxy]:
    """Two ``rxaudio serve`` instances (``a``, ``b``) behind one nginx running the recipe."""
    d = tmp_path_factory.mktemp("deploy")
    a = Instance(d / "out-a", "--instance", "a", "--heartbeat", "2", *INSTANCE_FLAGS)
    try:
        b = Instance(d / "out-b", "--instance", "b", "--heartbeat", "2", *INSTANCE_FLAGS)
    except BaseException:
        a.stop()
        raise
    try:
        with nginx_with_recipe(d / "nginx", certs, a, b) as p:
            yield p
    finally:
        a.stop()
        b.stop()
