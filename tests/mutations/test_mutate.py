"""``make mutate`` in the slow suite: the whole catalogue must score >= 95 % with no error.

Runs ``tools/mutate.py`` as ``make mutate`` does (one scratch copy, one
mutant at a time); the table and the score are in ``build/mutate/report.md``
(run time in ``docs/verification.md``).
"""

import subprocess
import sys

import pytest

from lpaccel.paths import ROOT


@pytest.mark.slow
def test_mutation_score():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "mutate.py"), "--jobs", "1"],
                          cwd=ROOT, capture_output=True, text=True)
    tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
    assert done.returncode == 0, f"make mutate failed (exit {done.returncode}):\n{tail}"
