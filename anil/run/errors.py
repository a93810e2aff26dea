"""Errors of the run layer that readers of run folders raise too, kept free of torch."""


class CheckpointError(RuntimeError):
    """A checkpoint or run directory that cannot be used; the message is one line naming it and the fix."""
