"""How a run executes: torchrun ranks, Ctrl-C at any moment, many models in one command."""
