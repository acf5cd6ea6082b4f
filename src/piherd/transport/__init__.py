"""How bytes and commands reach a node: ssh (asyncssh) and local, behind one async interface."""
