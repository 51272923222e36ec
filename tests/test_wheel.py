"""The package as a user gets it: ``python -m build`` makes an sdist and a wheel (built from that
sdist, the compiled kernel inside); the wheel installs, not editable, into a fresh virtual
environment and runs ``rxaudio --help``, ``rxaudio segment`` on the bundled sample and
``rxaudio serve``'s ``/healthz`` and page from there; without a C compiler the sdist still
installs, on the numpy fallback, and says so once.

Bounded in time (about half a minute) and offline: both builds run once per session with
``--no-isolation`` (the dev extra brings ``build`` and ``setuptools``), and the fresh environment
gets rxaudio only from the wheel (``pip install --no-deps --no-index``) while its dependencies
come from this test run's own environment through a ``.pth`` path entry. Plain path entries do
not run the ``.pth`` files they point at, so the editable rxaudio of the development environment
stays invisible there; each test checks that ``rxaudio`` was imported from the fresh
environment.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import sysconfig
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

# what a user's install needs inside the wheel, besides the Python modules
WHEEL_MUST_HOLD = [
    "rxaudio/py.typed",
    "rxaudio/data/speech_16k.wav",
    "rxaudio/data/speech_16k.json",
    "rxaudio/pipeline/elements.json",
    "rxaudio/apps/web/index.html",
    "rxaudio/apps/web/app.js",
    "rxaudio/apps/web/worklet.js",
    "rxaudio/apps/web/style.css",
    "rxaudio/vad/models/silero_vad.onnx",
    "rxaudio/vad/models/silero_vad_16k_sequence.onnx",
    "rxaudio/vad/models/LICENSE",
    "rxaudio/vad/models/SOURCE.md",
    "rxaudio/dsp/_melkernel.pyi",
]


PIP = [sys.executable, "-m", "pip", "--python"]  # this environment's pip, into another one
PIP_OFFLINE = ["--no-deps", "--no-index", "--no-build-isolation", "--no-cache-dir"]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would point Python at the source tree."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "RXAUDIO_NO_COMPILED")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class Dist:
    wheel: Path
    sdist: Path


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    pytest.importorskip("build", reason="needs the build package (the dev extra)")
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env(),
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (wheel,) = out.glob("rxaudio-*.whl")
    (sdist,) = out.glob("rxaudio-*.tar.gz")
    return Dist(wheel, sdist)


@dataclass
class Venv:
    root: Path
    python: Path
    site: Path

    def bin(self, name: str) -> str:
        return str(self.root / "bin" / name)

    def run(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,  # not the source tree: `python -c` puts its cwd on sys.path
            env=clean_env(**env),
        )


def fresh_venv(where: Path) -> Venv:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # the dependencies: this environment's site-packages, after the fresh one on sys.path
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_rxaudio_test_deps.pth").write_text("".join(f"{p}\n" for p in sorted(deps)))
    return Venv(where, python, site)


def pip_install(venv: Venv, target: Path, **env: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [*PIP, str(venv.python), "install", "-v", *PIP_OFFLINE, str(target)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=venv.root,
        env=clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1", **env),
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def assert_installed_from(venv: Venv) -> None:
    r = venv.run(
        str(venv.python),
        "-c",
        "import rxaudio, rxaudio.vad.silero as s; print(rxaudio.__file__); print(s.MODELS_DIR)",
    )
    assert r.returncode == 0, r.stderr
    module, models = r.stdout.split()
    assert module == str(venv.site / "rxaudio" / "__init__.py")
    assert models == str(venv.site / "rxaudio" / "vad" / "models")
    assert not list(venv.site.glob("__editable__*rxaudio*")), "an editable install"


@pytest.fixture(scope="session")
def wheel_venv(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    venv = fresh_venv(tmp_path_factory.mktemp("wheel") / "venv")
    pip_install(venv, dist.wheel)
    assert_installed_from(venv)
    return venv


def test_the_wheel_holds_the_kernel_models_page_and_sample(dist: Dist) -> None:
    names = set(zipfile.ZipFile(dist.wheel).namelist())
    missing = [n for n in WHEEL_MUST_HOLD if n not in names]
    assert not missing, f"missing from the wheel: {missing}"
    assert [n for n in names if re.fullmatch(r"rxaudio/dsp/_melkernel\..*\.so", n)], names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "scripts/"))]
    meta = zipfile.ZipFile(dist.wheel).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))
    )
    requires = [
        line.split(":", 1)[1].strip()
        for line in meta.decode().splitlines()
        if line.startswith("Requires-Dist:")
    ]
    # no torch on the default path: not in the base requirements nor in the vad extra
    default = [r for r in requires if "extra ==" not in r or 'extra == "vad"' in r]
    assert default and not [r for r in default if re.match(r"(torch|silero-vad)\b", r)], default
    torch_extra = [r for r in requires if 'extra == "silero-torch"' in r]
    assert any(r.startswith("torch") for r in torch_extra), requires
    assert any(r.startswith("silero-vad") for r in torch_extra), requires
    sdist_names = subprocess.run(
        ["tar", "tzf", str(dist.sdist)], capture_output=True, text=True, check=True
    ).stdout
    for must in ("setup.py", "pyproject.toml", "rxaudio/dsp/_melkernel.c", *WHEEL_MUST_HOLD):
        assert f"/{must}\n" in sdist_names, f"missing from the sdist: {must}"


def test_the_installed_wheel_runs_help_and_segment(wheel_venv: Venv, tmp_path: Path) -> None:
    r = wheel_venv.run(wheel_venv.bin("rxaudio"), "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: rxaudio")
    sample = wheel_venv.site / "rxaudio" / "data" / "speech_16k.wav"
    out = tmp_path / "cut"
    r = wheel_venv.run(
        wheel_venv.bin("rxaudio"), "segment", "--no-progress", "--out", str(out), str(sample)
    )
    assert r.returncode == 0, r.stderr
    assert "7 utterances" in r.stdout + r.stderr
    assert len(list(out.glob("speech_16k_*.wav"))) == 7
    # the compiled kernel came with the wheel, and no fallback notice was printed
    r = wheel_venv.run(
        str(wheel_venv.python),
        "-c",
        "from rxaudio.dsp.features import compiled_module as c; print(c().__file__)",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith(str(wheel_venv.site / "rxaudio" / "dsp" / "_melkernel"))
    assert "numpy fallback" not in r.stderr


@pytest.fixture
def served(wheel_venv: Venv, tmp_path: Path) -> Iterator[str]:
    proc = subprocess.Popen(
        [wheel_venv.bin("rxaudio"), "serve", "--port", "0", "--out", str(tmp_path), "--token", "t"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=wheel_venv.root,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once listening
        m = re.match(r"rxaudio serve: page at (http://127\.0\.0\.1:\d+)/", line)
        assert m, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        yield m.group(1)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    assert proc.returncode == 0


def test_the_installed_wheel_serves_healthz_and_the_page(served: str, wheel_venv: Venv) -> None:
    with urllib.request.urlopen(served + "/healthz", timeout=30) as resp:
        assert resp.status == 200
    with urllib.request.urlopen(served + "/?token=t", timeout=30) as resp:
        assert resp.status == 200
        page = resp.read()
    title = re.search(rb"<title>.*?</title>", page)
    shipped = (wheel_venv.site / "rxaudio" / "apps" / "web" / "index.html").read_bytes()
    assert title and title.group(0) in shipped


def test_the_sdist_installs_without_a_compiler_on_the_numpy_fallback(
    dist: Dist, tmp_path: Path
) -> None:
    venv = fresh_venv(tmp_path / "venv")
    r = pip_install(venv, dist.sdist, CC="/bin/false")
    said = (r.stdout + r.stderr).count("rxaudio: the C feature kernel (rxaudio/dsp/_melkernel.c)")
    assert said == 1, r.stdout[-3000:] + r.stderr[-3000:]
    assert_installed_from(venv)
    assert not list((venv.site / "rxaudio" / "dsp").glob("_melkernel*.so"))
    code = (
        "import numpy as np\n"
        "from rxaudio.dsp.features import compiled_module, SpectrogramKernel\n"
        "assert compiled_module() is None and compiled_module() is None\n"
        "k = SpectrogramKernel(16000, 512, 160, kind='power')\n"
        "start, rows = k.push(np.ones(16000, dtype=np.float32))\n"
        "print(k.compiled is None, rows.shape[0] > 90)\n"
    )
    r = venv.run(str(venv.python), "-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True"]
    assert r.stderr.count("numpy fallback") == 1, r.stderr  # said once per process
