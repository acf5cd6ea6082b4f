"""Fan-out over node sets with limits and timeouts, output folding, plan application."""
