"""`python -m sim` runs the bedflow command."""

from sim.cli import main

raise SystemExit(main())
