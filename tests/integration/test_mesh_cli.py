"""`mesh token` run as a person runs it, a subprocess in some folder: it signs with the
key pair the mesh trusts or fails saying where it looked, never makes up a key, and
mints no token for a subject, role or lifetime the services would refuse."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mesh.auth import USER_ID_MAX, TokenVerifier, ensure_keys

# Variables that name keys or a project; each test sets the ones it is about.
LOOKUP_VARIABLES = ("JWT_PRIVATE_KEY_FILE", "MESH_LOCAL_DATA_DIR", "SWITCHBOARD_ROOT")


def mesh_token(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in LOOKUP_VARIABLES}
    return subprocess.run(
        [sys.executable, "-m", "mesh.cli", "token", *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def verified_subject(token: str, keys: Path) -> tuple[str, frozenset[str]]:
    verifier = TokenVerifier.from_file(keys / "jwt.pub", "switchboard", "switchboard")
    principal = verifier.verify(f"Bearer {token}")
    return principal.user_id, principal.roles


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A checkout whose mesh ran once: .data/keys holds the pair its services trust."""
    root = tmp_path / "checkout"
    ensure_keys(root / ".data" / "keys" / "jwt.key", root / ".data" / "keys" / "jwt.pub")
    return root


@pytest.fixture
def empty_data_dir(tmp_path: Path) -> Path:
    """A data directory of a mesh that never ran: no keys."""
    path = tmp_path / "never-ran"
    path.mkdir()
    return path


def test_token_signs_with_the_keys_of_the_project_found_from_a_subfolder(project: Path) -> None:
    cwd = project / "docs" / "deep"
    cwd.mkdir(parents=True)

    result = mesh_token(cwd, "--user", "alice", "--role", "customer", MESH_LOCAL_DATA_DIR="")

    assert result.returncode == 0, result.stderr
    assert verified_subject(result.stdout.strip(), project / ".data" / "keys") == ("alice", {"customer"})


def test_token_signs_with_an_explicit_key_file_from_any_folder(project: Path, tmp_path: Path) -> None:
    key = project / ".data" / "keys" / "jwt.key"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    by_flag = mesh_token(elsewhere, "--user", "bob", "--role", "advisor", "--key-file", str(key))
    by_env = mesh_token(elsewhere, "--user", "bob", "--role", "advisor", JWT_PRIVATE_KEY_FILE=str(key))

    for result in (by_flag, by_env):
        assert result.returncode == 0, result.stderr
        assert verified_subject(result.stdout.strip(), key.parent) == ("bob", {"advisor"})


def test_token_without_keys_fails_saying_where_it_looked_and_creates_none(
    empty_data_dir: Path, tmp_path: Path
) -> None:
    cwd = tmp_path / "outside"
    cwd.mkdir()

    result = mesh_token(cwd, "--user", "alice", "--role", "customer", MESH_LOCAL_DATA_DIR=str(empty_data_dir))

    assert result.returncode != 0
    assert result.stdout == ""
    assert "no signing key" in result.stderr and str(empty_data_dir) in result.stderr
    assert list(empty_data_dir.iterdir()) == [] and list(cwd.iterdir()) == []


def test_token_with_a_named_key_that_is_missing_never_falls_back(project: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "jwt.key"

    by_flag = mesh_token(project, "--user", "alice", "--role", "customer", "--key-file", str(missing))
    by_env = mesh_token(project, "--user", "alice", "--role", "customer", JWT_PRIVATE_KEY_FILE=str(missing))

    for result in (by_flag, by_env):
        assert result.returncode != 0 and result.stdout == ""
        assert f"no signing key at {missing}" in result.stderr
    assert not missing.parent.exists()


@pytest.mark.parametrize(
    "user",
    ["", " ", "al ice", "alice\n", "../etc", "a/b", "-alice", "ålice", "a" * (USER_ID_MAX + 1), "al\tice"],
)
def test_token_refuses_a_subject_the_services_would_not_take(project: Path, user: str) -> None:
    result = mesh_token(project, "--user", user, "--role", "customer")

    assert result.returncode == 2
    assert result.stdout == ""
    assert "--user" in result.stderr


def test_token_accepts_the_longest_allowed_subject(project: Path) -> None:
    user = "u" * USER_ID_MAX
    result = mesh_token(project, "--user", user, "--role", "customer")

    assert result.returncode == 0, result.stderr
    assert verified_subject(result.stdout.strip(), project / ".data" / "keys")[0] == user


@pytest.mark.parametrize(
    "args",
    [
        ["--user", "alice"],  # no role
        ["--user", "alice", "--role", "superuser"],
        ["--user", "alice", "--role", "customer", "--role", "root"],
        ["--role", "customer"],  # no subject
        ["--user", "alice", "--role", "customer", "--ttl", "0"],
        ["--user", "alice", "--role", "customer", "--ttl", "-5"],
        ["--user", "alice", "--role", "customer", "--ttl", "nan"],
        ["--user", "alice", "--role", "customer", "--audience", ""],
    ],
    ids=["no-role", "unknown-role", "one-unknown", "no-user", "ttl-0", "ttl-negative", "ttl-nan", "no-aud"],
)
def test_token_refuses_roles_and_claims_that_are_not_known(project: Path, args: list[str]) -> None:
    result = mesh_token(project, *args)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip()
