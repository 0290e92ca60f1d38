"""Inputs that could hang or exhaust the process, and arguments checked at the door.

* FIFOs, devices and sockets named as any user file (OTLP input, attachment,
  config, dashboard, key, trust key) are refused before they are read: a FIFO
  would block the open forever, /dev/zero would never end.  Each test has a
  timeout, so a hang fails it instead of stalling the suite.
* JSON and YAML nested ten thousand deep are refused with an input error
  naming the file, not a RecursionError.
* Custody values that are too long, not UTF-8, or hold control characters
  are usage errors naming the option, before any work is done.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bundlekit.errors import InputError
from bundlekit.limits import DEFAULT_LIMITS
from bundlekit.nesting import check_json_depth, check_yaml_depth
from tests.conftest import ROOT, SAMPLE_OTLP

RunCli = Callable[..., tuple[int, str, str]]
NO_HANG = pytest.mark.timeout(60)

KIND_WORDS = {
    "fifo": "is a FIFO (named pipe), not a regular file",
    "zero": "is a character device, not a regular file",
    "null": "is a character device, not a regular file",
    "socket": "is a socket, not a regular file",
}


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: UNIX socket paths are limited to ~108 bytes."""
    where = Path(tempfile.mkdtemp(prefix="bk-"))
    yield where
    for child in where.iterdir():
        child.unlink()
    where.rmdir()


@pytest.fixture
def special(short_dir: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Path]]:
    """Make a special file of a kind at a name; sockets stay bound for the test's life."""
    sockets: list[socket.socket] = []

    def make(kind: str, name: str = "special") -> Path:
        path = short_dir / name
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "socket":
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(str(path))
            server.listen(1)
            sockets.append(server)
        else:
            os.symlink(f"/dev/{kind}", path)  # the device itself, reached by its name
        return path

    yield make
    for server in sockets:
        server.close()


def _refused(code: int, err: str, kind: str, path: Path) -> None:
    assert code == 2, err
    assert KIND_WORDS[kind] in err, err
    assert str(path) in err, err
    assert "internal error" not in err


@NO_HANG
@pytest.mark.parametrize("kind", sorted(KIND_WORDS))
@pytest.mark.parametrize("role", ["input", "traces", "attach", "config", "dashboard"])
def test_special_file_as_pack_input_is_refused_without_hanging(
    tmp_path: Path, run_cli: RunCli, special: Callable[..., Path], kind: str, role: str
) -> None:
    out = tmp_path / "out"
    if role == "dashboard":
        board = special(kind, "board.json")
        code, _, err = run_cli("pack", SAMPLE_OTLP[0], "--dashboards", board.parent, "--out", out)
        _refused(code, err, kind, board)
    else:
        path = special(kind, "thing")
        args = {
            "input": [path],
            "traces": ["--traces", path],
            "attach": [SAMPLE_OTLP[0], "--attach", path],
            "config": [SAMPLE_OTLP[0], "--config", path],
        }[role]
        code, _, err = run_cli("pack", *args, "--out", out)
        _refused(code, err, kind, path)
    assert not out.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


@NO_HANG
@pytest.mark.parametrize("kind", sorted(KIND_WORDS))
@pytest.mark.parametrize("role", ["pack-key", "sign-key", "verify-key", "trust-dir", "inspect-key"])
def test_special_file_as_key_or_trust_is_refused_without_hanging(
    tmp_path: Path,
    run_cli: RunCli,
    special: Callable[..., Path],
    signed_bundle: Path,
    kind: str,
    role: str,
) -> None:
    path = special(kind, "site.pub")
    out = tmp_path / "out"
    args = {
        "pack-key": ["pack", SAMPLE_OTLP[0], "--key", path, "--out", out],
        "sign-key": ["sign", signed_bundle, "--key", path],
        "verify-key": ["verify", signed_bundle, "--key", path],
        "trust-dir": ["verify", signed_bundle, "--trust", path.parent],
        "inspect-key": ["inspect", signed_bundle, "--key", path],
    }[role]
    code, _, err = run_cli(*args)
    _refused(code, err, kind, path)
    assert not out.exists()


