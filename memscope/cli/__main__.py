"""`python -m memscope.cli` runs the `memscope` command."""

from memscope.cli import main

main()
