"""
Accounts and server operators over IRC, in memory: C{PASS} and SASL
C{PLAIN} logging in as a client registers (and SASL after it), a registered
nickname refused without credentials, and C{OPER}, as docs/irc.md
("Accounts", "Server operators") describes them.

The password hashing runs through a stand-in the test controls
(L{tests.core.test_accounts.Hashing}): at once, or held until released, so
that a test can send lines while a check is under way.
"""

from __future__ import annotations

import base64

from twisted.trial.unittest import SynchronousTestCase

from chatservice.core.accounts import Account, Accounts
from chatservice.frontends.irc import sasl
from chatservice.frontends.limits import Limits
from tests.core.test_accounts import HASHER, PASSWORD, WRONG, Hashing, Saves
from tests.support.memory import Connection, Harness

SERVER = ":My.Little.Server"


def codes(lines: list[str]) -> list[str]:
    return [line.split(" ")[1] for line in lines if line.startswith(SERVER)]


def plain(authcid: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{authcid}\0{password}".encode()).decode()


class IRCAccountsTestCase(SynchronousTestCase):
    """
    An IRC front end on a chat that keeps accounts; C{boss} is a server
    operator account.
    """

    def setUp(self) -> None:
        self.hashing = Hashing()
        self.harness = Harness(
            Limits(flood_rate=0),
            accounts=lambda chat, registered: Accounts(
                chat,
                in_thread=self.hashing,
                save=Saves(),
                clock=lambda: self.harness.clock.seconds(),
                accounts=registered,
                hasher=HASHER,
            ),
            operators=["boss"],
        )
        assert self.harness.accounts is not None
        self.accounts = self.harness.accounts

    def account(self, nick: str, password: str = PASSWORD) -> None:
        self.accounts.accounts[nick.casefold()] = Account(nick, HASHER.hash(password))

    def client(self) -> Connection:
        return self.harness.connect_irc()

    def registered(self, nick: str) -> Connection:
        client = self.client()
        client.send(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n")
        self.assertIn("001", codes(client.take()))
        return client


class PassTests(IRCAccountsTestCase):
    def test_passLogsIn(self) -> None:
        """
        C{PASS password} logs into the account of the nickname: 900 comes
        before the welcome, and the member is logged in.
        """
        self.account("bob")
        client = self.client()
        client.send(f"PASS {PASSWORD}\r\nNICK bob\r\nUSER b 0 * :Bob\r\n")
        lines = client.take()
        self.assertEqual(codes(lines)[:2], ["900", "001"])
        self.assertEqual(
            lines[0],
            f"{SERVER} 900 bob bob!bob@chatservice bob :You are now logged in as bob",
        )
        member = client.proto.member
        assert member is not None
        self.assertEqual((member.nick, member.account), ("bob", "bob"))

    def test_accountAndPassword(self) -> None:
        """
        C{PASS account:password} logs into C{account}, whatever the
        nickname; a free nickname is kept.
        """
        self.account("bob")
        client = self.client()
        client.send(f"PASS bob:{PASSWORD}\r\nNICK robert\r\nUSER b 0 * :Bob\r\n")
        self.assertEqual(codes(client.take())[:2], ["900", "001"])
        member = client.proto.member
        assert member is not None
        self.assertEqual((member.nick, member.account), ("robert", "bob"))

    def test_wrongPassword(self) -> None:
        """
        A wrong password is 464, and the connection is closed without
        registering.
        """
        self.account("bob")
        client = self.client()
        client.send(f"PASS {WRONG}\r\nNICK bob\r\nUSER b 0 * :Bob\r\n")
        self.assertEqual(
            client.take(),
            [
                f"{SERVER} 464 * :Password incorrect",
                "ERROR :Closing link: Access denied: bad password",
            ],
        )
        self.assertIsNone(client.proto.member)
        self.assertTrue(client.transport.disconnecting)

    def test_notAnAccount(self) -> None:
        """
        A password for a name that is no account is said to be so, and the
        client registers without one (a client may send a server password
        this server does not need).
        """
        client = self.client()
        client.send("PASS whatever\r\nNICK carol\r\nUSER c 0 * :C\r\n")
        lines = client.take()
        self.assertEqual(lines[0], f"{SERVER} NOTICE * :carol is not registered")
        self.assertIn("001", codes(lines))
        member = client.proto.member
        assert member is not None
        self.assertIsNone(member.account)

    def test_registeredNickWithoutCredentials(self) -> None:
        """
        A registered nickname without credentials is 433 at registration;
        another nickname then registers.
        """
        self.account("bob")
        client = self.client()
        client.send("NICK bob\r\nUSER b 0 * :Bob\r\n")
        self.assertEqual(
            client.take(),
            [f"{SERVER} 433 * bob :Nickname is registered; log in to use it"],
        )
        client.send("NICK bobby\r\n")
        self.assertIn("001", codes(client.take()))

    def test_takesNameFromHolder(self) -> None:
        """
        The owner registering with its password takes its name from whoever
        holds it, who gets a guest name.
        """
        self.account("bob")
        ghost = self.client()
        ghost.send(f"PASS {PASSWORD}\r\nNICK bob\r\nUSER b 0 * :Bob\r\n")
        ghost.take()
        client = self.client()
        client.send(f"PASS {PASSWORD}\r\nNICK bob\r\nUSER b 0 * :Bob\r\n")
        self.assertIn("001", codes(client.take()))
        self.assertEqual(client.nick, "bob")
        self.assertTrue(ghost.nick.startswith("guest"))
        self.assertIsNone(ghost.proto.member.account)  # type: ignore[union-attr]

    def test_linesWaitForTheCheck(self) -> None:
        """
        Lines after the one that completes registration wait for the
        password check: they are not refused as unregistered, nor handled
        before the member exists.
        """
        self.account("bob")
        self.hashing.hold = True
        client = self.client()
        client.send(f"PASS {PASSWORD}\r\nNICK bob\r\nUSER b 0 * :B\r\nJOIN #a\r\n")
        self.assertEqual(client.take(), [])
        self.hashing.release()
        self.harness.turn()
        lines = client.take()
        self.assertEqual(codes(lines)[:2], ["900", "001"])
        self.assertIn(":bob!bob@chatservice JOIN #a", lines)
        self.assertNotIn("451", codes(lines))

    def test_goneDuringTheCheck(self) -> None:
        """
        A client gone while its password is checked never becomes a member.
        """
        self.account("bob")
        self.hashing.hold = True
        client = self.client()
        client.send(f"PASS {PASSWORD}\r\nNICK bob\r\nUSER b 0 * :B\r\n")
        client.lost()
        self.hashing.release()
        self.harness.turn()
        self.assertIsNone(client.proto.member)
        self.assertNotIn("bob", self.harness.chat.members)

    def test_passAfterRegistration(self) -> None:
        client = self.registered("alice")
        client.send("PASS something\r\n")
        self.assertEqual(codes(client.take()), ["462"])


class SaslTests(IRCAccountsTestCase):
    def start(self, client: Connection) -> None:
        client.send("CAP LS 302\r\nCAP REQ :sasl\r\nAUTHENTICATE PLAIN\r\n")
        offer, *rest = client.take()
        self.assertIn("sasl=PLAIN", offer.split(" LS :")[1].split())
        self.assertEqual(rest, [f"{SERVER} CAP * ACK sasl", "AUTHENTICATE +"])

    def test_capabilityOffered(self) -> None:
        client = self.client()
        client.send("CAP LS\r\nCAP LIST\r\nCAP REQ :sasl\r\nCAP LIST\r\n")
        offer, *rest = client.take()
        # Before 302, no values: the bare name.
        self.assertIn("sasl", offer.split(" LS :")[1].split())
        self.assertEqual(
            rest,
            [
                f"{SERVER} CAP * LIST :",
                f"{SERVER} CAP * ACK sasl",
                f"{SERVER} CAP * LIST sasl",
            ],
        )

    def test_success(self) -> None:
        """
        PLAIN with the right password: 900 and 903; the client registers
        logged in, under the nickname it chose.
        """
        self.account("bob")
        client = self.client()
        self.start(client)
        client.send(
            f"NICK robert\r\nUSER r 0 * :R\r\nAUTHENTICATE {plain('bob', PASSWORD)}\r\n"
        )
        self.assertEqual(
            client.take(),
            [
                f"{SERVER} 900 * robert!robert@chatservice bob "
                ":You are now logged in as bob",
                f"{SERVER} 903 * :SASL authentication successful",
            ],
        )
        client.send("CAP END\r\n")
        self.assertEqual(codes(client.take())[0], "001")
        member = client.proto.member
        assert member is not None
        self.assertEqual((member.nick, member.account), ("robert", "bob"))

    def test_authzidSame(self) -> None:
        self.account("bob")
        client = self.client()
        self.start(client)
        client.send(f"AUTHENTICATE {plain('bob', PASSWORD, authzid='BOB')}\r\n")
        self.assertEqual(codes(client.take()), ["900", "903"])

    def test_wrongPassword(self) -> None:
        self.account("bob")
        client = self.client()
        self.start(client)
        client.send(f"AUTHENTICATE {plain('bob', WRONG)}\r\n")
        self.assertEqual(client.take(), [f"{SERVER} 904 * :SASL authentication failed"])
        client.send("NICK robert\r\nUSER r 0 * :R\r\nCAP END\r\n")
        self.assertIn("001", codes(client.take()))
        self.assertIsNone(client.proto.member.account)  # type: ignore[union-attr]

    def test_badResponses(self) -> None:
        """
        Bad base64, too few fields, an empty password, another's authzid,
        an unknown account: each is 904, and the client may try again.
        """
        self.account("bob")
        self.account("eve")
        client = self.client()
        self.start(client)
        for response in [
            "!!!",
            base64.b64encode(b"bob\0secret").decode(),
            plain("bob", ""),
            plain("bob", PASSWORD, authzid="eve"),
            plain("nobody", PASSWORD),
            base64.b64encode(b"\0bob\0\xff\xfe").decode(),
        ]:
            client.send(f"AUTHENTICATE {response}\r\n")
            self.assertEqual(codes(client.take()), ["904"], response)
            client.send("AUTHENTICATE PLAIN\r\n")
            self.assertEqual(client.take(), ["AUTHENTICATE +"])

    def test_unknownMechanism(self) -> None:
        client = self.client()
        client.send("AUTHENTICATE SCRAM-SHA-256\r\n")
        self.assertEqual(
            client.take(),
            [
                f"{SERVER} 908 * PLAIN :are available SASL mechanisms",
                f"{SERVER} 904 * :SASL authentication failed",
            ],
        )

    def test_abort(self) -> None:
        client = self.client()
        self.start(client)
        client.send("AUTHENTICATE *\r\n")
        self.assertEqual(
            client.take(), [f"{SERVER} 906 * :SASL authentication aborted"]
        )

    def test_chunks(self) -> None:
        """
        A response over 400 bytes comes in 400-byte chunks; one of exactly
        400 bytes waits for C{AUTHENTICATE +}.
        """
        self.account("bob", "x" * 290)
        response = plain("bob", "x" * 290, authzid="bob")
        self.assertEqual(len(response), 400)
        client = self.client()
        self.start(client)
        client.send(f"AUTHENTICATE {response}\r\n")
        self.assertEqual(client.take(), [])
        client.send("AUTHENTICATE +\r\n")
        self.assertEqual(codes(client.take()), ["900", "903"])

    def test_longResponse(self) -> None:
        self.account("bob", "y" * 500)
        response = plain("bob", "y" * 500)
        client = self.client()
        self.start(client)
        client.send(
            f"AUTHENTICATE {response[:400]}\r\nAUTHENTICATE {response[400:]}\r\n"
        )
        self.assertEqual(codes(client.take()), ["900", "903"])

    def test_tooLong(self) -> None:
        client = self.client()
        self.start(client)
        client.send("AUTHENTICATE " + "A" * 401 + "\r\n")
        self.assertEqual(client.take(), [f"{SERVER} 905 * :SASL message too long"])

    def test_endless(self) -> None:
        """
        A response never ended fails once past its bound, rather than being
        held for ever.
        """
        client = self.client()
        self.start(client)
        chunks = sasl.RESPONSE_MAX // sasl.CHUNK
        client.send(("AUTHENTICATE " + "A" * 400 + "\r\n") * chunks)
        self.assertEqual(client.take(), [])
        client.send("AUTHENTICATE " + "A" * 400 + "\r\n")
        self.assertEqual(codes(client.take()), ["904"])

    def test_alreadyAuthenticated(self) -> None:
        self.account("bob")
        client = self.client()
        self.start(client)
        client.send(f"AUTHENTICATE {plain('bob', PASSWORD)}\r\n")
        client.take()
        client.send("AUTHENTICATE PLAIN\r\n")
        self.assertEqual(
            client.take(),
            [f"{SERVER} 907 * :You have already authenticated using SASL"],
        )

    def test_registrationAborts(self) -> None:
        """
        Registering with an exchange under way aborts it (906); the client
        registers without an account.
        """
        client = self.client()
        self.start(client)
        client.send("NICK robert\r\nUSER r 0 * :R\r\nCAP END\r\n")
        self.assertEqual(codes(client.take())[:2], ["906", "001"])

    def test_afterRegistration(self) -> None:
        """
        After registering, SASL logs in at once, and the nickname is kept.
        """
        self.account("bob")
        client = self.registered("robert")
        client.send(f"AUTHENTICATE PLAIN\r\nAUTHENTICATE {plain('bob', PASSWORD)}\r\n")
        self.assertEqual(
            client.take(),
            [
                "AUTHENTICATE +",
                f"{SERVER} 900 robert robert!robert@chatservice bob "
                ":You are now logged in as bob",
                f"{SERVER} 903 robert :SASL authentication successful",
            ],
        )
        self.assertEqual(client.proto.member.account, "bob")  # type: ignore[union-attr]
        self.assertEqual(client.nick, "robert")

    def test_noAccounts(self) -> None:
        """
        A server that keeps no accounts offers no SASL and fails it.
        """
        client = Harness(Limits(flood_rate=0)).connect_irc()
        client.send("CAP LS 302\r\nAUTHENTICATE PLAIN\r\n")
        offer, *rest = client.take()
        self.assertNotIn("sasl", offer.split(" LS :")[1].split())
        self.assertNotIn("sasl=PLAIN", offer.split(" LS :")[1].split())
        self.assertEqual(rest, [f"{SERVER} 904 * :SASL authentication failed"])


class OperTests(IRCAccountsTestCase):
    def test_oper(self) -> None:
        """
        OPER with an operator account's password: 381 and user mode +o,
        shown by MODE, WHOIS (313) and LUSERS (252); MODE -o gives it up.
        """
        self.account("boss")
        client = self.registered("alice")
        client.send(f"OPER boss {PASSWORD}\r\n")
        self.assertEqual(
            client.take(),
            [
                f"{SERVER} 381 alice :You are now an IRC operator",
                ":alice!alice@chatservice MODE alice :+o",
            ],
        )
        client.send("MODE alice\r\nWHOIS alice\r\nLUSERS\r\n")
        lines = client.take()
        self.assertIn(f"{SERVER} 221 alice +o", lines)
        self.assertIn(f"{SERVER} 313 alice alice :is an IRC operator", lines)
        self.assertIn(f"{SERVER} 252 alice 1 :operator(s) online", lines)
        client.send("MODE alice -o\r\nMODE alice\r\nLUSERS\r\n")
        lines = client.take()
        self.assertEqual(lines[0], ":alice!alice@chatservice MODE alice :-o")
        self.assertIn(f"{SERVER} 221 alice +", lines)
        self.assertIn(f"{SERVER} 252 alice 0 :operator(s) online", lines)

    def test_wrongPassword(self) -> None:
        self.account("boss")
        client = self.registered("alice")
        client.send(f"OPER boss {WRONG}\r\nMODE alice\r\n")
        self.assertEqual(
            client.take(),
            [f"{SERVER} 464 alice :Password incorrect", f"{SERVER} 221 alice +"],
        )

    def test_notAnOperator(self) -> None:
        """
        An account not named as an operator, or no account at all, is 491,
        and no password is hashed for it.
        """
        self.account("bob")
        client = self.registered("alice")
        client.send(f"OPER bob {PASSWORD}\r\nOPER nobody {PASSWORD}\r\n")
        self.assertEqual(
            client.take(),
            [f"{SERVER} 491 alice :No O-lines for your host"] * 2,
        )
        self.assertEqual(self.hashing.calls, [])

    def test_notEnoughParameters(self) -> None:
        client = self.registered("alice")
        client.send("OPER boss\r\n")
        self.assertEqual(codes(client.take()), ["461"])

    def test_gone(self) -> None:
        """
        An operator that disconnects is no longer counted.
        """
        self.account("boss")
        client = self.registered("alice")
        client.send(f"OPER boss {PASSWORD}\r\n")
        other = self.registered("bob")
        other.send("LUSERS\r\n")
        self.assertIn(f"{SERVER} 252 bob 1 :operator(s) online", other.take())
        client.send("QUIT\r\n")
        client.lost()
        other.send("LUSERS\r\n")
        self.assertIn(f"{SERVER} 252 bob 0 :operator(s) online", other.take())

    def test_whoFlag(self) -> None:
        """
        WHO marks a server operator with C{*} after its here/gone flag.
        """
        self.account("boss")
        client = self.registered("alice")
        client.send(f"OPER boss {PASSWORD}\r\n")
        client.take()
        client.send("WHO alice\r\n")
        [reply, _] = client.take()
        self.assertEqual(reply.split(" ")[8], "H*")
