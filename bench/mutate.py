"""A small, offline, AST-based mutation-testing driver for bundlekit.

Why our own and not mutmut: it runs offline with nothing to install, it only
ever writes mutants into throw-away copies of the tree (the working tree is
never touched, even on Ctrl-C), and each module is tested with just the tests
that exercise it, so a full run of the security-critical modules stays short.

For every mutation site in a module the driver writes the mutated module into
a scratch copy of the project, runs the module's pytest selection with
``-x -q -p no:cacheprovider`` under a per-mutant timeout, and records whether
the tests noticed (killed), did not (survived) or hung (timeout, counted as
killed).  Two scratch copies run mutants in parallel (``--jobs``).

Usage (from the project root; see docs/mutation.md)::

    PYTHONPATH=$PWD .venv/bin/python bench/mutate.py            # the 8 target modules
    PYTHONPATH=$PWD .venv/bin/python bench/mutate.py bundlekit/verify/trust.py
    PYTHONPATH=$PWD .venv/bin/python bench/mutate.py --survivors-of bench/mutation-results.json
    PYTHONPATH=$PWD .venv/bin/python bench/mutate.py --list bundlekit/format/dsse.py

Survivors judged equivalent (no input can tell them apart from the original)
are listed, each with its reason, in ``bench/mutation_equivalent.json``; the
kill rate is reported over the non-equivalent mutants.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT_FILE = ROOT / "bench" / "mutation_equivalent.json"
DEFAULT_OUT = ROOT / "bench" / "mutation-results.json"

#: The tests that exercise each target module, fastest and most specific first
#: (``-x`` stops at the first failure, so a well-ordered selection kills fast).
#: Files that do not exist (yet) are skipped, so the table can name test files
#: other branches add.
_VERIFY_TESTS = [
    "tests/test_verify_gaps.py",
    "tests/test_boundaries.py",
    "tests/test_verify.py",
    "tests/test_untrusted_cost.py",
    "tests/test_untrusted_output.py",
]
SELECTIONS: dict[str, list[str]] = {
    "bundlekit/verify/verifier.py": [
        *_VERIFY_TESTS,
        "tests/test_cli.py",
        "tests/test_hostile_archives.py",
        "tests/test_archive_roundtrip.py",
    ],
    "bundlekit/verify/head.py": _VERIFY_TESTS,
    "bundlekit/verify/signatures.py": _VERIFY_TESTS,
    "bundlekit/verify/trust.py": _VERIFY_TESTS,
    "bundlekit/format/directory.py": _VERIFY_TESTS,
    "bundlekit/format/reader.py": [*_VERIFY_TESTS, "tests/test_hostile_archives.py"],
    "bundlekit/format/archive.py": [
        "tests/test_archive_format.py",
        "tests/test_hostile_archives.py",
        "tests/test_bad_bundles.py",
        "tests/test_archive_roundtrip.py",
        "tests/test_golden.py",
        "tests/test_boundaries.py",
    ],
    "bundlekit/convert.py": [
        "tests/test_hostile_archives.py",
        "tests/test_archive_roundtrip.py",
        "tests/test_golden.py",
    ],
    "bundlekit/format/dsse.py": ["tests/test_dsse.py", *_VERIFY_TESTS, "tests/test_fuzz.py"],
    "bundlekit/format/manifest.py": [
        "tests/test_manifest_gaps.py",
        *_VERIFY_TESTS,
        "tests/test_pack.py",
        "tests/test_schema.py",
        "tests/test_fuzz.py",
    ],
    "bundlekit/format/layout.py": [
        "tests/test_manifest_gaps.py",
        *_VERIFY_TESTS,
        "tests/test_pack.py",
        "tests/test_schema.py",
    ],
    "bundlekit/format/segment.py": [
        "tests/test_segment.py",
        "tests/test_segment_gaps.py",
        "tests/test_hostile_segments.py",
        "tests/test_verify.py",
        "tests/test_pack.py",
    ],
}
TARGETS = list(SELECTIONS)

#: Copied into each scratch tree; everything a test reads by relative path.
_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "__pycache__",
    ".hypothesis",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "data",
    "work",
    "mutation-results*.json",
)


# --------------------------------------------------------------------------- mutants


@dataclass
class Mutant:
    module: str
    scope: str
    operator: str
    line: int
    col: int
    end_line: int
    end_col: int
    replacement: str
    original: str  # the original source line(s) the mutation touches, stripped
    mutated: str  # the same line(s) after the mutation, stripped
    key: str = ""
    outcome: str = ""  # killed | survived | timeout | error
    tests: int = 0  # how many tests ran it (those that execute its lines)
    seconds: float = 0.0
    detail: str = ""

    def apply(self, source: str) -> str:
        lines = source.splitlines(keepends=True)
        offsets = [0]
        for text in lines:
            offsets.append(offsets[-1] + len(text.encode("utf-8")))
        data = source.encode("utf-8")
        start = offsets[self.line - 1] + self.col
        end = offsets[self.end_line - 1] + self.end_col
        return (data[:start] + self.replacement.encode("utf-8") + data[end:]).decode("utf-8")


_CMP_SWAP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_CMP_TEXT = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}


def _is_docstring(node: ast.stmt, parent: ast.AST) -> bool:
    body = getattr(parent, "body", None)
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        and isinstance(body, list)
        and bool(body)
        and body[0] is node
    )


def _is_stringy(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str | bytes)
    )


class _Sites(ast.NodeVisitor):
    """Walks a module and yields (node, scope, operator, replacement text)."""

    def __init__(self) -> None:
        self.scope: list[str] = []
        self.found: list[tuple[ast.AST, str, str, str]] = []
        self.skip: set[int] = set()

    def _add(self, node: ast.AST, operator: str, replacement: str) -> None:
        self.found.append((node, ".".join(self.scope) or "<module>", operator, replacement))

    # Scopes, and the parts of a program that are never mutated.
    def _skip_tree(self, node: ast.AST | None) -> None:
        if node is not None:
            self.skip.update(id(n) for n in ast.walk(node))

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        # Argument defaults are API conveniences (compression level, chunk size...);
        # the dataclass fields that carry behaviour (threshold, limits) are still mutated.
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            self._skip_tree(default)
        for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
            self._skip_tree(arg.annotation)
        for star in (node.args.vararg, node.args.kwarg):
            if star is not None:
                self._skip_tree(star.annotation)
        self._skip_tree(node.returns)
        for deco in node.decorator_list:
            self._skip_tree(deco)
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for deco in node.decorator_list:
            self._skip_tree(deco)
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._skip_tree(node.annotation)
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        return

    def visit_Import(self, node: ast.Import) -> None:
        return

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        # f-strings build messages; their inner positions are unreliable on 3.11.
        return

    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return
        self._negate(node.test, "if-negate")
        self.generic_visit(node)

    def visit_While(self, node: ast.While) -> None:
        self._negate(node.test, "while-negate")
        self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self._negate(node.test, "ifexp-negate")
        self.generic_visit(node)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        for cond in node.ifs:
            self._negate(cond, "filter-negate")
        self.generic_visit(node)

    def _negate(self, test: ast.expr, operator: str) -> None:
        if id(test) not in self.skip:
            self._add(test, operator, f"not ({ast.unparse(test)})")

    # Expressions.
    def visit_Compare(self, node: ast.Compare) -> None:
        if id(node) not in self.skip:
            for index, op in enumerate(node.ops):
                new_op = _CMP_SWAP.get(type(op))
                if new_op is None:
                    continue
                mutated = copy.deepcopy(node)
                mutated.ops[index] = new_op()
                name = f"cmp {_CMP_TEXT[type(op)]} -> {_CMP_TEXT[new_op]}"
                self._add(node, name, f"({ast.unparse(mutated)})")
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        if id(node) not in self.skip:
            mutated = copy.deepcopy(node)
            mutated.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            name = "and -> or" if isinstance(node.op, ast.And) else "or -> and"
            self._add(node, name, f"({ast.unparse(mutated)})")
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if id(node) not in self.skip and isinstance(node.op, ast.Not):
            self._add(node, "not removed", f"({ast.unparse(node.operand)})")
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if (
            id(node) not in self.skip
            and isinstance(node.op, ast.Add | ast.Sub)
            and not (_is_stringy(node.left) or _is_stringy(node.right))
        ):
            mutated = copy.deepcopy(node)
            mutated.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
            name = "+ -> -" if isinstance(node.op, ast.Add) else "- -> +"
            self._add(node, name, f"({ast.unparse(mutated)})")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if id(node) in self.skip or isinstance(value, bool) or not isinstance(value, int):
            return
        self._add(node, f"int {value} -> {value + 1}", repr(value + 1))

    # Statements.
    def visit_Return(self, node: ast.Return) -> None:
        value = node.value
        if value is not None and id(node) not in self.skip:
            if isinstance(value, ast.Constant) and isinstance(value.value, bool):
                self._add(
                    node, f"return {value.value} -> {not value.value}", f"return {not value.value}"
                )
            elif not (isinstance(value, ast.Constant) and value.value is None):
                self._add(node, "return -> None", "return None")
        self.generic_visit(node)

    def visit_Raise(self, node: ast.Raise) -> None:
        self._add(node, "raise -> pass", "pass")
        # Do not mutate inside the message of a raise; its arguments are prose.
        self._skip_tree(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Call):
            self._add(node, "call removed", "pass")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._add(node, "augassign removed", "pass")
        self.generic_visit(node)

    def visit_Continue(self, node: ast.Continue) -> None:
        self._add(node, "continue -> break", "break")

    def visit_Break(self, node: ast.Break) -> None:
        self._add(node, "break -> continue", "continue")

    def generic_visit(self, node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt) and _is_docstring(child, node):
                continue
            self.visit(child)


def _line_span(source_lines: list[str], first: int, last: int) -> str:
    return " ".join(s.strip() for s in source_lines[first - 1 : last])


def mutants_of(module: str) -> list[Mutant]:
    """Every mutant of ``module`` (a path relative to ROOT) that compiles and differs."""
    source = (ROOT / module).read_text("utf-8")
    tree = ast.parse(source)
    baseline = ast.dump(tree)
    lines = source.splitlines()
    sites = _Sites()
    sites.visit(tree)
    result: list[Mutant] = []
    seen: dict[str, int] = {}
    for node, scope, operator, replacement in sites.found:
        if id(node) in sites.skip and operator != "raise -> pass":
            continue
        line, col = node.lineno, node.col_offset  # type: ignore[attr-defined]
        end_line, end_col = node.end_lineno, node.end_col_offset  # type: ignore[attr-defined]
        assert end_line is not None and end_col is not None
        mutant = Mutant(
            module=module,
            scope=scope,
            operator=operator,
            line=line,
            col=col,
            end_line=end_line,
            end_col=end_col,
            replacement=replacement,
            original=_line_span(lines, line, end_line),
            mutated="",
        )
        try:
            new_source = mutant.apply(source)
            new_tree = ast.parse(new_source)
        except (SyntaxError, UnicodeDecodeError):
            continue
        if ast.dump(new_tree) == baseline:
            continue
        new_lines = new_source.splitlines()
        mutant.mutated = _line_span(new_lines, line, line + replacement.count("\n"))
        base = f"{module}::{scope}::{operator}::{mutant.original}"
        seen[base] = seen.get(base, 0) + 1
        mutant.key = base if seen[base] == 1 else f"{base}::#{seen[base]}"
        result.append(mutant)
    return result


# --------------------------------------------------------------------------- running


@dataclass
class Worker:
    """One scratch copy of the project, and the test process running in it."""

    path: Path
    proc: subprocess.Popen[bytes] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _pytest_command(selection: list[str], stop_early: bool = True) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        *(["-x"] if stop_early else []),
        "-q",
        "-p",
        "no:cacheprovider",
        "--no-header",
        "-o",
        "addopts=",
        "-W",
        "ignore",
        *selection,
    ]


def _env(worker: Path, write_bytecode: bool, extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(worker)
    env.update(extra or {})
    env["HYPOTHESIS_NO_PLUGINS"] = "1"
    if write_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _run_tests(
    worker: Worker,
    selection: list[str],
    timeout: float,
    write_bytecode: bool = False,
    trace: dict[str, str] | None = None,
) -> tuple[str, float, str]:
    start = time.monotonic()
    args = selection if trace is None else ["-p", "_mutate_trace", *selection]
    with worker.lock:
        worker.proc = subprocess.Popen(
            _pytest_command(args, stop_early=trace is None),
            cwd=worker.path,
            env=_env(worker.path, write_bytecode, trace),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc = worker.proc
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(worker)
        proc.communicate()
        return "timeout", time.monotonic() - start, ""
    finally:
        with worker.lock:
            worker.proc = None
    elapsed = time.monotonic() - start
    tail = out.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    if proc.returncode == 0:
        return "survived", elapsed, tail[0]
    if proc.returncode in (1, 2, 3):  # failed, interrupted (collection error), internal
        return "killed", elapsed, tail[0]
    return "error", elapsed, out.decode("utf-8", "replace")[-2000:]


def _kill(worker: Worker) -> None:
    with worker.lock:
        proc = worker.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def _drop_bytecode(worker: Path, module: str) -> None:
    """Remove the module's cached bytecode, so only its source (original or mutant) is used."""
    target = worker / module
    for pyc in (target.parent / "__pycache__").glob(f"{target.stem}.*.pyc"):
        pyc.unlink()


