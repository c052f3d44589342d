"""Exceptions that the CLI turns into one clear line and an exit code.

Library code raises these instead of printing; `lstmgan.cli` catches them.
"""


class UsageError(Exception):
    """Bad input: a flag out of range, a missing or unreadable file, a foreign checkpoint.

    The CLI prints the message on one line and exits with code 2, having touched nothing.
    """

    exit_code = 2


class TrainingDiverged(Exception):
    """The loss became NaN or Inf; the last good checkpoint is kept (exit code 1)."""

    exit_code = 1


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM arrived; a checkpoint was saved at the step boundary."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.exit_code = 128 + signal_number
