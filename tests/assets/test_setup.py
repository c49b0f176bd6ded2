"""What a newcomer's machine goes through before `make run`: the supported Pythons, the virtualenv, the
hash-checked locks, where PostgreSQL's programs are, and compose.yaml for servers in containers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.support.private_postgres import pg_bin

ROOT = Path(__file__).resolve().parents[2]
FIND_PYTHON = ROOT / "scripts" / "find-python.sh"
VENV_SH = ROOT / "scripts" / "venv.sh"
HERE = f"{sys.version_info.major}.{sys.version_info.minor}"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def run(*argv: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def pins(path: Path) -> dict[str, str]:
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in PIN.findall(path.read_text())}


# --- Python versions: one statement of the range, honoured everywhere -----------------------------------


def test_the_supported_pythons_agree_in_pyproject_ruff_the_finder_and_ci() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == ">=3.11,<3.14"
    assert pyproject["tool"]["ruff"]["target-version"] == "py311"
    assert re.search(r"^SUPPORTED=\(3\.11 3\.12 3\.13\)$", FIND_PYTHON.read_text(), re.MULTILINE)
    assert re.search(r"^  3\.11\|3\.12\|3\.13\) ;;$", VENV_SH.read_text(), re.MULTILINE)
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^OLDEST=3\.11$", ci, re.MULTILINE) and re.search(r"^NEWEST=3\.13$", ci, re.MULTILINE)


def test_find_python_skips_a_shim_that_does_not_run_and_looks_in_pyenv(tmp_path: Path) -> None:
    # pyenv's shims are on the PATH for every version but refuse to run those not selected (exit 127).
    shim = tmp_path / "shims" / f"python{HERE}"
    shim.parent.mkdir()
    shim.write_text("#!/bin/sh\necho 'pyenv: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    real = tmp_path / "pyenv" / "versions" / f"{HERE}.0" / "bin" / f"python{HERE}"
    real.parent.mkdir(parents=True)
    real.symlink_to(getattr(sys, "_base_executable", sys.executable))
    env = {"PATH": f"{shim.parent}:/bin", "PYENV_ROOT": str(tmp_path / "pyenv")}

    found = run("bash", FIND_PYTHON, HERE, env=env)

    assert (found.returncode, found.stdout.strip()) == (0, str(real)), found.stderr


def test_find_python_says_what_to_install_when_no_supported_python_runs(tmp_path: Path) -> None:
    env = {"PATH": f"{tmp_path}:/bin", "PYENV_ROOT": str(tmp_path / "no-pyenv")}
    found = run("bash", FIND_PYTHON, "3.13", env=env)
    assert found.returncode == 1 and found.stdout == ""
    assert "no Python 3.13 found" in found.stderr and "apt-get install" in found.stderr


# --- The virtualenv: rebuilt when broken, or one line that says what to install -------------------------


def test_a_virtualenv_without_pip_is_rebuilt(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    assert run(venv / "bin" / "python", "-m", "pip", "--version").returncode != 0

    made = run("bash", VENV_SH, sys.executable, venv)

    assert made.returncode == 0, made.stderr
    assert "rebuilding" in made.stdout
    assert run(venv / "bin" / "python", "-m", "pip", "--version").returncode == 0


def test_a_python_that_cannot_make_a_virtualenv_with_pip_names_the_debian_package(tmp_path: Path) -> None:
    # Debian's python3.X without python3.X-venv: `-m venv` leaves a folder without pip and fails.
    python = tmp_path / "python"
    python.write_text(
        f'#!/bin/bash\nif [ "$1 $2" = "-m venv" ]; then "{sys.executable}" -m venv --without-pip "$3"\n'
        f'  echo "ensurepip is not available" >&2; exit 1; fi\nexec "{sys.executable}" "$@"\n'
    )
    python.chmod(0o755)
    venv = tmp_path / "venv"

    made = run("bash", VENV_SH, python, venv)

    assert made.returncode == 1
    hint = f"motcua: {python} cannot make a virtualenv with pip; on Debian: "
    hint += f"sudo apt-get install python{HERE}-venv"
    assert made.stderr.strip().splitlines() == [hint]
    assert not venv.exists()


def test_an_unsupported_python_is_refused_by_name(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\necho 3.10\n")
    python.chmod(0o755)
    made = run("bash", VENV_SH, python, tmp_path / "venv")
    assert made.returncode == 1
    assert "supports Python 3.11 to 3.13" in made.stderr and not (tmp_path / "venv").exists()


# --- The locks: complete, hashed, and not behind what people edit --------------------------------------


@pytest.mark.parametrize(
    ("source", "lock"),
    [("requirements.txt", "requirements.lock"), ("requirements-dev.txt", "requirements-dev.lock")],
)
def test_every_pin_people_edit_is_in_its_lock(source: str, lock: str) -> None:
    wanted, locked = pins(ROOT / source), pins(ROOT / lock)
    assert {name: locked.get(name) for name in wanted} == wanted, f"run `make lock` after editing {source}"


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-dev.lock", "requirements-uv.txt"])
def test_every_locked_package_carries_its_hashes(lock: str) -> None:
    requirements = re.findall(r"^[A-Za-z0-9].*?(?=^[A-Za-z0-9]|\Z)", (ROOT / lock).read_text(), re.S | re.M)
    assert requirements
    for requirement in requirements:
        assert PIN.match(requirement) and "--hash=sha256:" in requirement, requirement.splitlines()[0]


def test_the_test_lock_installs_the_same_runtime_as_the_runtime_lock() -> None:
    runtime, dev = pins(ROOT / "requirements.lock"), pins(ROOT / "requirements-dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime
    assert len(runtime) == len(re.findall(r"^[A-Za-z0-9]", (ROOT / "requirements.lock").read_text(), re.M))


# --- The servers -------------------------------------------------------------------------------------


def test_postgresql_programs_are_found_not_assumed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MOTCUA_PG_BIN", str(tmp_path))
    assert pg_bin() == tmp_path
    monkeypatch.delenv("MOTCUA_PG_BIN")
    found = pg_bin()
    assert (found / "initdb").is_file() and (found / "pg_ctl").is_file()
    versions = [int(p.parent.parent.name) for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    if versions:  # Debian's layout: the newest installed server
        assert found == Path(f"/usr/lib/postgresql/{max(versions)}/bin")


def test_compose_runs_both_servers_on_loopback_as_the_defaults_expect() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert set(compose) <= {"name", "services", "volumes", "networks", "configs", "secrets"}
    services = compose["services"]
    assert set(services) == {"rabbitmq", "postgresql"}
    assert re.fullmatch(r"rabbitmq:[\d.]+-management", services["rabbitmq"]["image"])
    assert re.fullmatch(r"postgres:\d+", services["postgresql"]["image"])
    assert services["rabbitmq"]["ports"] == ["127.0.0.1:5672:5672", "127.0.0.1:15672:15672"]
    assert services["postgresql"]["ports"] == ["127.0.0.1:5432:5432"]
    assert services["postgresql"]["environment"] == {"POSTGRES_HOST_AUTH_METHOD": "trust"}
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] == "CMD", name
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in compose["volumes"], f"{name}: {volume} is not declared"
