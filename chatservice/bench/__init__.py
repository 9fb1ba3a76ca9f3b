"""
C{chat-bench}, the fan-out benchmark: a tool shipped with the server, not
part of it. It treats the server as a black box (a command to start, or an
address) and uses only the standard library, so nothing here imports the
rest of C{chatservice}.

How to use it is in C{docs/chat-bench.md}. The modules, from the command
line down:

  - L{cli}: the options and C{main}; L{options}: how to load the server.
  - L{point}, L{idle}: one measurement each; L{results}: what they return;
    L{report}: the tables printed.
  - L{launch}: starting and stopping servers and peers (C{peers/} holds the
    minimal peer that C{--compare} measures ours against); L{proc}: what
    C{/proc} says about the server.
  - L{crew}, L{progress}: the worker processes as the coordinator sees them.
  - L{messages}, L{shared}: what the coordinator and the workers tell each
    other, through pipes and through one shared array.
  - L{worker} and its parts: L{connect} (opening connections at the pace
    the server accepts them), L{connection} (one connection's counts),
    L{receive} (reading and checking lines), L{send} (saying them),
    L{tally} (the counts at the end); L{payload} and L{latency}: what a line
    carries and how long it took.
"""
