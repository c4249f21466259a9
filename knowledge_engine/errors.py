"""The one error type the CLI turns into a clean message (no traceback)."""


class KnowledgeEngineError(Exception):
    """Bad input or an unusable backend: the message names the file or setting and the problem."""
