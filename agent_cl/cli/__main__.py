"""`python -m agent_cl.cli` runs the command line (tests start the daemon this way)."""

from agent_cl.cli import main

main()
