"""The use cases (up, render, status, watch, run/copy) that the CLI, the dashboard, bench
and the Python API all call; the CLI only parses arguments and presents results."""
