"""`python -m fpprov`: the same entry point as the `fpprov` console script (torchrun uses this form)."""

from .entry import main

main()
