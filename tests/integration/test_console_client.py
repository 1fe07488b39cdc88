"""`mesh chat`, the console client, driven in a terminal (a pty through pexpect) against
real chat_svc replicas: what a person sees is the room's history, what others send,
what they type themselves, and after the replica they use was killed and came back,
everything they missed, once each and in order."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Callable, Iterator

import pexpect
import pytest

from chat_svc.client import ChatClient
from tests.integration.test_chat_streams import Replicas, replicas
from tests.support.processes import ROOT, ServiceProcess

__all__ = ["replicas"]  # the fixture shared with test_chat_streams
SEEN_WITHIN_S = 20


class Terminal:
    """`mesh chat` in a pseudo-terminal, and everything it has shown so far."""

    def __init__(self, room_id: str, user: str, token: str, targets: list[str]) -> None:
        argv = ["-m", "mesh.cli", "chat", "--room", room_id, "--user", user, "--token", token]
        for target in targets:
            argv += ["--target", target]
        self.screen = io.StringIO()
        self.child = pexpect.spawn(
            sys.executable, argv, cwd=str(ROOT), encoding="utf-8", timeout=SEEN_WITHIN_S, dimensions=(50, 200)
        )
        self.child.logfile_read = self.screen

    def sees(self, pattern: str) -> str:
        """Wait until the screen shows `pattern` (a regex); returns the line it matched."""
        self.child.expect(pattern)
        return str(self.child.after)

    def types(self, line: str) -> None:
        self.child.sendline(line)

    def lines_with(self, body: str) -> list[str]:
        """The printed message lines whose body is `body` (not the terminal's echo of a typed line)."""
        printed = re.compile(rf"#\d+ \S+: {re.escape(body)}\s*$")
        return [line for line in self.text().splitlines() if printed.search(line)]

    def text(self) -> str:
        return self.screen.getvalue().replace("\r", "")

    def close(self) -> None:
        self.child.sendeof()  # Ctrl-D: the console's own way out
        self.child.expect(pexpect.EOF, timeout=10)
        self.child.close()


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        if terminal.child.isalive():
            terminal.child.terminate(force=True)


def message_line(sender: str, body: str) -> str:
    return rf"\[\d\d:\d\d:\d\d\] #\d+ {sender}: {re.escape(body)}"


def test_console_shows_history_others_messages_and_what_you_type(
    replicas: Replicas, token: Callable[..., str], terminals: list[Terminal]
) -> None:
    one, _ = replicas
    bob = ChatClient(one.target, token("bob", "customer"))
    room = bob.create_group("team", ["alice"])
    bob.send(room.id, "before you came")
    terminal = Terminal(room.id, "alice", token("alice", "customer"), [one.target])
    terminals.append(terminal)

    terminal.sees(message_line("bob", "before you came"))
    terminal.sees(rf"-- alice in room {room.id}; type to send")
    bob.send(room.id, "hello alice")
    terminal.sees(message_line("bob", "hello alice"))
    terminal.types("hi bob, alice here")
    terminal.sees(message_line("alice", "hi bob, alice here"))

    assert [m.body for m in bob.history(room.id)][-1] == "hi bob, alice here"  # it was sent, not only echoed
    terminal.close()
    for body in ("before you came", "hello alice", "hi bob, alice here"):
        assert len(terminal.lines_with(body)) == 1, terminal.text()


def test_console_resumes_after_its_chat_svc_was_killed_and_restarted_without_gap_or_duplicate(
    replicas: Replicas, token: Callable[..., str], terminals: list[Terminal]
) -> None:
    one, two = replicas  # the console knows only `one`; bob keeps talking through `two`
    bob = ChatClient(two.target, token("bob", "customer"))
    room = bob.create_group("team", ["alice"])
    terminal = Terminal(room.id, "alice", token("alice", "customer"), [one.target])
    terminals.append(terminal)
    terminal.sees(rf"-- alice in room {room.id}")
    bob.send(room.id, "before the crash")
    terminal.sees(message_line("bob", "before the crash"))

    one.kill()
    missed = [f"while you were away {i}" for i in range(3)]
    for body in missed:
        bob.send(room.id, body)
    restart(one)

    for body in missed:
        terminal.sees(message_line("bob", body))
    bob.send(room.id, "live again")
    terminal.sees(message_line("bob", "live again"))
    terminal.types("glad to be back")
    terminal.sees(message_line("alice", "glad to be back"))
    terminal.close()

    shown = ["before the crash", *missed, "live again", "glad to be back"]
    for body in shown:
        assert len(terminal.lines_with(body)) == 1, terminal.text()
    sequences = [int(m.group(1)) for m in re.finditer(r"\] #(\d+) ", terminal.text())]
    assert sequences == list(range(1, len(shown) + 1)), terminal.text()  # no gap, in order


def restart(replica: ServiceProcess) -> None:
    """Start the killed replica again on its port (the console's only target)."""
    replica.start()

