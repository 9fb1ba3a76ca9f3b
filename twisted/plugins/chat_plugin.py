"""
Makes C{twistd chat} available once chatservice is installed.
"""

from twisted.application.service import ServiceMaker

chat = ServiceMaker(
    "chatservice",
    "chatservice.server.tap",
    "A multi-user text chat server for nc, telnet and chat-client.",
    "chat",
)
