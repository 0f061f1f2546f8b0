"""Files shipped with tierbot: `templates/`, `examples/` and `hooks/`.

In a wheel they live inside the package (`bot/templates`, ...); in a source checkout (editable install)
they are at the repository root beside `bot/`.
"""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"tierbot's {name}/ directory is missing from this installation")
