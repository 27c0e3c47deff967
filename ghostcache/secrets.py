"""A wrapper that keeps key material out of logs, reprs and tracebacks."""

from __future__ import annotations


class Secret:
    """Holds a secret value; printing it shows stars, `reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str | bytes) -> None:
        self._value = value

    def reveal(self) -> str | bytes:
        """The wrapped value, for the one call that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):  # never pickle a secret into a cache or a queue
        raise TypeError("Secret values cannot be pickled")
