"""
Makes the C{reuseport:} server endpoint string available to
C{endpoints.serverFromString} once chatservice is installed, so that
several C{twistd chat} processes on one host can share one port
(L{chatservice.server.reuseport}).
"""

from chatservice.server.reuseport import ReusePortParser

reuseport = ReusePortParser()
