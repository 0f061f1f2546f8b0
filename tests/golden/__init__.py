"""Golden files: the exact text users read, one file per template and case, reviewed as a diff.

After an intended change, regenerate them with the tests that check them, and review the diff like any
other change:

    UPDATE_GOLDEN=1 python -m pytest $(grep -rl check_golden tests --include='test_*.py')

What the files are rendered from: `comparisons.py` (comparisons built by hand as model objects) and
`runs.py` (runs in every state, at a fixed time).
"""

import os
from pathlib import Path

GOLDEN = Path(__file__).parent


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        return
    with path.open(encoding="utf-8", newline="") as handle:
        expected = handle.read()
    assert text == expected, f"{name} changed; if intended, rerun with UPDATE_GOLDEN=1 and review the diff"
