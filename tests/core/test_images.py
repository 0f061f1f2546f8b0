"""Images compared by pixels: generated PNGs and JPEGs on disk, the pictures of both sides and of the
difference checked pixel by pixel, and shown side by side in the HTML report."""

import io
import re
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from bot.compare import Comparison, Options, compare_outputs
from bot.compare.images import HIGHLIGHT, MAX_SHOWN_SIDE, picture_name, share_text
from bot.outputs import manifest_of
from bot.render.html import render_html
from bot.render.markdown import render_markdown
from bot.render.slack import render_slack
from bot.render.view import ReportContext
from bot.spec import CompareSection


def encode(pixels: np.ndarray, format: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format, **params)
    return buffer.getvalue()


def gradient(width: int = 20, height: int = 10) -> np.ndarray:
    """An RGB picture with a different colour at every pixel, none of them grey."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 12 % 256, y * 25 % 256, np.full_like(x, 200)], axis=2).astype(np.uint8)


def compare(
    tmp_path: Path, base: dict[str, bytes], head: dict[str, bytes], artifacts: Path | None = None
) -> Comparison:
    for side, files in (("base", base), ("head", head)):
        for name, data in files.items():
            (tmp_path / side / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / side / name).write_bytes(data)
    return compare_outputs(
        manifest_of(tmp_path / "base"),
        manifest_of(tmp_path / "head"),
        lambda entry: tmp_path / "base" / entry.path,
        lambda entry: tmp_path / "head" / entry.path,
        CompareSection(),
        Options(artifacts=artifacts),
    )


def test_identical_pixels_with_different_metadata(tmp_path):
    first, second = PngImagePlugin.PngInfo(), PngImagePlugin.PngInfo()
    first.add_text("Creation Time", "Mon")
    second.add_text("Creation Time", "Tue")
    base = encode(gradient(), pnginfo=first)
    head = encode(gradient(), pnginfo=second)
    assert base != head
    comparison = compare(tmp_path, {"plot.png": base}, {"plot.png": head}, tmp_path / "art")
    row = comparison.file("plot.png")
    assert (row.status, row.kind, row.summary) == ("changed", "image", "pixels identical (metadata differs)")
    assert row.volatile_only
    (image,) = comparison.images
    assert (image.differing_pixels, image.share, image.diff_image) == (0, 0.0, None)
    assert not (tmp_path / "art").exists()  # nothing to picture


def test_palette_and_rgb_of_the_same_picture_are_pixel_identical(tmp_path):
    pixels = np.zeros((8, 8, 3), np.uint8)
    pixels[2:5, 3:6] = (10, 200, 30)
    indexed = Image.new("P", (8, 8))
    indexed.putpalette([0, 0, 0, 10, 200, 30])
    indexed.putdata(pixels.any(axis=2).astype(np.uint8).flatten().tolist())
    palette = io.BytesIO()
    indexed.save(palette, format="PNG")
    comparison = compare(tmp_path, {"a.png": encode(pixels)}, {"a.png": palette.getvalue()})
    assert comparison.file("a.png").summary == "pixels identical (metadata differs)"


def test_a_few_pixels_changed(tmp_path):
    base = gradient()
    head = base.copy()
    changed = [(0, 0), (3, 7), (9, 19)]  # (row, column)
    for y, x in changed:
        head[y, x, 0] ^= 1  # one channel by one step is enough
    comparison = compare(tmp_path, {"p/roc.png": encode(base)}, {"p/roc.png": encode(head)}, tmp_path / "art")
    (image,) = comparison.images
    assert (image.size_base, image.size_head) == ((20, 10), (20, 10))
    assert image.differing_pixels == 3
    assert image.share == 3 / 200
    assert comparison.file("p/roc.png").summary == "1.5% of pixels differ"
    assert image.diff_image == picture_name("p/roc.png")
    picture = np.asarray(Image.open(tmp_path / "art" / image.diff_image).convert("RGB"))
    assert picture.shape == (10, 20, 3)
    red = np.all(picture == HIGHLIGHT, axis=2)
    assert sorted(zip(*np.nonzero(red), strict=True)) == changed
    background = picture[~red]
    assert np.all(background[:, 0] == background[:, 1]) and np.all(background[:, 1] == background[:, 2])
    assert background.min() >= 255 * 0.75 - 1  # faded toward white
    assert comparison.verdict == "changed" and not comparison.problems


def test_no_picture_without_an_artifacts_directory(tmp_path):
    head = gradient()
    head[0, 0] = 0
    comparison = compare(tmp_path, {"a.png": encode(gradient())}, {"a.png": encode(head)})
    (image,) = comparison.images
    assert (image.differing_pixels, image.diff_image) == (1, None)


def test_alpha_counts_and_transparent_pixels_are_drawn_over_white(tmp_path):
    base = np.zeros((2, 2, 4), np.uint8)  # transparent black
    head = base.copy()
    head[1, 1, 3] = 255  # only the alpha channel changed: opaque black
    comparison = compare(tmp_path, {"a.png": encode(base)}, {"a.png": encode(head)}, tmp_path / "art")
    (image,) = comparison.images
    assert image.differing_pixels == 1
    picture = np.asarray(Image.open(tmp_path / "art" / image.diff_image).convert("RGB"))
    assert picture[0, 0].tolist() == [255, 255, 255]  # transparent over white, faded: still white
    assert picture[1, 1].tolist() == list(HIGHLIGHT)


def test_size_change(tmp_path):
    comparison = compare(
        tmp_path, {"a.png": encode(gradient(4, 3))}, {"a.png": encode(gradient(5, 3))}, tmp_path / "art"
    )
    (image,) = comparison.images
    assert (image.size_base, image.size_head, image.share) == ((4, 3), (5, 3), 1.0)
    assert image.differing_pixels == 15 and image.diff_image is None
    assert comparison.file("a.png").summary == "size 4×3 → 5×3"


def test_jpeg(tmp_path):
    base = np.full((32, 32, 3), 128, np.uint8)
    head = base.copy()
    head[:8, :8] = (255, 0, 0)
    comparison = compare(
        tmp_path,
        {"a.jpg": encode(base, "JPEG", quality=95), "b.jpeg": encode(base, "JPEG")},
        {"a.jpg": encode(head, "JPEG", quality=95), "b.jpeg": encode(base, "JPEG", quality=50)},
        tmp_path / "art",
    )
    first, second = comparison.images
    assert [f.kind for f in comparison.files] == ["image", "image"]
    assert first.size_head == (32, 32) and 64 <= first.differing_pixels < 32 * 32
    assert (tmp_path / "art" / first.diff_image).is_file()
    assert second.path == "b.jpeg" and second.differing_pixels == 0  # a flat grey survives any quality


def test_corrupt_image_is_a_problem_and_the_rest_is_compared(tmp_path):
    good = gradient()
    changed = good.copy()
    changed[5, 5] = 0
    png = encode(good)
    comparison = compare(
        tmp_path,
        {"bad.png": png, "good.png": png, "junk.jpg": encode(good, "JPEG")},
        {"bad.png": png[: len(png) // 2], "good.png": encode(changed), "junk.jpg": b"not an image at all"},
    )
    problems = {p.path: p.message for p in comparison.problems}
    assert problems["bad.png"].startswith("the branch's bad.png could not be decoded as an image: ")
    assert problems["junk.jpg"].startswith("the branch's junk.jpg could not be decoded as an image: cannot")
    assert not any(p.blocking for p in comparison.problems)
    assert comparison.file("bad.png").summary.startswith("undecodable; size ")
    assert [i.path for i in comparison.images] == ["good.png"]
    assert comparison.file("good.png").summary == "0.5% of pixels differ"
    assert comparison.verdict == "changed"


def test_added_and_removed_images(tmp_path):
    comparison = compare(tmp_path, {"old.png": encode(gradient(3, 2))}, {"new.png": encode(gradient(7, 5))})
    assert comparison.file("new.png").summary == "new, 7×5"
    assert comparison.file("old.png").summary == "removed, was 3×2"
    assert comparison.images == []


def test_picture_names_are_safe_and_distinct():
    names = {picture_name(path) for path in ["a/b.png", "a_b.png", "a b.png", "../../etc/x.png", "é.png"]}
    assert len(names) == 5
    for name in names:
        assert name.startswith("diff-") and name.endswith(".png")
        assert "/" not in name and ".." not in name and name.isascii()
    assert picture_name("plots/roc.png") == picture_name("plots/roc.png")


def test_share_text():
    assert share_text(32, 1000) == "3.2% of pixels differ"
    assert share_text(3, 1_000_000) == "3 of 1,000,000 pixels differ"
    assert share_text(999_999, 1_000_000) == "99.9% of pixels differ"
    assert share_text(10, 10) == "all pixels differ"


# -- main | branch | difference, side by side in the HTML report ------------------------------------------


def picture(directory: Path, name: str | None) -> np.ndarray:
    assert name is not None
    return np.asarray(Image.open(directory / name).convert("RGBA"))


def test_both_sides_are_pictured_beside_the_difference(tmp_path):
    base = gradient()
    head = base.copy()
    head[4, 6] = (0, 0, 0)
    art = tmp_path / "art"
    comparison = compare(tmp_path, {"p/roc.png": encode(base)}, {"p/roc.png": encode(head)}, art)
    (image,) = comparison.images
    assert (image.base_image, image.head_image) == (
        picture_name("p/roc.png", "main"),
        picture_name("p/roc.png", "branch"),
    )
    assert image.scale == 1
    assert np.array_equal(picture(art, image.base_image)[..., :3], base)
    assert np.array_equal(picture(art, image.head_image)[..., :3], head)
    assert sorted({p.name for p in art.iterdir()}) == sorted(
        [image.base_image, image.head_image, image.diff_image]
    )


def test_images_that_differ_only_in_size_still_show_both_sides(tmp_path):
    art = tmp_path / "art"
    comparison = compare(tmp_path, {"a.png": encode(gradient(4, 3))}, {"a.png": encode(gradient(5, 3))}, art)
    (image,) = comparison.images
    assert image.diff_image is None  # no pixel is comparable to another
    assert picture(art, image.base_image).shape == (3, 4, 4)
    assert picture(art, image.head_image).shape == (3, 5, 4)


def test_large_images_are_shrunk_and_a_lone_changed_pixel_stays_marked(tmp_path):
    width = MAX_SHOWN_SIDE * 2 + 500  # shrunk 3 times: 2,500 → 834 pixels wide
    base = np.full((40, width, 3), 90, np.uint8)
    head = base.copy()
    head[37, 2_401] = (91, 90, 90)  # one channel, one step: averaged away by any ordinary resize
    art = tmp_path / "art"
    comparison = compare(tmp_path, {"wide.png": encode(base)}, {"wide.png": encode(head)}, art)
    (image,) = comparison.images
    assert image.scale == 3 and image.size_head == (width, 40)
    diff = picture(art, image.diff_image)[..., :3]
    assert diff.shape == (14, 834, 3) and picture(art, image.head_image).shape == (14, 834, 4)
    red = np.all(diff == HIGHLIGHT, axis=2)
    assert list(zip(*np.nonzero(red), strict=True)) == [(37 // 3, 2_401 // 3)]


def test_the_report_shows_main_branch_and_difference_labelled_in_order(tmp_path):
    base = np.full((30, 2_100, 3), 200, np.uint8)
    head = base.copy()
    head[:5, :5] = 0
    art = tmp_path / "art"
    comparison = compare(tmp_path, {"plot.png": encode(base)}, {"plot.png": encode(head)}, art)
    html = render_html(
        comparison, ReportContext(experiment="e", head_label="b", base_label="m", tier="t"), art
    )
    section = html.split("<code>plot.png</code>", 2)[2].split("</details>")[0]
    labels = re.findall(
        r"<figcaption>(\w+)</figcaption>\n<img class=\"(\w+)\" src=\"data:image/png;base64,", section
    )
    assert labels == [("main", "side"), ("branch", "side"), ("difference", "diff")]
    assert "Shown at 1/3 of their size" in section
    assert 'src="http' not in html and "<script" not in html


def test_pr_comments_and_slack_link_the_pictures_in_the_report(tmp_path):
    head = gradient()
    head[0, 0] = 0
    comparison = compare(tmp_path, {"a.png": encode(gradient())}, {"a.png": encode(head)}, tmp_path / "art")
    ctx = ReportContext(experiment="e", head_label="b", base_label="m", tier="t", report_url="https://r/5")
    link = "https://r/5#diff-0"
    assert f"[main | branch | difference in the report]({link})" in render_markdown(comparison, ctx)
    files = next(b["text"]["text"] for b in render_slack(comparison, ctx)["blocks"] if "*Files*" in str(b))
    assert f"`a.png` 0.5% of pixels differ · <{link}|main · branch · difference in the report>" in files


def test_results_stored_before_both_sides_were_pictured_show_the_difference_alone(tmp_path):
    head = gradient()
    head[0, 0] = 0
    art = tmp_path / "art"
    comparison = compare(tmp_path, {"a.png": encode(gradient())}, {"a.png": encode(head)}, art)
    comparison.images[0].base_image = comparison.images[0].head_image = None
    html = render_html(
        comparison, ReportContext(experiment="e", head_label="b", base_label="m", tier="t"), art
    )
    assert re.findall(r"<figcaption>(\w+)</figcaption>", html) == ["difference"]
    assert "Shown at" not in html
