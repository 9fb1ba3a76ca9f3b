"""
The C{twistd chat} server: everything between the command line and the
chat's front ends.

  - L{options}: the command line, how each value is checked, and how a
    problem reaches the operator.
  - L{tap}: C{makeService}, which builds the chat and its listeners from
    the options (the plugin in C{twisted/plugins/chat_plugin.py} names it).
  - L{service}: the service twistd runs (signals, SIGHUP's reload, the
    ordered stop) and its listeners.
  - L{ports} and L{tls}: endpoint strings read without listening, and TLS
    listeners whose certificate SIGHUP re-reads.
  - L{metrics}, L{logs}, L{motd}: C{--metrics}, C{--log-format json} and
    C{--motd}.
"""
