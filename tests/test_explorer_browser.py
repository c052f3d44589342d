"""The explorer page in a real browser: Debian's chromium, headless, driven by Selenium through chromium-driver.

Skipped when chromium, its driver or selenium is missing, unless LSTMGAN_REQUIRE_BROWSER is set
(.ci/run sets it, after installing chromium): then a missing browser fails the run.
Screenshots of both tabs go to $LSTMGAN_SCREENSHOTS when set (docs/figures takes them from there).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
missing = [what for what, there in (("chromium", Path(CHROMIUM).exists()), ("chromium-driver", Path(DRIVER).exists()))
           if not there]
try:
    import selenium  # noqa: F401
except ImportError:
    missing.append("selenium")
if missing and os.environ.get("LSTMGAN_REQUIRE_BROWSER"):
    raise RuntimeError(f"LSTMGAN_REQUIRE_BROWSER is set but {', '.join(missing)} is missing")
pytestmark = pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} (apt install chromium "
                                                      "chromium-driver; pip install selenium)")
pytest.importorskip("starlette")

from lstmgan.explorer.catalog import build_catalog  # noqa: E402
from lstmgan.explorer.server import Background  # noqa: E402
from lstmgan.gan.classifier import load_classifier, to_unit_range  # noqa: E402

WAIT = 120   # seconds; the memory picture of T = 200 takes a few on a busy 2-core machine


@pytest.fixture(scope="module")
def base_url():
    with Background(build_catalog()) as url:
        yield url


@pytest.fixture(scope="module")
def browser(base_url):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                     "--disable-background-networking", "--disable-component-update", "--no-first-run",
                     "--disable-sync", "--disable-default-apps", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})   # every request the page makes
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_script_timeout(60)
    driver.get(base_url)
    yield driver
    driver.quit()


def wait_until(driver, condition, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(lambda d: condition(d), message=what)


def image_bytes(driver, element_id: str) -> bytes:
    """The bytes the <img> shows (its blob or data URL), read from inside the page."""
    data = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(document.getElementById(arguments[0]).src).then(r => r.arrayBuffer()).then(buffer => {
          let text = ""; new Uint8Array(buffer).forEach(b => text += String.fromCharCode(b)); done(btoa(text));
        }).catch(error => done("error: " + error));""", element_id)
    assert not data.startswith("error"), data
    return base64.b64decode(data)


def shown(driver, element_id: str) -> bytes:
    """Wait until the <img> holds a picture, then its bytes."""
    def has_picture(d):
        return (d.find_element("id", element_id).get_attribute("src") or "").startswith(("blob:", "data:"))

    wait_until(driver, has_picture, f"#{element_id} never showed a picture")
    return image_bytes(driver, element_id)


def changed(driver, element_id: str, before: bytes) -> bytes:
    wait_until(driver, lambda d: image_bytes(d, element_id) != before, f"#{element_id} did not change")
    return image_bytes(driver, element_id)


def screenshot(driver, tmp_path, name: str) -> None:
    driver.save_screenshot(str(tmp_path / name))
    folder = os.environ.get("LSTMGAN_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / name, Path(folder) / name)


def choose(driver, select_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", select_id)).select_by_value(value)


def test_the_page_loads_with_a_grid_of_the_recommended_generator(browser):
    assert browser.title == "lstmgan explorer"
    wait_until(browser, lambda d: d.find_element("id", "generator").get_attribute("value") == "pretrained:mnist",
               "the generator list did not load")
    grid = Image.open(io.BytesIO(shown(browser, "grid")))
    assert grid.size == (5 * 30 + 2, 5 * 30 + 2)                        # 5 x 5 cells of 28 + 2 padding
    assert "fid" in browser.find_element("id", "generator-metrics").text


def test_new_noise_changes_the_grid(browser):
    before = shown(browser, "grid")
    seed = browser.find_element("id", "seed").get_attribute("value")
    browser.find_element("id", "new-noise").click()
    changed(browser, "grid", before)
    assert browser.find_element("id", "seed").get_attribute("value") != seed


def test_moving_the_slider_changes_the_interpolation(browser):
    from selenium.webdriver.common.keys import Keys

    before = shown(browser, "between")
    slider = browser.find_element("id", "slider")
    slider.send_keys(Keys.END)                                            # as a user would: all the way to B
    after = changed(browser, "between", before)
    assert browser.find_element("id", "slider-value").text == "1.00"
    slider.send_keys(Keys.ARROW_LEFT * 30)
    changed(browser, "between", after)
    assert browser.find_element("id", "slider-value").text == "0.70"


def test_the_conditional_generator_asked_for_a_7_draws_sevens(browser, tmp_path):
    before = shown(browser, "grid")
    choose(browser, "generator", "pretrained:mnist-cgan")
    wait_until(browser, lambda d: d.find_element("id", "digit-label").is_displayed(), "no digit choice for the cGAN")
    before = changed(browser, "grid", before)
    choose(browser, "digit", "7")
    picture = np.asarray(Image.open(io.BytesIO(changed(browser, "grid", before))).convert("L"))
    cells = np.stack([picture[2 + r * 30: 2 + r * 30 + 28, 2 + c * 30: 2 + c * 30 + 28]
                      for r in range(5) for c in range(5)])
    classifier, _ = load_classifier("mnist")
    with torch.no_grad():
        read = classifier(to_unit_range(torch.from_numpy(cells))).argmax(1)
    assert (read == 7).sum() >= 23, read.tolist()
    screenshot(browser, tmp_path, "explorer_gan.png")


def test_typing_a_sequence_shows_a_prediction_and_the_memory_picture(browser, tmp_path):
    browser.find_element("id", "tab-palindrome").click()
    choose(browser, "pmodel", "pretrained:palindrome-T200")
    box = browser.find_element("id", "sequence")
    box.clear()
    box.send_keys("7" + "0123456789" * 20)                                # 201 digits, first digit 7
    browser.find_element("id", "predict").click()
    wait_until(browser, lambda d: "predicts" in d.find_element("id", "prediction").text, "no prediction shown")
    assert browser.find_element("id", "prediction").text.startswith("T = 201: predicts")
    assert len(browser.find_elements("css selector", "#probabilities .bar")) == 10
    shown(browser, "memory")
    assert "units carry the first digit" in browser.find_element("id", "memory-summary").text
    box.clear()
    box.send_keys("12a4")
    browser.find_element("id", "predict").click()
    wait_until(browser, lambda d: "only the digits 0-9" in d.find_element("id", "palindrome-error").text,
               "letters in the sequence gave no message")
    browser.find_element("id", "fresh").click()                           # a fresh palindrome of T = 200 instead
    wait_until(browser, lambda d: "(the first digit)" in d.find_element("id", "prediction").text
               and d.find_element("id", "palindrome-error").text == "", "a fresh palindrome was not predicted right")
    wait_until(browser, lambda d: "units carry" in d.find_element("id", "memory-summary").text, "no memory picture")
    screenshot(browser, tmp_path, "explorer_palindromes.png")


def test_every_request_the_page_made_went_to_the_local_server(browser, base_url):
    urls = [json.loads(entry["message"])["message"]["params"]["request"]["url"]
            for entry in browser.get_log("performance")
            if json.loads(entry["message"])["message"]["method"] == "Network.requestWillBeSent"]
    assert len(urls) >= 10                     # the page, its assets, grids, morphs, predictions were all seen
    foreign = [u for u in urls if not u.startswith((base_url, "data:", "blob:"))]
    assert not foreign, foreign
