"""The web UI in a real headless Chromium: a real uvicorn server over a ChatService of scripted Crews whose answer
needs a person's approval. The user sends a request, sees the delegation tree and the answer waiting, approves it in
the approvals panel and sees the run finish; no request leaves 127.0.0.1. A screenshot is saved either way under
SMOLCREW_ARTIFACTS_DIR (default tests/browser/artifacts/) for CI to keep.

Needs Debian's chromium and chromium-driver (`.ci/install-browser`), Redis and the packaged MiniLM; outside CI a
missing one skips with the command that installs or starts it (in CI it fails).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

pytest.importorskip("selenium", reason="selenium is not installed: pip install 'selenium>=4.30,<5'")
pytest.importorskip("gradio", reason="gradio is not installed: pip install 'gradio>=6,<7'")

import uvicorn
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from smolcrew.backends import ScriptedModel
from smolcrew.config import Settings, load_settings
from smolcrew.crew import Crew
from smolcrew.server.api import create_app
from smolcrew.server.service import ChatService
from tests.conftest import code, home_with_shared_cache, require_program
from tests.memory.backends.redis import REDIS_URL
from tests.validators.test_human import approval_queue

pytestmark = pytest.mark.usefixtures("minilm_available")

ARTIFACTS = Path(os.environ.get("SMOLCREW_ARTIFACTS_DIR") or Path(__file__).parent / "artifacts").resolve()
"""Read at import: the autouse `isolated_env` fixture clears SMOLCREW_* variables before each test."""
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
INSTALL = "bash .ci/install-browser (apt-get install chromium chromium-driver)"
SIMILARITY = code(
    'r = compare_sentences(text_a="the cat sleeps", text_b="a kitten naps")\nfinal_answer(r["similarity"])'
)
REQUEST = "How similar in meaning are 'the cat sleeps' and 'a kitten naps'?"
WAIT_S = 60


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings whose runs escalate to a person (the run calls compare_sentences), in a fresh Redis namespace."""
    home = home_with_shared_cache(tmp_path / "home")  # router embeddings, made once
    with approval_queue() as queue:
        yield load_settings(
            home=str(home),
            validation={"approval_tools": ["compare_sentences"]},
            services={"redis_url": REDIS_URL},
            memory={"namespace": queue.namespace},
        )


@pytest.fixture
def server(settings: Settings) -> Iterator[tuple[str, ChatService]]:
    """A uvicorn server with the API and the UI on a free port, in a thread; its base URL and service."""
    factory: Callable[[Settings], Crew] = lambda s: Crew(s, model=ScriptedModel([SIMILARITY]))  # noqa: E731
    with ChatService(settings, crew_factory=factory) as service:
        port = _free_port()
        app = create_app(settings, service=service, mount_ui=True)
        runner = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not runner.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runner.started, "uvicorn did not start within 20 s"
        yield f"http://127.0.0.1:{port}", service
        runner.should_exit = True
        thread.join(10)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium driven by the system chromedriver, with its network log on."""
    chromium, chromedriver = (require_program(str(path), INSTALL) for path in (CHROMIUM, CHROMEDRIVER))
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", "--window-size=1400,1600"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


def _text(driver: Any, css: str) -> str:
    """The visible text under `css`, whitespace collapsed (code spans render as elements of their own)."""
    return " ".join(" ".join(element.text.split()) for element in driver.find_elements(By.CSS_SELECTOR, css))


def _wait_for(driver: Any, css: str, *needles: str) -> str:
    """Wait until the elements under `css` show every needle; return their text."""
    try:
        WebDriverWait(driver, WAIT_S, poll_frequency=0.2).until(
            lambda d: all(needle in _text(d, css) for needle in needles)
        )
    except TimeoutException:
        pytest.fail(f"{css} never showed {needles}; it shows: {_text(driver, css)[-1500:]!r}")
    return _text(driver, css)


def _hosts(driver: Any) -> set[str]:
    """Hosts of every request the page made (from Chromium's performance log)."""
    hosts = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = urlsplit(message["params"]["request"]["url"])
            if url.scheme in ("http", "https", "ws", "wss"):
                hosts.add(url.netloc)
    return hosts


def test_a_person_approves_the_answer_in_the_ui_and_sees_the_run_finish(
    server: tuple[str, ChatService], browser: Any, request: pytest.FixtureRequest
) -> None:
    url, service = server
    try:
        browser.get(f"{url}/ui/")
        box = WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.CSS_SELECTOR, "#message textarea"))
        box.send_keys(REQUEST)
        box.send_keys(Keys.ENTER)

        _wait_for(browser, "#chat", REQUEST, "A person must approve this answer")
        _wait_for(browser, "#tree", "router → language", "compare_sentences", "language answers")
        _wait_for(browser, "#run-status", "Waiting for a person")
        pending = service.list_approvals("pending")
        assert len(pending) == 1 and "compare_sentences" in " ".join(pending[0].reasons)
        approval = pending[0]
        _wait_for(browser, "#approvals", approval.id)
        _wait_for(browser, "#approval-details", "compare_sentences")

        browser.find_element(By.XPATH, f"//*[@id='approvals']//label[contains(., '{approval.id}')]").click()
        browser.find_element(By.CSS_SELECTOR, "#approval-note textarea").send_keys("checked by hand")
        browser.find_element(By.CSS_SELECTOR, "#approve").click()

        _wait_for(browser, "#approval-notice", f"Approval {approval.id} approved by web")
        status = _wait_for(browser, "#run-status", "ended: success")
        result = service.result(approval.run_id)
        assert result is not None and result["state"] == "success" and isinstance(result["answer"], float)
        assert result["run_id"] in status
        chat = _wait_for(browser, "#chat", "Approved by web (approval", approval.id, "): checked by hand")
        assert "A person must approve" not in chat  # the waiting message became the decision
        _wait_for(browser, "#chat", str(result["answer"]))
        _wait_for(browser, "#approval-details", "No approvals are pending")
        assert service.get_approval(approval.id).note == "checked by hand"
        browser.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Audit report')]").click()
        _wait_for(browser, "#audit-report", result["run_id"], "Final answer")
        hosts = _hosts(browser)
        assert hosts == {urlsplit(url).netloc}, f"the page fetched from other hosts: {hosts}"
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(ARTIFACTS / f"{request.node.name}.png"))
