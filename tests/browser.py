"""Headless Debian chromium driven by selenium, and the page actions the dashboard tests share.

Nothing is downloaded: selenium is pointed at /usr/bin/chromium and /usr/bin/chromedriver (SE_OFFLINE=true).
Selectors follow ZenML 0.98's dashboard and MLflow 3.17's UI (see shared/reference/browser-checks.md).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_SECONDS = 60


@contextmanager
def chromium_driver() -> Iterator["object"]:
    previous = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never try to download a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1600,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        if previous is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = previous


def click_when_uncovered(driver, xpath: str, seconds: float = WAIT_SECONDS) -> None:
    """Click the element once it is clickable and nothing lies over it (an animation may cover it at first)."""
    from selenium.common.exceptions import ElementClickInterceptedException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    deadline = time.monotonic() + seconds
    while True:
        element = WebDriverWait(driver, seconds).until(EC.element_to_be_clickable((By.XPATH, xpath)))
        try:
            element.click()
            return
        except ElementClickInterceptedException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


LOAD_PREVIEW = "//*[@role='dialog']//button[normalize-space()='Load Preview']"
SHEET_ATTEMPTS = 3
PREVIEW_SECONDS = 30


def _open_visualization_tab(driver, zenml_url: str, run_id: str, artifact: str) -> None:
    """Load the run page, click the artifact's node in the DAG and the side sheet's Visualization tab."""
    from selenium.common.exceptions import ElementClickInterceptedException, TimeoutException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, WAIT_SECONDS)
    driver.get(f"{zenml_url}/projects/default/runs/{run_id}")
    # The DAG opens zoomed on its first step and renders only the nodes in view: fit it to show every artifact.
    wait.until(EC.element_to_be_clickable((By.XPATH, "//button[@aria-label='Fit view']"))).click()
    node_path = f"//div[contains(@class,'react-flow__node-artifact')][.//p[normalize-space()='{artifact}']]"
    node = wait.until(EC.element_to_be_clickable((By.XPATH, node_path)))
    try:
        node.click()
    except ElementClickInterceptedException:
        # The node lies under the DAG's controls (top left): drag the canvas right, as a user would, and click it.
        pane = driver.find_element(By.CSS_SELECTOR, ".react-flow__pane")
        ActionChains(driver).move_to_element_with_offset(pane, 60 - pane.rect["width"] / 2,
                                                         pane.rect["height"] / 2 - 100) \
            .click_and_hold().move_by_offset(200, 0).release().perform()
        wait.until(EC.element_to_be_clickable((By.XPATH, node_path))).click()
    # The side sheet slides in and re-renders as its data arrives: until it has settled, its header can lie over
    # the tabs and a click on a tab may be lost (seen on a loaded machine). A user clicks again until it is selected.
    tab = "//*[@role='dialog']//button[@role='tab'][normalize-space()='Visualization']"
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        click_when_uncovered(driver, tab)
        try:
            WebDriverWait(driver, 3).until(EC.presence_of_element_located((By.XPATH, f"{tab}[@aria-selected='true']")))
            return
        except TimeoutException:
            if time.monotonic() > deadline:
                raise


def _sheet_state(driver) -> str:
    """What the side sheet shows and how the page's requests to the ZenML API ended, for a failure message."""
    from selenium.webdriver.common.by import By

    dialogs = driver.find_elements(By.XPATH, "//*[@role='dialog']")
    shown = " | ".join(" ".join(d.text.split())[:600] for d in dialogs) or "no side sheet open"
    requests = driver.execute_script(
        "return performance.getEntriesByType('resource').filter(e => e.name.includes('/api/v1/'))"
        ".map(e => [e.name.split('/api/v1/')[1], e.responseStatus, Math.round(e.duration)]);")
    return f"sheet: {shown}; API requests [path, status, ms]: {requests}"


def artifact_visualization_text(driver, zenml_url: str, run_id: str, artifact: str, screenshot: Path,
                                focus: Optional[str] = None) -> str:
    """Open the run page, click the artifact node, load its (first) visualization and return the iframe's text.

    `focus`: an XPath inside the visualization scrolled into view before the screenshot is taken.
    If the sheet shows no "Load Preview" button, the page is reloaded as a user would, up to SHEET_ATTEMPTS times;
    each miss is reported (a warning, or the failure message) with what the sheet showed and the API's answers.
    """
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    misses = []
    for attempt in range(1, SHEET_ATTEMPTS + 1):
        _open_visualization_tab(driver, zenml_url, run_id, artifact)
        try:
            click_when_uncovered(driver, LOAD_PREVIEW, seconds=PREVIEW_SECONDS)
            break
        except TimeoutException:
            misses.append(f"attempt {attempt}: {_sheet_state(driver)}")
    else:
        driver.save_screenshot(str(screenshot))
        raise AssertionError(f"{artifact}: no 'Load Preview' button after {SHEET_ATTEMPTS} page loads\n"
                             + "\n".join(misses))
    if misses:
        warnings.warn(f"{artifact}: the page was reloaded before 'Load Preview' appeared\n" + "\n".join(misses),
                      stacklevel=2)
    wait = WebDriverWait(driver, WAIT_SECONDS)
    frame = wait.until(EC.presence_of_element_located(
        (By.XPATH, "//*[@role='dialog']//iframe[@title='Secure HTML Content']")))
    driver.switch_to.frame(frame)
    try:
        body = wait.until(EC.visibility_of_element_located((By.TAG_NAME, "body")))
        if focus:  # wheel scrolling, since the sandboxed frame runs no script
            ActionChains(driver).scroll_to_element(driver.find_element(By.XPATH, focus)).perform()
        text = body.text
    finally:
        driver.switch_to.default_content()
    driver.save_screenshot(str(screenshot))
    return text


def mlflow_alias_row_text(driver, mlflow_url: str, model_name: str, alias: str, screenshot: Path) -> str:
    """The registered model's version row that carries `alias` in the MLflow UI."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, WAIT_SECONDS)
    driver.get(f"{mlflow_url}/#/models/{model_name}")
    # The chip is "@&nbsp;alias" in two text nodes: match any text node equal to the alias.
    row = wait.until(EC.visibility_of_element_located(
        (By.XPATH, f"//*[@role='row'][.//span[text()[normalize-space()='{alias}']]]")))
    # Rows are as tall as their tag lists: bring the alias chip itself on screen for the screenshot.
    chip = row.find_element(By.XPATH, f".//span[text()[normalize-space()='{alias}']]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", chip)
    driver.save_screenshot(str(screenshot))
    return row.text
