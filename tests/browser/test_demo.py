"""The demo page in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

Against the session's real server and model: MNIST *test* digits are drawn on the canvas
as pen strokes (their skeletons, :mod:`strokes`) with the mouse and the shown label is
checked; photo-like PNG and JPEG renderings of test digits are uploaded; Clear and Undo;
an upload the API refuses shows the API's message. Screenshots go to ``reports/demo/``.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image, ImageFilter
from server import REPO, ServiceProcess
from strokes import strokes

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("MNIST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SHOTS = REPO / "reports" / "demo"
DIGITS_DRAWN = 10
ANSWER_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (see .ci/run)")
    with sync_api.sync_playwright() as playwright:
        found = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield found
        found.close()


@pytest.fixture(scope="module")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


@pytest.fixture
def page(browser: Any, service: ServiceProcess) -> Iterator[Any]:
    """A fresh tab on the demo page, the served model already described."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(f"{service.url}/demo")
    sync_api.expect(tab.locator("#model-info")).to_contain_text("test accuracy")
    yield tab
    context.close()
    assert errors == [], f"the page's script failed: {errors}"


def answers(page: Any) -> int:
    """How many answers (predictions or errors) the page has shown so far."""
    return int(page.evaluate("() => Number(document.body.dataset.answers || 0)"))


def settled(page: Any, after: int | None = None) -> str:
    """Wait until nothing is pending or under way (and, given ``after``, a newer answer
    is shown); the label shown ('' for none)."""
    page.wait_for_function(
        "after => document.body.dataset.busy === 'false'"
        " && Number(document.body.dataset.answers || 0) > after",
        arg=-1 if after is None else after,
        timeout=ANSWER_TIMEOUT_MS,
        polling=50,
    )
    label: str = page.locator("#label").get_attribute("data-label") or ""
    return label


def draw(page: Any, digit: np.ndarray) -> None:
    """Draw ``digit`` (28x28) on the pad as strokes, with the mouse, at the digit's width."""
    paths, width = strokes(digit)
    box = page.locator("#pad").bounding_box()
    scale = box["width"] / 28
    # The slider is in canvas pixels (the canvas is 280 wide): MNIST's width, scaled.
    page.locator("#stroke-width").evaluate(
        "(el, value) => { el.value = value; el.dispatchEvent(new Event('input')); }",
        str(round(width * 280 / 28)),
    )
    for path in paths:
        points = [(box["x"] + (x + 0.5) * scale, box["y"] + (y + 0.5) * scale) for y, x in path]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point)
        page.mouse.up()


