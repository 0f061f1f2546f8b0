"""The full report: one standalone HTML page, everything listed, pictures inline.

The page has no external assets — inline CSS, and images as `data:` URIs read from the comparison's
artifacts directory — so it can be opened from disk, attached, or served from anywhere. A changed image
is shown as three panels, main | branch | difference (results stored before the sides were pictured
have the difference alone). A picture that is missing, unreadable, too large or named outside the
artifacts directory becomes a note in its panel, never an error: the rest of the report matters more
than one picture.
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


@dataclass(frozen=True)
class Panel:
    """One of an image's pictures, side by side with the others: `main`, `branch` or `difference`."""

    label: str
    picture: Picture


PANELS = (  # label, the field naming its picture, what a note calls it
    ("main", "base_image", "picture of main"),
    ("branch", "head_image", "picture of the branch"),
    ("difference", "diff_image", "diff picture"),
)


def inline_picture(artifacts: Path | None, name: str, what: str = "diff picture") -> Picture:
    """The picture `name` from `artifacts` as a `data:` URI; a note when it cannot be shown."""
    if artifacts is None:
        return Picture(note=f"The {what} {name} was saved with the comparison, but not given here.")
    if PurePath(name).name != name or name in (".", ".."):
        return Picture(note=f"The {what} {name} is not a file name inside the artifacts directory.")
    path = artifacts / name
    try:
        if path.is_symlink() or not path.is_file():
            return Picture(note=f"The {what} {name} is missing.")
        size = path.stat().st_size
        if size > MAX_INLINE_IMAGE:
            return Picture(note=f"The {what} {name} is too large to embed ({format_size(size)}).")
        data = path.read_bytes()
    except OSError as exc:
        return Picture(note=f"The {what} {name} could not be read: {exc.strerror or exc}.")
    mime = IMAGE_TYPES.get(path.suffix.lower(), "image/png")
    return Picture(src=f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}")


def image_panels(artifacts: Path | None, image: ImageDiff) -> list[Panel]:
    """main | branch | difference, each that the comparison pictured."""
    return [
        Panel(label, inline_picture(artifacts, getattr(image, field), what))
        for label, field, what in PANELS
        if getattr(image, field)
    ]


def render_html(comparison: Comparison, ctx: ReportContext, artifacts: Path | None = None) -> str:
    """The full report; `artifacts` is the directory the comparison saved its pictures in."""
    view = full_view(comparison)
    panels = {
        d.anchor: image_panels(artifacts, d.body) for d in view.details if isinstance(d.body, ImageDiff)
    }
    page = template("comparison.html.j2", "html")
    return page.render(**variables(comparison, ctx, view), panels=panels)
