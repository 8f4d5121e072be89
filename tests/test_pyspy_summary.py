"""scripts/pyspy_summary.py: self and inclusive sample counts of a py-spy raw profile."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import pyspy_summary  # noqa: E402

RAW = """main (a.py:1);generate (g.py:5);forward (m.py:9) 6
main (a.py:1);generate (g.py:5) 3
main (a.py:1);f (r.py:2);f (r.py:2) 1
"""


def test_counts_self_and_inclusive_once_per_sample(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text(RAW)
    own, inclusive, total = pyspy_summary.read_raw(path)
    assert total == 10
    assert own == {"forward (m.py:9)": 6, "generate (g.py:5)": 3, "f (r.py:2)": 1}
    assert inclusive["main (a.py:1)"] == 10 and inclusive["generate (g.py:5)"] == 9
    assert inclusive["f (r.py:2)"] == 1  # recursion counts once
    out = tmp_path / "p.md"
    assert pyspy_summary.main([str(path), "--output", str(out), "--top", "2"]) == 0
    text = out.read_text()
    assert "| 60.0 % | `forward (m.py:9)` |" in text and "| 100.0 % | `main (a.py:1)` |" in text


def test_a_line_that_is_not_a_profile_names_the_file_and_line(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("main (a.py:1) 3\nnot a profile line\n")
    with pytest.raises(SystemExit, match=r"p.txt:2: not a py-spy raw line"):
        pyspy_summary.read_raw(path)