# --- nesting --------------------------------------------------------------------------

DEEP = 10_000


@NO_HANG
@pytest.mark.parametrize(
    "text",
    ["[" * DEEP + "]" * DEEP, "a: " + "{b: " * DEEP + "1" + "}" * DEEP],
    ids=["flow-sequences", "flow-mappings"],
)
def test_deeply_nested_yaml_config_is_an_input_error_not_recursion(
    tmp_path: Path, run_cli: RunCli, text: str
) -> None:
    config = tmp_path / "collector.yaml"
    config.write_text(text)
    code, _, err = run_cli("pack", SAMPLE_OTLP[0], "--config", config, "--out", tmp_path / "b")
    assert code == 2, err
    limit = DEFAULT_LIMITS.max_nesting_depth
    assert f"collector config {config} nests deeper than {limit} levels" in err
    assert "Recursion" not in err and "internal error" not in err
    assert not (tmp_path / "b").exists()


@NO_HANG
def test_deeply_nested_dashboard_json_is_an_input_error_not_recursion(
    tmp_path: Path, run_cli: RunCli
) -> None:
    boards = tmp_path / "dashboards"
    boards.mkdir()
    board = boards / "deep.json"
    board.write_text('{"title": "x", "panels": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}")
    code, _, err = run_cli("pack", SAMPLE_OTLP[0], "--dashboards", boards, "--out", tmp_path / "b")
    assert code == 2, err
    assert f"dashboard {board} nests deeper than" in err
    assert "Recursion" not in err and "internal error" not in err
    assert not (tmp_path / "b").exists()


def _json_nested(depth: int) -> bytes:
    return ("[" * depth + "]" * depth).encode()


def test_json_depth_limit_at_its_boundary() -> None:
    limit = DEFAULT_LIMITS.max_nesting_depth
    check_json_depth(_json_nested(limit), limit, Path("d.json"), "dashboard")  # exactly: passes
    json.loads(_json_nested(limit))  # and the stdlib can really load what passes
    with pytest.raises(InputError, match=f"nests deeper than {limit} levels"):
        check_json_depth(_json_nested(limit + 1), limit, Path("d.json"), "dashboard")


def test_json_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"title": "[" * 5000 + '\\"{' * 100, "x": [[1]]}).encode()
    check_json_depth(text, 3, Path("d.json"), "dashboard")
    with pytest.raises(InputError):
        check_json_depth(json.dumps({"x": [[[1]]]}).encode(), 3, Path("d.json"), "dashboard")


def test_yaml_depth_limit_at_its_boundary() -> None:
    import yaml

    limit = DEFAULT_LIMITS.max_nesting_depth
    at_limit = ("[" * limit + "]" * limit).encode()
    check_yaml_depth(at_limit, limit, Path("c.yaml"), "collector config")
    yaml.safe_load(at_limit)  # what passes really loads
    over = ("[" * (limit + 1) + "]" * (limit + 1)).encode()
    with pytest.raises(InputError, match=f"nests deeper than {limit} levels"):
        check_yaml_depth(over, limit, Path("c.yaml"), "collector config")
    block = "".join(f"{'  ' * i}k{i}:\n" for i in range(limit + 1)) + "  " * (limit + 1) + "v\n"
    with pytest.raises(InputError):  # block style counts the same as flow style
        check_yaml_depth(block.encode(), limit, Path("c.yaml"), "collector config")


