"""
An irctest controller for chatservice: irctest, the public IRC server
conformance suite, starts the installed C{twistd -n chat} through it, one
fresh server (an in-memory database, a new temporary directory) for each
test, as its own C{controllers/ngircd.py} does for ngircd.

irctest is not a dependency of the project: it lives in C{../shared/irctest}
beside the clone, and this module imports it. So the module is loaded only
by irctest's own pytest run, as C{--controller
tests.conformance.irctest_chatservice}; its name does not match
C{test_*.py}, so neither C{python -m pytest} nor C{python -m twisted.trial
tests} ever imports it. How to run it is in C{.ci/run}.

What the server must do for this controller is small and stated here once:
take C{--irc-port} and C{--irc-server-name}, and log C{IRC server listening
on ...} once its IRC listener is up (the line the end-to-end tests wait for
too).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from irctest import patma
from irctest.basecontrollers import BaseServerController, DirectoryBasedController
from irctest.runner import NotImplementedByController

# The twistd of the environment irctest runs in, where chatservice is
# installed (as the end-to-end tests start it).
TWISTD = Path(sys.executable).parent / "twistd"

# irctest's tests expect this name in prefixes and numerics.
SERVER_NAME = "My.Little.Server"

_LISTENING = re.compile(rb"IRC server listening on .*port=(\d+)")

# How long the server may take to start listening before the test fails.
START_TIMEOUT = 30.0

# irctest finds a free port by binding the wildcard address, and passes that
# address on; its clients then connect to it, which Linux takes as loopback.
# The server listens on loopback alone, so that no test server is ever
# reachable from the network.
_WILDCARDS = {"", "0.0.0.0"}


def server_options(hostname: str, port: int) -> list[str]:
    """
    The C{twistd chat} options for a test server: IRC on C{hostname}:C{port},
    the line protocol on any free loopback port (it cannot be turned off),
    nothing kept between tests, and no limit that irctest's bursts of
    commands and connections from one address would trip.
    """
    interface = "127.0.0.1" if hostname in _WILDCARDS else hostname
    kind = "tcp6" if ":" in interface else "tcp"
    escaped = interface.replace(":", r"\:")
    return [
        "--port",
        "tcp:0:interface=127.0.0.1",
        "--irc-port",
        f"{kind}:{port}:interface={escaped}",
        "--irc-server-name",
        SERVER_NAME,
        "--database",
        ":memory:",
        "--flood-rate",
        "0",
        "--max-per-ip",
        "0",
        # irctest stops the server before it closes its clients: a grace
        # period would only make every test wait for it.
        "--shutdown-grace",
        "0",
    ]


class ChatserviceController(BaseServerController, DirectoryBasedController):
    """
    Runs C{twistd -n chat} for one irctest test case, and stops it (by its
    process group, as irctest's base class does) when the test ends.
    """

    software_name = "chatservice"
    supported_sasl_mechanisms: set[str] = set()
    supports_sts = False

    # The ISUPPORT tokens issue 12 asks for, checked by isupport.py's
    # testValues; a value is given where the chat has only one.
    isupport = {
        "CASEMAPPING": patma.ANYSTR,
        "CHANTYPES": "#",
        "PREFIX": "(ov)@+",
        "NICKLEN": patma.ANYSTR,
        "CHANNELLEN": patma.ANYSTR,
        "TOPICLEN": patma.ANYSTR,
        "TARGMAX": patma.ANYSTR,
        "CHANMODES": patma.ANYSTR,
        "NETWORK": patma.ANYSTR,
    }

    def run(
        self,
        hostname: str,
        port: int,
        *,
        password: str | None,
        ssl: bool,
        run_services: bool,
        faketime: str | None,
        websocket_hostname: str | None,
        websocket_port: int | None,
    ) -> None:
        if password is not None:
            raise NotImplementedByController("PASS as a server password")
        if ssl:
            raise NotImplementedByController("TLS")
        if run_services:
            raise NotImplementedByController("services")
        if websocket_hostname is not None or websocket_port is not None:
            raise NotImplementedByController("Websocket")
        assert self.proc is None
        self.hostname = hostname
        self.port = port
        self.create_config()
        # LIST's time filters are tested with the server's clock sped up
        # by libfaketime's faketime (Debian's faketime; .ci/run installs
        # it); without it irctest would wait minutes of real time.
        speed_up: list[str] = []
        if faketime is not None and shutil.which("faketime"):
            speed_up = ["faketime", "-f", faketime]
            self.faketime_enabled = True
        self.proc = self.execute(
            [
                *speed_up,
                TWISTD,
                "-n",
                "--pidfile=",
                "chat",
                *server_options(hostname, port),
            ],
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        listening = threading.Event()
        threading.Thread(
            target=self._drain,
            args=(self.proc.stdout, listening),
            name="chatservice output",
            daemon=True,
        ).start()
        deadline = time.monotonic() + START_TIMEOUT
        while not listening.wait(0.05):
            self.check_is_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"twistd chat: no listener in {START_TIMEOUT} s")

    def _drain(self, output: IO[bytes], listening: threading.Event) -> None:
        """
        Read the server's log to its end: set C{listening} at the line that
        says the IRC listener is up, and keep reading after it, so that the
        server never blocks on a full pipe. With C{IRCTEST_DEBUG_LOGS=1},
        the log is shown with irctest's own output.
        """
        for line in output:
            if not listening.is_set() and _LISTENING.search(line):
                listening.set()
            if self.debug_mode:
                sys.stdout.buffer.write(f"{time.time():.3f} twistd ".encode() + line)


def get_irctest_controller_class() -> type[ChatserviceController]:
    return ChatserviceController
