"""dockguard control areas. Each module holds its facts beside its operations."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"


def warn(message: str) -> None:
    """A line for the operator, shown at any verbosity, prefixed with the current host."""
    from pyinfra import host, logger

    logger.warning(f"{host.print_prefix}{message}")


def say(message: str) -> None:
    """An informational line for the operator, prefixed with the current host."""
    from pyinfra import host, logger

    logger.info(f"{host.print_prefix}{message}")
