"""What ships must run: the wheel the Dockerfile builds (`pip wheel .`), installed with
its declared dependencies into a clean virtualenv, starts every service outside the
source tree (no checkout on sys.path), against the embedded store and the broker."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mesh.processes import spawn
from mesh.topology import SERVICES
from tests.support.processes import ROOT, STARTED, ServiceProcess


@dataclass
class InstalledWheel:
    """A virtualenv holding only the built wheel and what its metadata requires."""

    python: Path
    wheel: Path
    workdir: Path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> InstalledWheel:
    base = tmp_path_factory.mktemp("artifact")
    # The build context the Dockerfile copies, and nothing else (no stale build/ folder).
    source = base / "src"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    for folder in ("mesh", "gen", *(spec.module for spec in SERVICES)):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    dist = base / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(source)],
        check=True,
        cwd=base,
    )
    (wheel,) = dist.glob("switchboard-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(base / "venv")], check=True)
    python = base / "venv" / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], check=True, cwd=base)
    workdir = base / "work"  # a directory with no source tree in it
    workdir.mkdir()
    return InstalledWheel(python, wheel, workdir)


@dataclass
class WheelServiceProcess(ServiceProcess):
    """A service started with the artifact's interpreter, from a directory outside the checkout."""

    python: Path = Path(sys.executable)
    workdir: Path = Path("/")

    def _spawn(self) -> None:
        self.process = spawn(
            [str(self.python), "-m", self.module],
            log_path=self.log_path,
            env={**self.env, "GRPC_PORT": str(self.port), "PYTHONUNBUFFERED": "1", "PYTHONPATH": ""},
            cwd=self.workdir,
        )
        STARTED.append(self.process)


def test_installed_wheel_imports_the_services_from_site_packages_not_the_checkout(
    installed: InstalledWheel,
) -> None:
    probe = "import mesh, scheduler_svc; print(mesh.__file__); print(scheduler_svc.__file__)"
    out = subprocess.run(
        [str(installed.python), "-c", probe],
        check=True,
        capture_output=True,
        text=True,
        cwd=installed.workdir,
    ).stdout.split()
    assert out and all("site-packages" in path and not path.startswith(str(ROOT) + "/mesh") for path in out)


@pytest.fixture
def wheel_service() -> Iterator[list[WheelServiceProcess]]:
    """The processes a test started from the wheel, stopped afterwards."""
    started: list[WheelServiceProcess] = []
    yield started
    for process in started:
        process.stop()


@pytest.mark.parametrize("module", [spec.module for spec in SERVICES])
def test_every_service_starts_serving_from_the_installed_wheel(
    module: str,
    installed: InstalledWheel,
    service_env: dict[str, str],
    tmp_path: Path,
    wheel_service: list[WheelServiceProcess],
) -> None:
    process = WheelServiceProcess(
        module, dict(service_env), tmp_path / "logs", python=installed.python, workdir=installed.workdir
    )
    wheel_service.append(process)
    process.start(timeout_s=60)
    assert process.health() == "SERVING"
