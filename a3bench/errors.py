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


class DeviceError(A3BenchError):
    """A device was asked for that this machine does not have."""


class ShardError(A3BenchError):
    """A sharded (torchrun) run cannot go on: a rank failed, or the ranks disagree."""


class TrainingError(A3BenchError):
    """A training run cannot start (existing run, unwritable output) or went wrong (diverged)."""


class BudgetViolation(RuntimeError):
    """An adversarial example left its eps-ball or [0,1]: a bug, never user error."""


def one_line(error: object, limit: int = 160) -> str:
    """An error or a message as one short line for the user, at most ``limit`` characters
    (an error can quote a huge value). Of an exception, its first non-empty line (the rest
    is usually a traceback or a dump); of a message, all of it with newlines squashed."""
    text = str(error)
    if isinstance(error, BaseException):
        lines = [line for line in text.splitlines() if line.strip()]
        text = lines[0] if lines else type(error).__name__
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def excerpt(value: object, limit: int = 60) -> str:
    """A short ``repr`` of a value for an error line. Bounded in work as well as in length:
    a hostile input (a YAML alias bomb, a nested pickle) can be huge or shared a million
    times over, so its repr is never built in full."""
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxdict, r.maxlist, r.maxtuple, r.maxset = 2, 4, 4, 4, 4
    r.maxstring = r.maxother = r.maxlong = limit
    try:
        text = r.repr(value)
    except Exception:  # noqa: BLE001 - a hostile object's __repr__ may raise anything
        text = f"<{type(value).__name__}>"
    return one_line(text, limit)
