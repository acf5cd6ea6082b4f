"""Virtual clusters on this machine, reached over real SSH like any Pi."""
