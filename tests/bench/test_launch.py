"""
Tests for L{chatservice.bench.launch}: the servers C{chat-bench} starts,
and how it learns their port.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from chatservice.bench import launch
from chatservice.bench.launch import MINIMAL_PEER, label_for, ours_command


class PortPatternTests(SynchronousTestCase):
    def test_port_pattern(self) -> None:
        """
        The port is found in what our server and the minimal peer print.
        """
        for text, port in [
            (
                b"[chatservice.server.tap#info] Chat server listening on "
                b"IPv4Address(type='TCP', host='127.0.0.1', port=40213)",
                b"40213",
            ),
            (b"listening on 5555\n", b"5555"),
            (b"server ready, port 6000\n", b"6000"),
        ]:
            match = launch.PORT_PATTERN.search(text)
            assert match is not None
            self.assertEqual(match.group(1), port)


class ChatPortPatternTests(SynchronousTestCase):
    def test_chat_port_not_a_url(self) -> None:
        """
        Ours is measured on the port of its chat listener's log line, not
        on a port an earlier line names (a cluster node logs its
        postgresql:// URL, C{port=5432}, first).
        """
        log = (
            b"[chatservice.storage.database#info] Using database "
            b"postgresql://chat@/bench1?host=/tmp/x/pg&port=5432\n"
            b"[chatservice.server.service#info] Chat server listening on "
            b"IPv4Address(type='TCP', host='127.0.0.1', port=40213)\n"
        )
        match = launch.port_pattern("line").search(log)
        assert match is not None
        self.assertEqual(match.group(1), b"40213")


class CommandTests(SynchronousTestCase):
    def test_ours_keeps_history_in_a_file_of_its_own(self) -> None:
        """
        By default the benchmark measures our server as it runs by default,
        history on, with the database in the run's own directory rather
        than wherever chat-bench was started.
        """
        command = ours_command()
        database = command[command.index("--database") + 1]
        self.assertEqual(database, "{workdir}/chat.sqlite3")

    def test_minimal_peer_is_in_the_package(self) -> None:
        """
        The minimal peer is found beside the package's modules, wherever it
        is installed, not in a checkout's C{bench/}.
        """
        self.assertTrue(MINIMAL_PEER.is_file(), MINIMAL_PEER)
        self.assertEqual(MINIMAL_PEER.parent, Path(launch.__file__).parent / "peers")

    def test_labels(self) -> None:
        """
        A server command is named after its script, its module after
        C{-m}, or its program.
        """
        self.assertEqual(
            label_for(["python", "bench/peers/minimal.py", "1"]), "minimal"
        )
        self.assertEqual(
            label_for([sys.executable, "-m", "chatservice.bench.peers.minimal"]),
            "minimal",
        )
        self.assertEqual(label_for(["/usr/bin/twistd", "-n", "chat"]), "twistd")
        self.assertEqual(label_for([]), "server")


class KeptLogTests(SynchronousTestCase):
    """A server's log outlives it when it may explain what went wrong."""

    command = [
        sys.executable,
        "-c",
        "import time; print('listening on 1', flush=True); time.sleep(60)",
    ]

    def launch(self, keep: bool) -> tuple[Path, str]:
        """Start and stop a stand-in server; its log's path, and stderr."""
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            with launch.launched(self.command, "stand-in") as server:
                server.keep_log = keep
        assert server.log_path is not None
        if server.log_path.exists():
            self.addCleanup(shutil.rmtree, server.log_path.parent)
        return server.log_path, err.getvalue()

    def test_kept_when_asked(self) -> None:
        """
        A server whose run went wrong leaves its log, and chat-bench says
        where.
        """
        path, err = self.launch(True)
        self.assertTrue(path.exists())
        self.assertIn(f"it is kept at {path}", err)
        self.assertIn("listening on 1", path.read_text())

    def test_kept_when_a_run_failed(self) -> None:
        """A run that raised against it keeps its log too."""
        err = io.StringIO()
        with contextlib.redirect_stderr(err), self.assertRaises(RuntimeError):
            with launch.launched(self.command, "stand-in") as server:
                raise RuntimeError("the run failed")
        assert server.log_path is not None
        self.addCleanup(shutil.rmtree, server.log_path.parent)
        self.assertTrue(server.log_path.exists())
        self.assertIn("it is kept at", err.getvalue())

    def test_removed_otherwise(self) -> None:
        """Otherwise its directory goes with it."""
        path, err = self.launch(False)
        self.assertFalse(path.parent.exists())
        self.assertEqual(err, "")
