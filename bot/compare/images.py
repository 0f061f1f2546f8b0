"""Images (PNG, JPEG): compared by their pixels, not their bytes, with a picture of where they differ.

Both sides are decoded to RGBA, so a palette PNG and an RGB PNG of the same picture are equal, and a
plot re-saved with a new timestamp in its metadata is "pixels identical". A pixel differs when any of
its four channels does — exactly, so a re-encoded JPEG usually differs a little almost everywhere.
The report shows main's image, the branch's and the difference side by side, so all three are written
when the comparison has somewhere to put pictures (`Options.artifacts`): the difference is the branch's
image faded to light grey with every differing pixel in pure red (none when the sizes differ). A page
must stay light enough to open, so images over MAX_SHOWN_SIDE are shown shrunk by a whole factor, the
same for all three; a block of the difference is red when any of its pixels differs, so one changed
pixel of a large plot is still seen.
"""

import hashlib
import io
import math
import re

import numpy as np
from PIL import Image

from bot.compare.files import SIDE_NAMES, FileUnreadable, Outcome, Pair, Rules, Side, size_change
from bot.compare.model import FileProblem, ImageDiff

MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 40_000_000  # two RGBA copies of this many pixels are 320 MB
HIGHLIGHT = (255, 0, 0)  # differing pixels; never produced by the faded (grey) background
FADE = 0.25  # how much of the branch's image shows through behind the highlighted pixels
MAX_SHOWN_SIDE = 1000  # pixels of a picture's width or height in the report; larger ones are shrunk


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


def shown_scale(*sizes: tuple[int, int]) -> int:
    """The whole factor the pictures of an image are shrunk by, so the largest side fits MAX_SHOWN_SIDE."""
    return max(1, math.ceil(max(max(size) for size in sizes) / MAX_SHOWN_SIDE))


def shrink_mask(mask: np.ndarray, scale: int) -> np.ndarray:
    """Blocks of scale×scale pixels, each set when any of its pixels is (Pillow's `reduce` would average
    a lone pixel away); the shape `Image.reduce` gives, rounded up."""
    if scale == 1:
        return mask
    height, width = mask.shape
    padded = np.pad(mask, ((0, -height % scale), (0, -width % scale)))
    blocks = padded.reshape(padded.shape[0] // scale, scale, padded.shape[1] // scale, scale)
    return blocks.any(axis=(1, 3))


def side_picture(pixels: np.ndarray, scale: int) -> Image.Image:
    """One side as it is shown: its RGBA pixels, shrunk by `scale`."""
    image = Image.fromarray(pixels)
    return image.reduce(scale) if scale > 1 else image


def diff_picture(head: np.ndarray, mask: np.ndarray, scale: int = 1) -> Image.Image:
    """The branch's image over white, in grey faded toward white, with differing pixels in HIGHLIGHT."""
    over_white = Image.alpha_composite(
        Image.new("RGBA", dimensions(head), (255, 255, 255, 255)), Image.fromarray(head)
    )
    faded = over_white.convert("L").point(lambda v: round(255 - (255 - v) * FADE)).convert("RGB")
    faded = faded.reduce(scale) if scale > 1 else faded
    faded.paste(HIGHLIGHT, mask=Image.fromarray(shrink_mask(mask, scale).astype(np.uint8) * 255))
    return faded


def picture_name(path: str, kind: str = "diff") -> str:
    """A safe, unique file name for one of a path's pictures: `diff-plots_roc_png-1a2b3c4d.png`, and
    `main-…` and `branch-…` for its sides."""
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", path).strip("_")[:80] or "image"
    digest = hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{kind}-{readable}-{digest}.png"


def _pictures(base: np.ndarray, head: np.ndarray, mask: np.ndarray | None, scale: int) -> dict:
    """main | branch | difference as the report shows them, by name prefix (no difference when the sizes
    differ)."""
    pictures = {"main": side_picture(base, scale), "branch": side_picture(head, scale)}
    if mask is not None:
        pictures["diff"] = diff_picture(head, mask, scale)
    return pictures


def _save_pictures(
    pair: Pair, rules: Rules, diff: ImageDiff, base: np.ndarray, head: np.ndarray, mask: np.ndarray | None
) -> list[FileProblem]:
    """Write the pictures into the artifacts directory and name them on `diff`; a failure to write is a
    problem, not an error."""
    directory = rules.options.artifacts
    if directory is None:
        return []
    scale = shown_scale(dimensions(base), dimensions(head))
    pictures = _pictures(base, head, mask, scale)
    names = {kind: picture_name(pair.path, kind) for kind in pictures}
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for kind, picture in pictures.items():
            picture.save(directory / names[kind], format="PNG")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        message = f"the pictures of {pair.path} could not be written to {directory}: {reason}"
        return [FileProblem(path=pair.path, message=message)]
    diff.base_image, diff.head_image, diff.diff_image = names["main"], names["branch"], names.get("diff")
    diff.scale = scale
    return []


def compare_image(pair: Pair, rules: Rules) -> Outcome:
    """Sizes, the share of differing pixels, and the pictures of a changed image; of an added or removed
    one, its size."""
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
        problems = _save_pictures(pair, rules, diff, base, head, None)
        summary = f"size {size_text(dimensions(base))} → {size_text(dimensions(head))}"
        return Outcome("image", summary, image=diff, problems=problems)
    mask = differing(base, head)
    count = int(np.count_nonzero(mask))
    if count == 0:
        return Outcome("image", "pixels identical (metadata differs)", volatile_only=True, image=diff)
    diff.differing_pixels, diff.share = count, count / mask.size
    problems = _save_pictures(pair, rules, diff, base, head, mask)
    return Outcome("image", share_text(count, mask.size), image=diff, problems=problems)
