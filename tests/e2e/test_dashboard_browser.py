"""The dashboard in a real browser: headless Chromium (Debian ``chromium`` and ``chromium-driver``)
drives a real Streamlit server that talks to a real API, both on loopback ports.

Sign in with a key, open the caseload, open a student, log an intervention, and check through
the API that it was stored. With ``RETAIN_SCREENSHOTS=DIR`` (``make screenshots``) it also saves
a screenshot of every page there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

APP = Path(__file__).resolve().parents[2] / "src" / "retain" / "dashboard" / "app.py"
READY = {  # text each page shows once its content is drawn
    "Upload": "Score a file",
    "Insights": "differences that hold",
    "Fairness": "Adverse outcomes caught",
    "Intervention impact": "Flagged students",
    "Models and operations": "Gate decisions",
    "Engagement (images)": "has opted in",
}
PAGES = [
    "Caseload",
    "Student",
    "Upload",
    "Insights",
    "Fairness",
    "Intervention impact",
    "Models and operations",
    "Engagement (images)",
]


def _browser_tools() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        message = "needs Debian chromium and chromium-driver (make system-tools)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def dashboard(api_env: Any) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "RETAIN_DASHBOARD_API_URL": api_env.url}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(APP),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            "--global.developmentMode",
            "false",
            "--client.toolbarMode",
            "viewer",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        process.kill()
        raise AssertionError(
            f"the dashboard did not start: {process.stderr.read() if process.stderr else ''}"
        )
    yield url
    process.terminate()
    process.wait(timeout=15)


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium, driver_path = _browser_tools()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _wait_text(driver: Any, text: str, timeout: float = 60) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), text))


def _click_button(driver: Any, label: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    button = WebDriverWait(driver, 30).until(
        ec.element_to_be_clickable((By.XPATH, f"//button[normalize-space(.)='{label}']"))
    )
    button.click()


def _shot(driver: Any, name: str) -> None:
    folder = os.environ.get("RETAIN_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        time.sleep(1.5)  # let charts finish drawing
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def test_sign_in_open_a_student_and_log_an_intervention(api_env: Any, dashboard: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(dashboard)
    key_box = WebDriverWait(browser, 60).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "input[type='password']"))
    )
    _shot(browser, "0-sign-in")
    key_box.send_keys(api_env.admin_key)
    _click_button(browser, "Sign in")
    _wait_text(browser, "highest-risk students")
    _shot(browser, "1-caseload")

    _click_button(browser, "Open student")
    _wait_text(browser, "Suggested interventions")
    _wait_text(browser, "Log what happened")
    _shot(browser, "2-student")
    note = WebDriverWait(browser, 30).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "textarea[aria-label='Note']"))
    )
    note.send_keys("met in person; weekly check-ins agreed")
    _click_button(browser, "Log intervention")
    _wait_text(browser, "Logged:")

    caseload = httpx.get(
        f"{api_env.url}/v1/dropout/students",
        params={"task": "dropout", "limit": 1},
        headers={"X-API-Key": api_env.admin_key},
    ).json()
    sid = caseload["students"][0]["student_id"]  # the student "Open student" opened: the riskiest
    history = httpx.get(
        f"{api_env.url}/v1/dropout/students/{sid}", headers={"X-API-Key": api_env.admin_key}
    ).json()
    notes = [i.get("note") for i in history["interventions"]]
    assert "met in person; weekly check-ins agreed" in notes

    for position, page in enumerate(PAGES[2:], start=3):
        label = WebDriverWait(browser, 30).until(
            ec.element_to_be_clickable((By.XPATH, f"//label[.//p[normalize-space(.)='{page}']]"))
        )
        label.click()
        _wait_text(browser, READY.get(page, page))
        assert "The service answered" not in browser.find_element(By.TAG_NAME, "body").text
        _shot(browser, f"{position}-{page.lower().replace(' ', '-')}")
