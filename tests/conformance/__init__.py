"""
Conformance suites from outside the project, run against the installed
C{twistd chat}: see L{tests.conformance.irctest_chatservice}.
"""
