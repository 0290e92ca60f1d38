from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bundlekit.keys import GeneratedKey, KeyType, generate_key

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SAMPLE_OTLP = sorted((SAMPLES / "otlp").glob("*.binpb"))
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[KeyType, GeneratedKey]:
    """One unencrypted key pair of every supported type."""
    folder = tmp_path_factory.mktemp("keys")
    return {kind: generate_key(folder / kind.value, kind) for kind in KeyType}


@pytest.fixture(scope="session")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> GeneratedKey:
    """A valid key that no test trusts."""
    return generate_key(tmp_path_factory.mktemp("untrusted") / "stranger", KeyType.ED25519)


@pytest.fixture
def run_cli() -> Callable[..., tuple[int, str, str]]:
    """Invoke the CLI in-process; returns (exit code, stdout, stderr)."""
    from bundlekit.cli.app import app

    runner = CliRunner()

    def run(*args: str | os.PathLike[str]) -> tuple[int, str, str]:
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return run


@pytest.fixture(scope="session")
def signed_bundle(
    tmp_path_factory: pytest.TempPathFactory, keys: dict[KeyType, GeneratedKey]
) -> Path:
    """A small three-signal bundle signed by the Ed25519 test key; read it, never change it."""
    from tests.bundles import pack_small

    root = tmp_path_factory.mktemp("signed")
    pack_small(root / "in", root / "bundle", keys[KeyType.ED25519])
    return root / "bundle"


@pytest.fixture
def bundle(signed_bundle: Path, tmp_path: Path) -> Path:
    """A fresh copy of :func:`signed_bundle` that a test may tamper with."""
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(signed_bundle, copy)
    return copy
