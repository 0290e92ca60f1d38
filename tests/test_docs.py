"""docs/cli.md's table of failure codes is the Defect enum, exactly.

Regenerate the table with ``python -m tests.test_docs`` (prints it) after a
change to bundlekit/format/defects.py.
"""

from __future__ import annotations

import re
import sys

from bundlekit.format.defects import Defect
from tests.conftest import ROOT

CLI_MD = ROOT / "docs" / "cli.md"
BEGIN = (
    "<!-- defects:begin (generated from bundlekit/format/defects.py; see tests/test_docs.py) -->"
)
END = "<!-- defects:end -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def defects_table() -> str:
    rows = [
        "| code | category (exit code) | meaning |",
        "|---|---|---|",
        *(
            f"| `{d.value}` | {d.category.value} ({int(d.category.exit_code)}) | "
            f"{_cell(d.description)} |"
            for d in Defect
        ),
    ]
    return "\n".join(rows)


def test_cli_md_failure_codes_table_matches_the_defect_enum() -> None:
    text = CLI_MD.read_text(encoding="utf-8")
    match = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    assert match, "docs/cli.md has no generated failure-code table"
    assert match.group(1) == defects_table()
    codes = re.findall(r"^\| `([a-z-]+)` \|", match.group(1), re.M)
    assert codes == [d.value for d in Defect]


if __name__ == "__main__":
    sys.stdout.write(defects_table() + "\n")
