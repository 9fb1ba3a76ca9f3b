"""
Several processes, one chat: the backplane they share and how a node
keeps its replica of the chat in step with the others.
"""
