"""The page at ``/`` in a real headless Chromium (Debian's ``chromium`` package, driven by Playwright).

Only Playwright's Python package and its bundled driver are used; no browser is downloaded
(``playwright install`` is never needed). The browser is ``$PREFLIGHT_CHROMIUM`` or ``/usr/bin/chromium``.
Without it these tests are skipped, unless ``PREFLIGHT_REQUIRE_BROWSER=1`` (set it in CI) makes that a failure.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import preflight
from preflight.service import create_app

from .conftest import serve_app

pytestmark = pytest.mark.timeout(180)

CHROMIUM = os.environ.get("PREFLIGHT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
REQUIRED = os.environ.get("PREFLIGHT_REQUIRE_BROWSER", "") not in ("", "0")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
]
#: A fake camera (an animated test pattern) that is allowed without a prompt.
FAKE_CAMERA_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
VERDICT_TIMEOUT_MS = 60_000


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"PREFLIGHT_REQUIRE_BROWSER is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install 'progeny-preflight[browser-tests]')")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *FAKE_CAMERA_ARGS])
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def site(gate: preflight.Gate) -> Iterator[str]:
    with serve_app(create_app(gate=gate)) as url:
        yield url


@pytest.fixture
def page(browser: Any, site: str) -> Iterator[Any]:
    context = browser.new_context(locale="en-US")
    context.grant_permissions(["camera"], origin=site)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    def on_console(message: Any) -> None:
        # A 4xx answer (422 for an unreadable file) is logged by Chromium; that is the API working, not a bug.
        if message.type == "error" and "the server responded with a status of 4" not in message.text:
            problems.append(f"console error: {message.text}")

    page.on("console", on_console)
    page.goto(f"{site}/")
    page.wait_for_selector("body[data-ready='true']")
    yield page
    context.close()
    assert not problems, problems  # no script errors, no CSP violations


def verdict(page: Any) -> str:
    page.wait_for_selector(
        "#verdict[data-verdict='pass'], #verdict[data-verdict='fail'], #verdict[data-verdict='error']",
        timeout=VERDICT_TIMEOUT_MS,
    )
    value: str = page.get_attribute("#verdict", "data-verdict")
    return value


def hints(page: Any) -> list[str]:
    return [text.strip() for text in page.locator("#hints li").all_inner_texts()]


def test_passing_photo(page: Any, samples: Path) -> None:
    page.set_input_files("#file", str(samples / "obama.jpg"))
    assert verdict(page) == "pass", (page.inner_text("#status"), hints(page))
    assert page.inner_text("#verdict").strip() == "PASS"
    assert "good to upload" in page.inner_text("#status")
    # The annotated photo replaces the local preview once the answer is in.
    page.wait_for_selector("#annotated[data-annotated='true']")
    assert page.get_attribute("#annotated", "src").startswith("data:image/jpeg;base64,")
    assert page.evaluate("document.getElementById('annotated').naturalWidth") > 0
    # Warnings do not fail a photo, but their hints are still shown (obama.jpg is 1137 px high).
    shown = hints(page)
    assert any("1080 pixel high photo works best" in h for h in shown), shown
    assert all("too small" not in h for h in shown)


def test_failing_photo(page: Any, samples: Path) -> None:
    page.set_input_files("#file", str(samples / "rocket.jpg"))
    assert verdict(page) == "fail"
    assert page.inner_text("#verdict").strip() == "FAIL"
    shown = hints(page)
    assert shown and "The photo is too small" in shown[0], shown
    assert "RESOLUTION_TOO_LOW" in page.get_attribute("#verdict", "data-codes").split()
    assert page.locator("#issues tr[data-code='RESOLUTION_TOO_LOW']").count() == 1
    page.wait_for_selector("#annotated[data-annotated='true']")


def test_german_hints(page: Any, samples: Path) -> None:
    page.set_input_files("#file", str(samples / "rocket.jpg"))
    assert verdict(page) == "fail"
    page.select_option("#locale", "de")  # the same photo is checked again, in German
    page.locator("#hints li", has_text="zu klein").first.wait_for(timeout=VERDICT_TIMEOUT_MS)
    assert verdict(page) == "fail"
    assert page.inner_text("#verdict").strip() == "NICHT OK"
    assert page.inner_text("h1") == "Prüfen Sie Ihr Foto"


def test_unreadable_file(page: Any, tmp_path: Path) -> None:
    junk = tmp_path / "notes.jpg"
    junk.write_bytes(b"this is not a photo")
    page.set_input_files("#file", str(junk))
    assert verdict(page) == "fail"
    assert "FAILED_TO_READ_IMAGE" in page.get_attribute("#verdict", "data-codes")
    assert "could not be opened" in hints(page)[0]


def test_dropped_photo(page: Any, samples: Path) -> None:
    data = base64.b64encode((samples / "rocket.jpg").read_bytes()).decode("ascii")
    page.evaluate(
        """async ({data, name}) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
            const target = document.getElementById("drop");
            for (const type of ["dragenter", "dragover", "drop"]) {
                target.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
            }
        }""",
        {"data": data, "name": "rocket.jpg"},
    )
    assert verdict(page) == "fail"
    assert "RESOLUTION_TOO_LOW" in page.get_attribute("#verdict", "data-codes")


def test_camera_capture(page: Any) -> None:
    """Chromium's fake camera: start it, take a photo, and get a verdict on what it captured."""
    button = page.locator("#camera-start")
    assert button.is_visible()  # 127.0.0.1 is a secure context, so getUserMedia is offered
    button.click()
    page.wait_for_selector("#camera[data-ready='true']", timeout=30_000)
    page.click("#camera-capture")
    assert verdict(page) == "fail"
    assert page.locator("#camera").is_hidden()  # the camera is released after the shot
    # The fake camera films a test pattern, not a face.
    assert "FACE_NOT_FOUND" in page.get_attribute("#verdict", "data-codes").split()
