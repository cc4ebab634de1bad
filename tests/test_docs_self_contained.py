"""The design lives in the repository: nothing cites a design document outside it, and every
``docs/ARCHITECTURE.md §n`` a file cites is a section that exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
# Spelled in pieces so that this file does not match itself.
OUTSIDE = re.compile("|".join([r"\bDESIGN" + r"\.md\b", r"\.\./" + "shared", r"\bDESIGN §\d"]))
CITATION = re.compile(r"ARCHITECTURE\.md(?: §(\d+))((?:,? ?§\d+|–§\d+)*)")


def repo_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    files = []
    for name in listed:
        path = ROOT / name
        if path.is_file() and path.suffix not in {".onnx", ".png", ".npz", ".npy", ".so"}:
            try:
                path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            files.append(path)
    return files


def sections() -> set[int]:
    return {int(m) for m in re.findall(r"^## (\d+)\. ", ARCHITECTURE.read_text(), re.M)}


def test_no_file_cites_a_design_document_outside_the_repository():
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in repo_text_files()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert offenders == []


def test_every_cited_section_exists():
    known = sections()
    assert known == set(range(1, max(known) + 1))  # numbered 1…n without gaps
    cited = set()
    for path in repo_text_files():
        for match in CITATION.finditer(path.read_text(encoding="utf-8")):
            numbers = [match.group(1), *re.findall(r"§(\d+)", match.group(2))]
            cited |= {(int(n), str(path.relative_to(ROOT))) for n in numbers}
    assert cited, "nothing cites docs/ARCHITECTURE.md"
    assert [c for c in cited if c[0] not in known] == []


def test_the_checks_see_a_bad_citation():
    assert OUTSIDE.search("see ../" + "shared/DESIGN" + ".md §2")
    assert OUTSIDE.search("(DESIGN" + " §6)")
    assert [int(m.group(1)) for m in CITATION.finditer("docs/ARCHITECTURE" + ".md §42")] == [42]
