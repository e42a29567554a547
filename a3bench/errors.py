"""User-facing errors: each carries one readable line; the CLI prints it and exits 2."""


class A3BenchError(Exception):
    """Base class for errors caused by the user's input, not by a3bench."""


class ConfigError(A3BenchError):
    """A config file or override is invalid."""


class DataError(A3BenchError):
    """A dataset cannot be found, read or parsed."""


class CheckpointError(A3BenchError):
    """A checkpoint is unreadable, unsafe, or does not match its architecture."""


class ModelSpecError(A3BenchError):
    """A --model SPEC cannot be resolved to a model."""


class AttackError(A3BenchError):
    """An attack name, option or threat model is invalid."""


class ResultError(A3BenchError):
    """A result file is missing, malformed or incompatible."""


class BudgetViolation(RuntimeError):
    """An adversarial example left its eps-ball or [0,1]: a bug, never user error."""


def first_line(error: BaseException, limit: int = 160) -> str:
    """An exception's first non-empty line, shortened: what a one-line message quotes."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[0][:limit] if lines else type(error).__name__
