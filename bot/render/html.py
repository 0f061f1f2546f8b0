"""The full report: one standalone HTML page, everything listed, diff pictures inline.

The page has no external assets — inline CSS, and images as `data:` URIs read from the comparison's
artifacts directory — so it can be opened from disk, attached, or served from anywhere. A diff picture
that is missing, unreadable, too large or named outside the artifacts directory becomes a note on the
page, never an error: the rest of the report matters more than one picture.
"""

import base64
from dataclasses import dataclass
from pathlib import Path, PurePath

from bot.compare import Comparison
from bot.compare.model import ImageDiff
from bot.render.templates import template
from bot.render.view import ReportContext, full_view, variables
from bot.units import format_size

MAX_INLINE_IMAGE = 16 * 1024 * 1024  # bytes; a bigger picture would make the page slow to open
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}


@dataclass(frozen=True)
class Picture:
    """An image for the page: its `data:` URI, or why there is none."""

    src: str | None = None
    note: str | None = None


def inline_picture(artifacts: Path | None, name: str) -> Picture:
    """The diff picture `name` from `artifacts` as a `data:` URI; a note when it cannot be shown."""
    if artifacts is None:
        return Picture(note=f"The diff picture {name} was saved with the comparison, but not given here.")
    if PurePath(name).name != name or name in (".", ".."):
        return Picture(note=f"The diff picture {name} is not a file name inside the artifacts directory.")
    path = artifacts / name
    try:
        if path.is_symlink() or not path.is_file():
            return Picture(note=f"The diff picture {name} is missing.")
        size = path.stat().st_size
        if size > MAX_INLINE_IMAGE:
            return Picture(note=f"The diff picture {name} is too large to embed ({format_size(size)}).")
        data = path.read_bytes()
    except OSError as exc:
        return Picture(note=f"The diff picture {name} could not be read: {exc.strerror or exc}.")
    mime = IMAGE_TYPES.get(path.suffix.lower(), "image/png")
    return Picture(src=f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}")


def render_html(comparison: Comparison, ctx: ReportContext, artifacts: Path | None = None) -> str:
    """The full report; `artifacts` is the directory the comparison saved its diff pictures in."""
    view = full_view(comparison)
    pictures = {
        d.anchor: inline_picture(artifacts, d.body.diff_image)
        for d in view.details
        if isinstance(d.body, ImageDiff) and d.body.diff_image
    }
    page = template("comparison.html.j2", "html")
    return page.render(**variables(comparison, ctx, view), pictures=pictures)
