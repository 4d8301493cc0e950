"""The memory browser end to end in headless Chromium (Debian's chromium + chromedriver, driven by Selenium):
messages added through the API, consolidated by the scripted model, then a memory clicked, its source and
history seen, and deleted after the confirm dialog."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.test_rest import consolidated
from tests.support.memscope_server import KEYS, ServerProcess
from tests.support.scripted_server import BUILTIN_MODES, ScriptedServer
from tests.support.services import service_missing

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SOURCE = "I adopted a grey cat called Miso"


@pytest.fixture
def browser() -> Iterator[object]:
    """Headless Chromium through chromedriver; Selenium Manager is never asked to download anything."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        service_missing("chromium and chromedriver are not installed", "bash scripts/chromium.sh install")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,900", "--no-first-run", "--disable-extensions"):  # fmt: skip
        options.add_argument(arg)
    session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        yield session
    finally:
        session.quit()


def test_click_a_memory_see_its_source_and_history_then_delete_it(
    server: ServerProcess, model_server: ScriptedServer, browser, tmp_path: Path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    model_server.default(None, BUILTIN_MODES["consolidation"])
    with server.client(KEYS["acme"]) as api:
        api.post("/v1/messages", json={"user_id": "tom", "messages": [SOURCE, "I work as a nurse in Lisbon"]})
        memories = consolidated(api, "tom")
        model_server.default(None, BUILTIN_MODES["error"])  # the next message stays pending: the model fails
        api.post("/v1/messages", json={"user_id": "tom", "messages": ["Tomorrow I start a pottery class"]})
    target = next(m for m in memories if "Miso" in m["content"] and m["memory_type"] == "observation")
    wait = WebDriverWait(browser, 20)

    browser.get(f"{server.url}/ui")
    browser.find_element(By.NAME, "key").send_keys(KEYS["acme"])
    browser.find_element(By.ID, "sign-in").click()
    wait.until(ec.presence_of_element_located((By.NAME, "user_id"))).send_keys("tom")
    browser.find_element(By.ID, "open-user").click()
    row = wait.until(ec.element_to_be_clickable((By.ID, f"m-{target['id']}")))
    assert "pottery" in browser.find_element(By.ID, "pending").text  # the pending message is listed
    row.click()

    wait.until(ec.text_to_be_present_in_element((By.ID, "sources"), SOURCE))
    history = browser.find_element(By.ID, "history")
    assert [e.text for e in history.find_elements(By.CSS_SELECTOR, "tr.event .tag")] == ["add"]
    screenshot = tmp_path / "memory-browser.png"
    browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
    if os.environ.get("MEMSCOPE_UI_SCREENSHOT"):  # how docs/memory-browser.png of the README is made
        shutil.copy(screenshot, os.environ["MEMSCOPE_UI_SCREENSHOT"])

    browser.find_element(By.ID, "delete").click()
    wait.until(ec.alert_is_present()).accept()  # the delete asks first
    wait.until(ec.text_to_be_present_in_element((By.ID, "detail-status"), "deleted"))
    kinds = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#history tr.event .tag")]
    assert kinds == ["add", "delete"]
    wait.until(ec.invisibility_of_element_located((By.ID, f"m-{target['id']}")))  # the list refreshed
    browser.save_screenshot(str(tmp_path / "memory-browser-deleted.png"))

    with server.client(KEYS["acme"]) as api:
        gone = api.get(f"/v1/memories/{target['id']}", params={"user_id": "tom"}).json()
        assert gone["status"] == "deleted"


def test_the_browser_needs_a_key_and_keeps_to_its_tenant(server: ServerProcess, model_server: ScriptedServer):
    model_server.default(None, BUILTIN_MODES["consolidation"])
    with server.client(KEYS["acme"]) as api:
        api.post("/v1/messages", json={"user_id": "una", "messages": ["My password hint is Bluebird"]})
        consolidated(api, "una")
    with httpx.Client(base_url=server.url) as web:
        assert "Sign in" in web.get("/ui/").text
        assert web.post("/ui/login", data={"key": "wrong"}).status_code == 401
        assert web.get("/ui/user", params={"user_id": "una"}, follow_redirects=False).status_code == 303
        web.post("/ui/login", data={"key": KEYS["globex"]})
        page = web.get("/ui/user", params={"user_id": "una"})
        assert page.status_code == 200 and "Bluebird" not in page.text and "no memories match" in page.text
        web.cookies.clear()
        web.post("/ui/login", data={"key": KEYS["acme"]})
        assert "Bluebird" in web.get("/ui/user", params={"user_id": "una"}).text
        with server.client(KEYS["acme"]) as api:
            api.post("/v1/memories", json={"user_id": "una", "content": "<script>alert(1)</script> likes tags"})
        listed = web.get("/ui/memories", params={"user_id": "una"}).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt; likes tags" in listed and "<script>alert" not in listed
