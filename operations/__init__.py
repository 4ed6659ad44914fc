"""dockguard control areas. Each module holds its facts beside its operations."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
