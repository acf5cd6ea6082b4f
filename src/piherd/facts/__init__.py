"""What a node is now: each fact is a command plus a pure parser to a typed value."""
