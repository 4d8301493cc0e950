"""`python -m memscope` runs the `memscope` command."""

from memscope.cli import main

main()
