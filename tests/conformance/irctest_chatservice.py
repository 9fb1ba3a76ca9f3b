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

Accounts (irctest's C{registerUser}, which its SASL tests call) are made
through the product, as a user would: over the line protocol (on the free
loopback port the server's log names), with C{/nick} and C{/register}. The chat keeps
accounts itself, so irctest's "services" tests run without separate
services. irctest's fixtures use short passwords (C{sesame}) and long ones
(592 characters): the test server takes any length from 1 to
L{PASSWORD_MAX}. Every server also has the operator account that irctest's
C{OPER operuser operpassword} expects, made when it starts.
"""

from __future__ import annotations

import re
import shutil
import socket
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
_LINE_LISTENING = re.compile(rb"Chat server listening on .*port=(\d+)")

# How long the server may take to start listening before the test fails.
START_TIMEOUT = 30.0

# The operator account irctest's tests OPER as.
OPERATOR = ("operuser", "operpassword")

# The longest account password a test server takes: longer than any of
# irctest's (592 characters, for SASL responses of two 400-byte chunks).
PASSWORD_MAX = 1024

# irctest finds a free port by binding the wildcard address, and passes that
# address on; its clients then connect to it, which Linux takes as loopback.
# The server listens on loopback alone, so that no test server is ever
# reachable from the network.
_WILDCARDS = {"", "0.0.0.0"}


def server_options(hostname: str, port: int) -> list[str]:
    """
    The C{twistd chat} options for a test server: IRC on C{hostname}:C{port},
    the line protocol on any free loopback port (it cannot be turned off,
    and accounts are made there), nothing kept between tests, irctest's
    operator account, and no
    limit that irctest's bursts of commands and connections from one
    address, or its passwords, would trip.
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
        "--operator",
        OPERATOR[0],
        "--password-min",
        "1",
        "--password-max",
        str(PASSWORD_MAX),
    ]


def register_account(port: int, nick: str, password: str) -> None:
    """
    Register the account C{nick} with C{password} as a line client would,
    on the line protocol's C{port}: C{/nick}, C{/register}, C{/quit}.
    Raises if the server refuses.
    """
    registered = f"*** {nick} is registered to you, and you are logged in."
    with socket.create_connection(("127.0.0.1", port), timeout=START_TIMEOUT) as s:
        s.sendall(f"/nick {nick}\r\n/register {password}\r\n".encode())
        reader = s.makefile("rb")
        for raw in reader:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line == registered:
                break
            if line.startswith("!!! "):
                raise RuntimeError(f"registering {nick}: {line}")
        else:
            raise RuntimeError(f"registering {nick}: the connection closed")
        s.sendall(b"/quit\r\n")


class ChatserviceController(BaseServerController, DirectoryBasedController):
    """
    Runs C{twistd -n chat} for one irctest test case, and stops it (by its
    process group, as irctest's base class does) when the test ends.
    """

    software_name = "chatservice"
    supported_sasl_mechanisms = {"PLAIN"}
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
        if websocket_hostname is not None or websocket_port is not None:
            raise NotImplementedByController("Websocket")
        assert self.proc is None
        self.hostname = hostname
        self.port = port
        self.line_port = 0
        self.create_config()
        options = server_options(hostname, port)
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
                *options,
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
        # The line listener starts before the IRC one, and says so first.
        if not self.line_port:
            raise RuntimeError("twistd chat: no line protocol listener in its log")
        register_account(self.line_port, *OPERATOR)

    def wait_for_services(self) -> None:
        # Accounts are the chat's own: up when the server is.
        pass

    def registerUser(
        self,
        case: object,
        username: str,
        password: str | None = None,
    ) -> None:
        if password is None:
            raise NotImplementedByController("accounts without a password")
        register_account(self.line_port, username, password)

    def _drain(self, output: IO[bytes], listening: threading.Event) -> None:
        """
        Read the server's log to its end: note the line protocol's port,
        set C{listening} at the line that says the IRC listener is up, and
        keep reading after it, so that the server never blocks on a full
        pipe. With C{IRCTEST_DEBUG_LOGS=1},
        the log is shown with irctest's own output.
        """
        for line in output:
            line_port = _LINE_LISTENING.search(line)
            if line_port is not None:
                self.line_port = int(line_port.group(1))
            if not listening.is_set() and _LISTENING.search(line):
                listening.set()
            if self.debug_mode:
                sys.stdout.buffer.write(f"{time.time():.3f} twistd ".encode() + line)


def get_irctest_controller_class() -> type[ChatserviceController]:
    return ChatserviceController