def first_of_each_class(labels: np.ndarray, count: int) -> list[int]:
    """Indices of the first test digit of each class 0..9 (then the second of each...)."""
    return [int(np.nonzero(labels == d)[0][k // 10]) for k, d in enumerate(range(count))]


def test_the_page_shows_the_served_model_and_its_training_report(
    page: Any, service: ServiceProcess, shots: Path
) -> None:
    model = httpx.get(f"{service.url}/metadata", timeout=10).json()["model"]
    info = page.locator("#model-info")
    sync_api.expect(info).to_contain_text(f"Model version {model['version']}")
    sync_api.expect(info).to_contain_text(f"{100 * model['test_accuracy']:.2f}%")
    figures = page.locator("#report-figures img")
    sync_api.expect(figures).to_have_count(3)
    page.locator("#report").scroll_into_view_if_needed()
    for index in range(3):
        image = figures.nth(index)
        image.scroll_into_view_if_needed()
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
        )
        assert image.get_attribute("alt")
    page.screenshot(path=str(shots / "report.png"), full_page=True)


def test_drawn_test_digits_are_recognised(
    page: Any, mnist_test_set: tuple[np.ndarray, np.ndarray], shots: Path
) -> None:
    images, labels = mnist_test_set
    results: list[tuple[int, int, str]] = []
    for index in first_of_each_class(labels, DIGITS_DRAWN):
        page.locator("#clear").click()
        assert settled(page) == ""
        before = answers(page)
        draw(page, images[index])
        shown = settled(page, before)
        results.append((index, int(labels[index]), shown))
        page.locator(".panel.result").screenshot(path=str(shots / f"drawn-{labels[index]}.png"))
        # The chart agrees with the label: ten bars, the shown label's the longest.
        assert page.locator("#bars li").count() == 10
        assert page.locator("#bars li.top .digit").inner_text() == shown
    page.screenshot(path=str(shots / "drawn-last.png"), full_page=True)
    right = sum(str(true) == shown for _, true, shown in results)
    for index, true, shown in results:
        print(f"test digit {index}: drawn {true}, shown {shown or '(none)'}")
    print(f"{right} of {len(results)} drawn digits recognised")
    assert right >= 9, results


def test_a_digit_drawn_by_finger_is_recognised(
    browser: Any, service: ServiceProcess, mnist_test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    """Touch input (Chromium's own touch events, turned into pointer events) draws too."""
    images, labels = mnist_test_set
    index = int(np.nonzero(labels == 3)[0][1])
    context = browser.new_context(viewport={"width": 390, "height": 800}, has_touch=True)
    try:
        tab = context.new_page()
        tab.goto(f"{service.url}/demo")
        sync_api.expect(tab.locator("#model-info")).to_contain_text("test accuracy")
        touch = context.new_cdp_session(tab)
        paths, _ = strokes(images[index])
        box = tab.locator("#pad").bounding_box()
        scale = box["width"] / 28
        for path in paths:
            points = [
                {"x": box["x"] + (x + 0.5) * scale, "y": box["y"] + (y + 0.5) * scale}
                for y, x in path
            ]
            touch.send(
                "Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": points[:1]}
            )
            for point in points[1:]:
                touch.send(
                    "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]}
                )
            touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        shown = settled(tab, 0)
        print(f"test digit {index} drawn by finger: true {labels[index]}, shown {shown}")
        assert shown == str(labels[index])
        assert tab.evaluate("window.scrollY") == 0  # the finger drew; the page did not scroll
    finally:
        context.close()


def test_a_digit_drawn_with_the_keyboard_is_recognised(page: Any, shots: Path) -> None:
    """Focus the canvas, put the pen down, draw a vertical line with the arrows: a 1."""
    page.locator("#pad").focus()
    sync_api.expect(page.locator("#cursor")).to_be_visible()
    page.keyboard.press("Space")
    before = answers(page)
    for _ in range(18):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")
    assert page.evaluate(INK_PIXELS) > 2000
    assert settled(page, before) == "1"
    sync_api.expect(page.locator("#status")).to_contain_text("as 1")
    page.screenshot(path=str(shots / "keyboard.png"))
    page.keyboard.press("Escape")
    assert page.evaluate(INK_PIXELS) == 0


def test_undo_removes_the_last_stroke_and_clear_everything(
    page: Any, mnist_test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = mnist_test_set
    four = int(np.nonzero(labels == 4)[0][0])
    paths, _ = strokes(images[four])
    assert len(paths) >= 2, "the first test 4 is drawn in two strokes"
    undo = page.locator("#undo")
    sync_api.expect(undo).to_be_disabled()
    draw(page, images[four])
    assert settled(page, 0) == "4"
    ink_before = page.evaluate(INK_PIXELS)
    before = answers(page)
    undo.click()
    ink_after_undo = page.evaluate(INK_PIXELS)
    assert 0 < ink_after_undo < ink_before  # one stroke fewer, not all of them
    settled(page, before)  # the rest is predicted again
    sync_api.expect(page.locator("#status")).to_contain_text("your drawing")
    page.keyboard.press("Control+z")  # the keyboard undoes as the button does
    page.wait_for_function("() => document.getElementById('undo').disabled")
    before = answers(page)
    draw(page, images[four])
    settled(page, before)
    page.locator("#clear").click()
    assert page.evaluate(INK_PIXELS) == 0
    assert settled(page) == ""
    sync_api.expect(page.locator("#label")).to_have_text("–")
    sync_api.expect(page.locator("#status")).to_contain_text("Cleared")
    sync_api.expect(undo).to_be_disabled()


INK_PIXELS = """() => {
  const pad = document.getElementById("pad");
  const data = pad.getContext("2d").getImageData(0, 0, pad.width, pad.height).data;
  let dark = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i] < 128) dark++;
  return dark;
}"""


def photo(digit: np.ndarray, seed: int) -> Image.Image:
    """A test digit as a photo of ink on paper: small and off-centre, tinted, grain, blur.

    Mild on purpose (light nearly even, little grain): this checks the page's upload
    path, not how far the image preparation holds up (its own test set measures that).
    """
    rng = np.random.default_rng(seed)
    side = 480
    scale = 7
    ink = np.asarray(
        Image.fromarray(digit).resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC),
        dtype=np.float32,
    )
    ys, xs = np.mgrid[0:side, 0:side] / side
    paper = 228 + 4 * xs - 4 * ys  # light falls a little from one side
    top, left = 60 + int(rng.integers(0, 80)), 190 + int(rng.integers(0, 80))
    page = paper.copy()
    window = page[top : top + ink.shape[0], left : left + ink.shape[1]]
    window -= ink / 255.0 * (window - 45)  # blue-black ink over the paper
    page += rng.normal(0, 2, page.shape)
    gray = Image.fromarray(np.clip(page, 0, 255).astype(np.uint8))
    rgb = Image.merge("RGB", (gray, gray, gray.point(lambda v: min(255, v + 12))))
    return rgb.filter(ImageFilter.GaussianBlur(0.8))


def upload(page: Any, name: str, data: bytes, mime: str) -> str:
    before = answers(page)
    page.locator("#file").set_input_files({"name": name, "mimeType": mime, "buffer": data})
    return settled(page, before)


@pytest.mark.parametrize(("kind", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_uploaded_photos_of_test_digits_are_recognised(
    page: Any, kind: str, mime: str, mnist_test_set: tuple[np.ndarray, np.ndarray], shots: Path
) -> None:
    images, labels = mnist_test_set
    index = 7 if kind == "PNG" else 11  # a 9 and a 6
    buffer = io.BytesIO()
    photo(images[index], seed=index).save(
        buffer, kind, **({"quality": 80} if kind == "JPEG" else {})
    )
    suffix = "png" if kind == "PNG" else "jpg"
    shown = upload(page, f"digit.{suffix}", buffer.getvalue(), mime)
    print(f"test digit {index} as a {kind} photo: true {labels[index]}, shown {shown}")
    assert shown == str(labels[index])
    sync_api.expect(page.locator("#photo")).to_be_visible()
    sync_api.expect(page.locator("#error")).to_be_hidden()
    # The preview shows the prepared 28x28 image: some bright pixels, the border dark.
    lit = page.evaluate(
        """() => {
          const d = document.getElementById("preview").getContext("2d")
            .getImageData(0, 0, 28, 28).data;
          let lit = 0, border = 0;
          for (let i = 0; i < 784; i++) {
            const y = Math.floor(i / 28), x = i % 28;
            if (d[4 * i] > 128) { lit++; if (y < 2 || y > 25 || x < 2 || x > 25) border++; }
          }
          return [lit, border];
        }"""
    )
    assert lit[0] > 40 and lit[1] == 0, lit
    page.screenshot(path=str(shots / f"upload-{suffix}.png"), full_page=True)


def test_a_dropped_photo_is_recognised(
    page: Any, mnist_test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = mnist_test_set
    index = 21  # a 6
    buffer = io.BytesIO()
    photo(images[index], seed=index).save(buffer, "PNG")
    dropped = page.evaluate_handle(
        """encoded => {
          const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
          const data = new DataTransfer();
          data.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
          return data;
        }""",
        base64.b64encode(buffer.getvalue()).decode(),
    )
    page.dispatch_event("#drop", "dragenter", {"dataTransfer": dropped})
    assert "over" in (page.locator("#drop").get_attribute("class") or "")
    before = answers(page)
    page.dispatch_event("#drop", "drop", {"dataTransfer": dropped})
    assert settled(page, before) == str(labels[index])
    sync_api.expect(page.locator("#status")).to_contain_text("dropped.png")
    assert "over" not in (page.locator("#drop").get_attribute("class") or "")


def test_an_upload_the_api_refuses_shows_its_message(page: Any, shots: Path) -> None:
    assert upload(page, "notes.png", b"this is not a picture", "image/png") == ""
    error = page.locator("#error")
    sync_api.expect(error).to_be_visible()
    sync_api.expect(error).to_contain_text("HTTP 400, invalid_image")
    sync_api.expect(error).to_contain_text("not a readable PNG, JPEG, BMP or GIF")
    sync_api.expect(page.locator("#status")).to_contain_text("No prediction")
    page.screenshot(path=str(shots / "error.png"), full_page=True)
    blank = io.BytesIO()
    Image.new("L", (64, 64), 255).save(blank, "PNG")
    upload(page, "blank.png", blank.getvalue(), "image/png")
    sync_api.expect(error).to_contain_text("blank_image")


def test_the_page_fits_a_phone(page: Any, service: ServiceProcess, shots: Path) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width} px wide at phone width"
    box = page.locator("#pad").bounding_box()
    assert box["width"] >= 250
    page.screenshot(path=str(shots / "phone.png"), full_page=True)