def test_yaml_alias_chains_count_as_deep_as_they_expand() -> None:
    """``b: &b [*a]`` stacks one level per line without any nesting in the text."""
    lines = ["a0: &a0 [1]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 20)]
    text = "\n".join(lines).encode()
    check_yaml_depth(text, 21, Path("c.yaml"), "collector config")  # mapping + 20 levels
    with pytest.raises(InputError):
        check_yaml_depth(text, 20, Path("c.yaml"), "collector config")


# --- custody arguments ----------------------------------------------------------------

CUSTODY = [
    ("--operator", 256, "operator"),
    ("--case-id", 256, "caseId"),
    ("--reason", 4096, "reason"),
]


def test_custody_caps_agree_with_the_manifest_schema() -> None:
    schema = json.loads((ROOT / "bundlekit" / "schemas" / "manifest.schema.json").read_text())
    found: dict[str, int] = {}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in {"operator", "caseId", "reason"} and isinstance(value, dict):
                    found[key] = value["maxLength"]
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    limits = DEFAULT_LIMITS
    assert found == {
        "operator": limits.max_operator_chars,
        "caseId": limits.max_case_id_chars,
        "reason": limits.max_reason_chars,
    }
    assert [cap for _, cap, _ in CUSTODY] == [found[k] for _, _, k in CUSTODY]


@pytest.mark.parametrize(("option", "cap", "key"), CUSTODY)
def test_custody_value_exactly_at_its_limit_is_packed(
    tmp_path: Path, run_cli: RunCli, option: str, cap: int, key: str
) -> None:
    value = "é" * cap  # characters, not bytes: 2 bytes each in UTF-8
    code, _, err = run_cli("pack", SAMPLE_OTLP[0], option, value, "--out", tmp_path / "b")
    assert code == 0, err
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_bytes())
    assert manifest["predicate"]["custody"][key] == value


@pytest.mark.parametrize(("option", "cap", "key"), CUSTODY)
def test_custody_value_one_over_its_limit_is_a_usage_error_at_the_door(
    tmp_path: Path, run_cli: RunCli, option: str, cap: int, key: str
) -> None:
    missing = tmp_path / "no-such-input.binpb"  # not read: the argument is refused first
    code, _, err = run_cli("pack", missing, option, "x" * (cap + 1), "--out", tmp_path / "b")
    assert code == 2, err
    assert f"error: {option} is {cap + 1} characters; the limit is {cap}" in err
    assert "not found" not in err and "schema" not in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("option", ["--operator", "--case-id", "--reason"])
def test_non_utf8_argument_bytes_are_a_usage_error(tmp_path: Path, option: str) -> None:
    """Undecodable argv bytes reach Python as lone surrogates; they must not reach the manifest."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bundlekit",
            "pack",
            str(SAMPLE_OTLP[0]),
            option.encode(),
            b"caf\xe9-\xff",  # Latin-1, not UTF-8
            "--out",
            str(tmp_path / "b"),
        ],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LC_ALL": "C.UTF-8"},
        timeout=120,
        check=False,
    )
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2, err
    assert f"error: {option} is not valid UTF-8 text" in err
    assert "internal error" not in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("option", "value", "code_point"),
    [
        ("--operator", "mallory\x1b[2J", "U+001B"),
        ("--case-id", "INC-1\nOK", "U+000A"),
        ("--reason", "see ticket\x07", "U+0007"),
        ("--reason", "bell\x9b31m", "U+009B"),  # a C1 control (CSI)
    ],
)
def test_control_characters_in_custody_are_refused(
    tmp_path: Path, run_cli: RunCli, option: str, value: str, code_point: str
) -> None:
    code, _, err = run_cli("pack", SAMPLE_OTLP[0], option, value, "--out", tmp_path / "b")
    assert code == 2, err
    assert f"{option} holds the control character {code_point}" in err
    assert "\x1b" not in err and "\x07" not in err
    assert not (tmp_path / "b").exists()


def test_reason_may_span_lines_and_hold_tabs(tmp_path: Path, run_cli: RunCli) -> None:
    reason = "first line\nsecond\tline"
    code, _, err = run_cli("pack", SAMPLE_OTLP[0], "--reason", reason, "--out", tmp_path / "b")
    assert code == 0, err
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_bytes())
    assert manifest["predicate"]["custody"]["reason"] == reason


@pytest.mark.parametrize("value", ["", "   "])
def test_blank_custody_value_is_refused_not_silently_dropped(
    tmp_path: Path, run_cli: RunCli, value: str
) -> None:
    code, _, err = run_cli("pack", SAMPLE_OTLP[0], "--operator", value, "--out", tmp_path / "b")
    assert code == 2, err
    assert "--operator is empty" in err
