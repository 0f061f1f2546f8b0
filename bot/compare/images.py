"""Images (PNG, JPEG): compared by their pixels, not their bytes, with a picture of where they differ.

Both sides are decoded to RGBA, so a palette PNG and an RGB PNG of the same picture are equal, and a
plot re-saved with a new timestamp in its metadata is "pixels identical". A pixel differs when any of
its four channels does — exactly, so a re-encoded JPEG usually differs a little almost everywhere.
The diff picture is the branch's image faded to light grey with every differing pixel in pure red; it
is written only when the comparison has somewhere to put pictures (`Options.artifacts`).
"""

import hashlib
import io
import re

import numpy as np
from PIL import Image

from bot.compare.files import SIDE_NAMES, FileUnreadable, Outcome, Pair, Rules, Side, size_change
from bot.compare.model import FileProblem, ImageDiff

MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 40_000_000  # two RGBA copies of this many pixels are 320 MB
HIGHLIGHT = (255, 0, 0)  # differing pixels; never produced by the faded (grey) background
FADE = 0.25  # how much of the branch's image shows through behind the highlighted pixels


class ImageUndecodable(Exception):
    """One side is not an image Pillow can decode (corrupt, truncated, or not an image at all)."""


def load_pixels(pair: Pair, side: Side) -> np.ndarray:
    """One side as a (height, width, 4) uint8 RGBA array."""
    where = f"{SIDE_NAMES[side]}'s {pair.path}"
    data = pair.read(side, MAX_IMAGE_BYTES)
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise FileUnreadable(
                    f"{where} is {width}×{height} pixels, above the {MAX_PIXELS:,} tierbot compares "
                    f"pixel by pixel"
                )
            return np.ascontiguousarray(np.asarray(image.convert("RGBA")))
    except FileUnreadable:
        raise
    except Exception as exc:  # a decoder fed arbitrary bytes fails in many ways; any of them means "corrupt"
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ImageUndecodable(f"{where} could not be decoded as an image: {detail}") from None


def dimensions(pixels: np.ndarray) -> tuple[int, int]:
    """(width, height)."""
    return int(pixels.shape[1]), int(pixels.shape[0])


def size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}×{size[1]}"


def differing(base: np.ndarray, head: np.ndarray) -> np.ndarray:
    """A (height, width) mask of pixels where any channel differs: RGBA compared as one uint32 each."""
    return base.view(np.uint32)[..., 0] != head.view(np.uint32)[..., 0]


def share_text(count: int, total: int) -> str:
    """`3.2% of pixels differ`; tiny shares as counts, so one changed pixel never reads as 0.0%."""
    if count == total:
        return "all pixels differ"
    percent = count / total * 100
    if percent < 0.1:
        return f"{count:,} of {total:,} pixels differ"
    return f"{min(percent, 99.9):.1f}% of pixels differ"


def diff_picture(head: np.ndarray, mask: np.ndarray) -> Image.Image:
    """The branch's image over white, in grey faded toward white, with differing pixels in HIGHLIGHT."""
    over_white = Image.alpha_composite(
        Image.new("RGBA", dimensions(head), (255, 255, 255, 255)), Image.fromarray(head)
    )
    faded = over_white.convert("L").point(lambda v: round(255 - (255 - v) * FADE)).convert("RGB")
    faded.paste(HIGHLIGHT, mask=Image.fromarray(mask.astype(np.uint8) * 255))
    return faded


def picture_name(path: str) -> str:
    """A safe, unique file name for a path's diff picture: `diff-plots_roc_png-1a2b3c4d.png`."""
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", path).strip("_")[:80] or "image"
    digest = hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"diff-{readable}-{digest}.png"


def _save_picture(pair: Pair, rules: Rules, head: np.ndarray, mask: np.ndarray) -> tuple[str | None, list]:
    """Write the diff picture into the artifacts directory; a failure to write is a problem, not an error."""
    directory = rules.options.artifacts
    if directory is None:
        return None, []
    name = picture_name(pair.path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        diff_picture(head, mask).save(directory / name, format="PNG")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        message = f"the diff picture of {pair.path} could not be written to {directory}: {reason}"
        return None, [FileProblem(path=pair.path, message=message)]
    return name, []


def compare_image(pair: Pair, rules: Rules) -> Outcome:
    """Sizes, the share of differing pixels, and a diff picture of a changed, added or removed image."""
    pixels: dict[Side, np.ndarray] = {}
    problems: list[FileProblem] = []
    for side in pair.sides:
        try:
            pixels[side] = load_pixels(pair, side)
        except ImageUndecodable as exc:
            problems.append(FileProblem(path=pair.path, message=str(exc)))
    if problems:
        return Outcome("image", f"undecodable; {size_change(pair)}", problems=problems)
    if "base" not in pixels:
        return Outcome("image", f"new, {size_text(dimensions(pixels['head']))}")
    if "head" not in pixels:
        return Outcome("image", f"removed, was {size_text(dimensions(pixels['base']))}")
    base, head = pixels["base"], pixels["head"]
    diff = ImageDiff(path=pair.path, size_base=dimensions(base), size_head=dimensions(head))
    if base.shape != head.shape:
        diff.differing_pixels = max(base.shape[0] * base.shape[1], head.shape[0] * head.shape[1])
        diff.share = 1.0
        summary = f"size {size_text(dimensions(base))} → {size_text(dimensions(head))}"
        return Outcome("image", summary, image=diff)
    mask = differing(base, head)
    count = int(np.count_nonzero(mask))
    if count == 0:
        return Outcome("image", "pixels identical (metadata differs)", volatile_only=True, image=diff)
    diff.differing_pixels, diff.share = count, count / mask.size
    diff.diff_image, problems = _save_picture(pair, rules, head, mask)
    return Outcome("image", share_text(count, mask.size), image=diff, problems=problems)