class Coverage:
    """Which selected tests execute which lines of the module (from bench/_mutate_trace.py)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.order: list[str] = doc["order"]
        self.lines: dict[str, set[int]] = {k: set(v) for k, v in doc["lines"].items()}

    def tests_for(self, first: int, last: int, selection: list[str]) -> list[str]:
        """Node ids to run for a mutant on lines first..last, in collection order.

        Module-level code (import time) concerns every test, and a fixture's code
        may be shared by every test of its file, so those widen the choice.
        """
        wanted = set(range(first, last + 1))
        chosen: set[str] = set()
        for context, lines in self.lines.items():
            if not lines & wanted:
                continue
            kind, _, nodeid = context.partition(" ")
            if kind == "call":
                chosen.add(nodeid)
            elif kind == "setup":
                prefix = nodeid.split("::")[0] + "::"
                chosen.update(n for n in self.order if n.startswith(prefix))
            else:  # <import>, <between>
                return selection
        return [n for n in self.order if n in chosen]


def trace_module(worker: Worker, module: str, selection: list[str]) -> Coverage:
    out = worker.path.parent / "trace.json"
    extra = {
        "BUNDLEKIT_MUTATE_TRACE": str(worker.path / module),
        "BUNDLEKIT_MUTATE_TRACE_OUT": str(out),
        "PYTHONPATH": os.pathsep.join([str(worker.path), str(worker.path / "bench")]),
    }
    outcome, _, tail = _run_tests(worker, selection, 1800, write_bytecode=True, trace=extra)
    if outcome != "survived" or not out.exists():
        raise SystemExit(f"{module}: the selection fails on unmutated code: {tail}")
    return Coverage(json.loads(out.read_text("utf-8")))


def run_module(
    module: str,
    mutants: list[Mutant],
    workers: list[Worker],
    selection: list[str],
    stop: threading.Event,
    log: Any,
    use_coverage: bool = True,
) -> dict[str, Any]:
    original = (ROOT / module).read_text("utf-8")
    for worker in workers:
        (worker.path / module).write_text(original, "utf-8")
    # Baseline: the selection must pass on the unmutated code.  With coverage the traced
    # run is the baseline (slower than a plain run, so the timeout below is generous).
    started = time.monotonic()
    coverage = None
    if use_coverage:
        coverage = trace_module(workers[0], module, selection)
    else:
        outcome, _, tail = _run_tests(workers[0], selection, 1800, write_bytecode=True)
        if outcome != "survived":
            raise SystemExit(f"{module}: the selection fails on unmutated code: {tail}")
    base_seconds = time.monotonic() - started
    for worker in workers[1:]:  # compile the tests' bytecode once in the other copies
        _run_tests(worker, ["--collect-only", *selection], 600, write_bytecode=True)
    for worker in workers:
        _drop_bytecode(worker.path, module)
    timeout = max(20.0, 4 * base_seconds)
    print(
        f"{module}: {len(mutants)} mutants, selection {base_seconds:.1f}s, timeout {timeout:.0f}s",
        file=log,
        flush=True,
    )
    todo: queue.Queue[Mutant] = queue.Queue()
    for mutant in mutants:
        todo.put(mutant)
    done = [0]
    done_lock = threading.Lock()

    def work(worker: Worker) -> None:
        path = worker.path / module
        while not stop.is_set():
            try:
                mutant = todo.get_nowait()
            except queue.Empty:
                return
            tests = selection
            if coverage is not None:
                tests = coverage.tests_for(mutant.line, mutant.end_line, selection)
            if not tests:
                outcome, seconds, detail = "survived", 0.0, "no selected test runs this line"
            else:
                path.write_text(mutant.apply(original), "utf-8")
                try:
                    outcome, seconds, detail = _run_tests(worker, tests, timeout)
                    if outcome == "error" and tests is not selection:  # a node id pytest refused
                        outcome, seconds, detail = _run_tests(worker, selection, timeout)
                finally:
                    path.write_text(original, "utf-8")
            if stop.is_set():
                return
            mutant.outcome, mutant.seconds, mutant.detail = outcome, round(seconds, 2), detail
            mutant.tests = len(tests)
            with done_lock:
                done[0] += 1
                if outcome != "killed":
                    print(
                        f"  [{done[0]}/{len(mutants)}] {outcome.upper()} "
                        f"{module}:{mutant.line} {mutant.operator}: {mutant.mutated}",
                        file=log,
                        flush=True,
                    )

    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in workers]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)
    return {
        "selection": selection,
        "baseline_seconds": round(base_seconds, 2),
        "timeout_seconds": timeout,
        "wall_seconds": round(time.monotonic() - started, 1),
    }


# --------------------------------------------------------------------------- reporting


def load_equivalents(path: Path = EQUIVALENT_FILE) -> dict[str, str]:
    if not path.exists():
        return {}
    items = json.loads(path.read_text("utf-8"))
    return {item["key"]: item["reason"] for item in items}


def summarize(results: dict[str, Any], equivalents: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for module, info in results["modules"].items():
        mutants = info["mutants"]
        outcomes = [m["outcome"] for m in mutants]
        equivalent = [m for m in mutants if m["outcome"] == "survived" and m["key"] in equivalents]
        killed = outcomes.count("killed")
        timeouts = outcomes.count("timeout")
        survived = outcomes.count("survived")
        non_equivalent = len(mutants) - len(equivalent)
        rows.append(
            {
                "module": module.removeprefix("bundlekit/"),
                "mutants": len(mutants),
                "killed": killed,
                "timeouts": timeouts,
                "survived": survived - len(equivalent),
                "equivalent": len(equivalent),
                "errors": outcomes.count("error"),
                "kill_rate": (killed + timeouts) / non_equivalent if non_equivalent else 1.0,
                "seconds": info.get("wall_seconds", 0.0),
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    head = "| module | mutants | killed | timeouts | survived | equivalent | kill rate | time |"
    out = [head, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    total = dict.fromkeys(("mutants", "killed", "timeouts", "survived", "equivalent"), 0)
    seconds = 0.0
    for row in rows:
        out.append(
            f"| {row['module']} | {row['mutants']} | {row['killed']} | {row['timeouts']} | "
            f"{row['survived']} | {row['equivalent']} | {100 * row['kill_rate']:.1f} % | "
            f"{row['seconds']:.0f} s |"
        )
        for name in total:
            total[name] += row[name]
        seconds += row["seconds"]
    non_equivalent = total["mutants"] - total["equivalent"]
    rate = (total["killed"] + total["timeouts"]) / non_equivalent if non_equivalent else 1.0
    out.append(
        f"| **all** | {total['mutants']} | {total['killed']} | {total['timeouts']} | "
        f"{total['survived']} | {total['equivalent']} | **{100 * rate:.1f} %** | {seconds:.0f} s |"
    )
    return "\n".join(out)


def survivors(results: dict[str, Any], equivalents: dict[str, str]) -> Iterator[str]:
    for module, info in results["modules"].items():
        for m in info["mutants"]:
            if m["outcome"] in ("survived", "error"):
                mark = "equivalent" if m["key"] in equivalents else m["outcome"].upper()
                yield (
                    f"{module}:{m['line']} [{mark}] {m['operator']}\n"
                    f"    - {m['original']}\n    + {m['mutated']}"
                )


def compare_table(
    before: dict[str, Any], after: dict[str, Any], equivalents: dict[str, str]
) -> str:
    """Markdown: kill rate per module before and after (for docs/mutation.md)."""
    old = {r["module"]: r for r in summarize(before, equivalents)}
    out = [
        "| module | mutants | equivalent | survivors before | kill rate before "
        "| survivors after | kill rate after |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    sums = dict.fromkeys(("m", "e", "sb", "kb", "sa", "ka"), 0)
    for row in summarize(after, equivalents):
        base = old.get(row["module"])
        if base is None:
            continue
        # The equivalent mutants are the same code in both runs: judge both over the same set.
        equivalent = row["equivalent"]
        base_survived = base["survived"] + base["equivalent"] - equivalent
        denominator = row["mutants"] - equivalent
        base_killed = base["killed"] + base["timeouts"]
        killed = row["killed"] + row["timeouts"]
        out.append(
            f"| {row['module']} | {row['mutants']} | {equivalent} | {base_survived} | "
            f"{100 * base_killed / denominator:.1f} % | {row['survived']} | "
            f"{100 * killed / denominator:.1f} % |"
        )
        for key, value in zip(
            sums,
            (row["mutants"], equivalent, base_survived, base_killed, row["survived"], killed),
            strict=True,
        ):
            sums[key] += value
    denominator = sums["m"] - sums["e"]
    out.append(
        f"| **all** | {sums['m']} | {sums['e']} | {sums['sb']} | "
        f"**{100 * sums['kb'] / denominator:.1f} %** | {sums['sa']} | "
        f"**{100 * sums['ka'] / denominator:.1f} %** |"
    )
    return "\n".join(out)


def equivalent_table(results: dict[str, Any], equivalents: dict[str, str]) -> str:
    out = ["| where | mutant | why it cannot change behaviour |", "| --- | --- | --- |"]
    for module, info in results["modules"].items():
        for m in info["mutants"]:
            if m["outcome"] == "survived" and m["key"] in equivalents:
                out.append(
                    f"| {module.removeprefix('bundlekit/')}:{m['line']} | {m['operator']}: "
                    f"`{m['mutated']}` | {equivalents[m['key']]} |"
                )
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def _selection_for(module: str, tests: list[str] | None, root: Path) -> list[str]:
    chosen = tests or SELECTIONS.get(module) or ["tests"]
    present = [t for t in chosen if (root / t.split("::")[0]).exists()]
    if not present:
        raise SystemExit(f"{module}: none of the selected tests exist: {chosen}")
    return present


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "modules", nargs="*", help=f"module paths (default: {len(TARGETS)} targets)"
    )
    parser.add_argument("--tests", nargs="+", help="pytest selection (default: per module table)")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON file")
    parser.add_argument(
        "--survivors-of",
        type=Path,
        help="re-run only the mutants that survived in this earlier results file",
    )
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument(
        "--no-coverage",
        action="store_true",
        help="run every mutant against the whole selection, not just the tests that run its lines",
    )
    parser.add_argument("--line", type=int, help="only mutants on this line (with one module)")
    parser.add_argument(
        "--from-line", type=int, help="only mutants on or after this line (with one module)"
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("BEFORE", "AFTER"),
        help="print markdown tables (kill rates before/after, equivalents) from two results files",
    )
    args = parser.parse_args(argv)
    if args.compare:
        before, after = (json.loads(p.read_text("utf-8")) for p in args.compare)
        equivalents = load_equivalents()
        print(compare_table(before, after, equivalents))
        print()
        print(equivalent_table(after, equivalents))
        return 0

    modules = args.modules or TARGETS
    wanted: set[str] | None = None
    if args.survivors_of:
        previous = json.loads(args.survivors_of.read_text("utf-8"))
        wanted = {
            m["key"]
            for info in previous["modules"].values()
            for m in info["mutants"]
            if m["outcome"] in ("survived", "error")
        }
        if not args.modules:
            modules = list(previous["modules"])
    plan: dict[str, list[Mutant]] = {}
    for name in modules:
        module = Path(name).as_posix()
        found = mutants_of(module)
        if wanted is not None:
            found = [m for m in found if m.key in wanted]
        if args.line is not None:
            found = [m for m in found if m.line <= args.line <= m.end_line]
        if args.from_line is not None:
            found = [m for m in found if m.line >= args.from_line]
        plan[module] = found
    if args.list:
        for module, found in plan.items():
            for m in found:
                print(f"{module}:{m.line}: {m.operator}: {m.mutated}")
            print(f"{module}: {len(found)} mutants")
        return 0

    stop = threading.Event()
    workers: list[Worker] = []
    results: dict[str, Any] = {
        "command": " ".join(["bench/mutate.py", *(argv if argv is not None else sys.argv[1:])]),
        "python": sys.version.split()[0],
        "jobs": args.jobs,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "modules": {},
    }
    started = time.monotonic()
    try:
        for index in range(max(1, args.jobs)):
            scratch = Path(tempfile.mkdtemp(prefix=f"bundlekit-mutate-{index}-"))
            shutil.copytree(ROOT, scratch / "tree", ignore=_IGNORE)
            workers.append(Worker(scratch / "tree"))
        for module, found in plan.items():
            selection = _selection_for(module, args.tests, workers[0].path)
            info = run_module(
                module, found, workers, selection, stop, sys.stderr, not args.no_coverage
            )
            info["mutants"] = [asdict(m) for m in found]
            results["modules"][module] = info
    except KeyboardInterrupt:
        stop.set()
        for worker in workers:
            _kill(worker)
        print("interrupted; scratch copies removed, working tree untouched", file=sys.stderr)
        return 130
    finally:
        stop.set()
        for worker in workers:
            _kill(worker)
            shutil.rmtree(worker.path.parent, ignore_errors=True)
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    equivalents = load_equivalents()
    rows = summarize(results, equivalents)
    results["summary"] = rows
    args.out.write_text(json.dumps(results, indent=1) + "\n", "utf-8")
    print()
    print(format_table(rows))
    print(f"\nwall time {results['wall_seconds']:.0f} s; results in {args.out}")
    listed = list(survivors(results, equivalents))
    if listed:
        print("\nsurvivors:")
        print("\n".join(listed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
