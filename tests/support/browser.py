"""
The web client in a real browser: Debian's C{chromium}, headless, driven
through Debian's C{chromium-driver} by Selenium, against the installed
C{twistd -n chat --web ...}.

  - L{find_browser}: the browser and its driver; without them a test is
    skipped, except in CI (C{CI=true}), where it fails: C{.ci/run}
    installs them when they are missing.
  - L{web_server}: the server with a web listener, and its web port.
  - L{Page}: one browser window on the client, stopped in the test's
    cleanup. Every wait polls the page's DOM until a condition holds, up to
    a deadline: no fixed sleeps.
"""

from __future__ import annotations

import os
import re
import shutil
import unittest
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from twisted.trial.unittest import SynchronousTestCase

from tests.support.helpers import ServerProcess

# How long one wait for the page may take before it is a failure.
WAIT = 5.0
# Narrow enough for the phone layout's breakpoint to stay off; the tests
# of the phone layout resize.
WIDTH, HEIGHT = 1100, 650

_WEB_LISTENING = re.compile(rb"Web server listening on .*port=(\d+)")

T = TypeVar("T")


def find_browser() -> tuple[str, str]:
    """
    The paths of C{chromium} and C{chromedriver}, with Selenium importable;
    without them, skip the test, or fail it in CI.
    """
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing = "Selenium (the test extra)"
    else:
        missing = "" if chromium and driver else "chromium and chromium-driver"
    if missing:
        if os.environ.get("CI") == "true":
            raise AssertionError(f"{missing} not installed: .ci/run installs them")
        raise unittest.SkipTest(f"{missing} not installed (Debian's packages)")
    assert chromium is not None and driver is not None
    return chromium, driver


def web_server(
    testcase: SynchronousTestCase,
    web: str = "tcp:0:interface=127.0.0.1",
    options: Sequence[str] = ("--database", ":memory:"),
) -> tuple[ServerProcess, int]:
    """The installed server with a web listener C{web}; and its web port."""
    server = ServerProcess(testcase, options=["--web", web, *options])
    [found] = server.logged(_WEB_LISTENING)
    return server, int(found.group(1))


class Page:
    """
    A headless Chromium window on C{url}, with a profile of its own (so its
    own saved nickname and rooms), quit in the test's cleanup.
    """

    def __init__(self, testcase: SynchronousTestCase, url: str) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        chromium, driver = find_browser()
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for argument in [
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--disable-extensions",
            "--no-first-run",
            f"--window-size={WIDTH},{HEIGHT}",
        ]:
            options.add_argument(argument)
        # A dialog (alert) stays open, for a test to find, rather than
        # being dismissed by the driver.
        options.set_capability("unhandledPromptBehavior", "ignore")
        self.driver = webdriver.Chrome(options=options, service=Service(driver))
        testcase.addCleanup(self.driver.quit)
        self.driver.set_page_load_timeout(WAIT)
        self.driver.get(url)
        self.wait_status("connected")

    def wait(self, condition: Callable[[], T], timeout: float = WAIT) -> T:
        """
        Poll C{condition} until it returns something true, and return that;
        fail after C{timeout} seconds.
        """
        from selenium.webdriver.support.ui import WebDriverWait

        result: T = WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(
            lambda _: condition()
        )
        return result

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def text(self, element_id: str) -> str:
        return str(
            self.js(
                "return document.getElementById(arguments[0]).textContent", element_id
            )
        )

    def wait_status(self, text: str, timeout: float = WAIT) -> None:
        self.wait(lambda: self.text("status").startswith(text), timeout)

    def lines(self) -> list[str]:
        """The text of every line of the conversation shown."""
        found = self.js(
            "return [...document.querySelectorAll('.log:not([hidden]) .line')]"
            ".map((p) => p.textContent)"
        )
        return [str(line) for line in found]

    def wait_line(self, text: str, timeout: float = WAIT) -> str:
        """Wait for a line of the conversation shown that ends with C{text}."""

        def found() -> str | None:
            return next((line for line in self.lines() if line.endswith(text)), None)

        from selenium.common.exceptions import TimeoutException

        try:
            line = self.wait(found, timeout)
        except TimeoutException as e:
            raise AssertionError(f"no line ending {text!r} in {self.lines()!r}") from e
        assert line is not None
        return line

    def type(self, line: str) -> None:
        """Type C{line} into the message box and send it."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        self.driver.find_element(By.ID, "line").send_keys(line, Keys.ENTER)

    def click(self, element_id: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.ID, element_id).click()

    def click_tab(self, conversation: str) -> None:
        """Show the conversation C{conversation} (C{room:lobby}, say)."""
        from selenium.webdriver.common.by import By

        self.driver.find_element(
            By.CSS_SELECTOR, f'.tab[data-conversation="{conversation}"]'
        ).click()
        self.wait(
            lambda: self.js(
                "return document.querySelector("
                "'.log[data-conversation=\"' + arguments[0] + '\"]').hidden === false",
                conversation,
            )
        )

    def fill(self, element_id: str, text: str) -> None:
        from selenium.webdriver.common.by import By

        field = self.driver.find_element(By.ID, element_id)
        field.clear()
        field.send_keys(text)

    def choose_nick(self, nick: str) -> None:
        """Take C{nick} through the account panel a first visit shows."""
        self.wait(lambda: self.js("return !document.getElementById('account').hidden"))
        self.fill("account-nick", nick)
        self.click("use-nick")
        self.wait(lambda: self.text("me") == nick)

    def join(self, room: str) -> None:
        self.type(f"/join {room}")
        self.wait(lambda: self.text("title") == room)

    def members(self) -> list[str]:
        found = self.js(
            "return [...document.querySelectorAll('#member-list .member')]"
            ".map((b) => b.textContent)"
        )
        return [str(m) for m in found]

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        assert self.driver.save_screenshot(str(path)), path
