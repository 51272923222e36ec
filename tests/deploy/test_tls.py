"""``rxaudio serve --certfile F --keyfile F``: HTTPS, and one clear line for each bad file."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from rxaudio.errors import ConfigError
from rxaudio.server.tls import server_context, validity

pytestmark = pytest.mark.timeout(120)


def load_conftest() -> Any:
    import importlib.util

    name = "rxaudio_tests_deploy_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("conftest.py"))
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


cf = load_conftest()


def serve(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "rxaudio.apps.cli", "serve", "--port", "0", "--seconds", "0.1"]
    return subprocess.run(
        [*cmd, "--out", str(tmp_path / "out"), *flags],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad-tls")
    good = cf.make_cert(d / "good")
    other = cf.make_cert(d / "other")  # another RSA key: the same kind, not the same key
    ec = cf.make_cert(d / "ec", key="ec:" + str(_ec_params(d)))
    der = d / "cert.der"
    subprocess.run(
        ["openssl", "x509", "-in", str(good.cert), "-outform", "der", "-out", str(der)],
        check=True,
    )
    enc = d / "encrypted.pem"
    subprocess.run(
        [
            "openssl",
            "pkey",
            "-in",
            str(good.key),
            "-aes128",
            "-passout",
            "pass:x",
            "-out",
            str(enc),
        ],
        check=True,
    )
    return {
        "cert": good.cert,
        "key": good.key,
        "other_key": other.key,
        "ec_key": ec.key,
        "der": der,
        "encrypted": enc,
        "missing": d / "no-such.pem",
        "folder": d,
    }


def _ec_params(d: Path) -> Path:
    p = d / "p256.pem"
    subprocess.run(
        ["openssl", "ecparam", "-name", "prime256v1", "-out", str(p)],
        check=True,
        capture_output=True,
    )
    return p


@pytest.mark.parametrize(
    ("cert", "key", "said"),
    [
        ("missing", "key", "--certfile {missing}: cannot read it (No such file or directory)"),
        ("cert", "missing", "--keyfile {missing}: cannot read it (No such file or directory)"),
        ("folder", "key", "--certfile {folder}: cannot read it (Is a directory)"),
        ("der", "key", "is not a PEM certificate"),
        ("key", "key", "is not a PEM certificate"),
        ("cert", "cert", "is not a PEM private key"),
        ("cert", "other_key", "does not match the certificate"),
        ("cert", "ec_key", "does not match the certificate"),
        ("cert", "encrypted", "is encrypted with a passphrase"),
    ],
)
def test_bad_files_give_one_line_and_exit_2(
    tmp_path: Path, files: dict[str, Path], cert: str, key: str, said: str
) -> None:
    r = serve(tmp_path, "--certfile", str(files[cert]), "--keyfile", str(files[key]))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and said.format(**files) in lines[0], r.stderr
    assert r.stdout == ""  # nothing started: no "page at"
    assert not (tmp_path / "out").exists()  # nor the output folder made


@pytest.mark.parametrize(
    ("given", "said"),
    [("--certfile", "--certfile without --keyfile"), ("--keyfile", "--keyfile without --certfile")],
)
def test_one_file_without_the_other_is_refused(
    tmp_path: Path, files: dict[str, Path], given: str, said: str
) -> None:
    r = serve(tmp_path, given, str(files["cert"] if given == "--certfile" else files["key"]))
    assert r.returncode == 2 and said in r.stderr and len(r.stderr.splitlines()) == 1


def test_expired_and_not_yet_valid_certificates_are_named(files: dict[str, Path]) -> None:
    from rxaudio.server import tls

    cert, key = str(files["cert"]), str(files["key"])
    pem = files["cert"].read_bytes()
    m = tls._PEM_CERT.search(pem)
    assert m is not None
    import base64

    start, end = validity(base64.b64decode(m.group(1)))
    assert start <= time.time() <= end and 1.9 * 86400 < end - start < 2.1 * 86400
    assert server_context(cert, key) is not None
    with pytest.raises(ConfigError, match=r"expired on \d{4}-\d\d-\d\d .*renew it"):
        server_context(cert, key, now=end + 60)
    with pytest.raises(ConfigError, match=r"is not valid until .*machine's clock"):
        server_context(cert, key, now=start - 60)


async def test_serve_speaks_https(tmp_path: Path, files: dict[str, Path]) -> None:
    inst = cf.Instance(
        tmp_path / "out",
        "--certfile",
        str(files["cert"]),
        "--keyfile",
        str(files["key"]),
        "--backend",
        "energy",
    )
    try:
        assert inst.scheme == "https"  # the printed URL says so
        base = f"https://127.0.0.1:{inst.port}"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
            async with http.get(base + "/healthz") as r:
                assert r.status == 200
            # a page served over https may open its wss:// WebSocket (Origin https://...)
            ws = await http.ws_connect(base + "/ws", headers={"Origin": base})
            assert (await ws.receive_json(timeout=30))["type"] == "hello"
            await ws.close()
        # plain HTTP on the TLS port gets no page
        async with aiohttp.ClientSession() as plain:
            with pytest.raises(aiohttp.ClientError):
                async with plain.get(f"http://127.0.0.1:{inst.port}/healthz") as r:
                    await r.read()
    finally:
        err = inst.stop()
    assert "Traceback" not in err
