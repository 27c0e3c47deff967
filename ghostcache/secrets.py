"""A wrapper that keeps key material out of logs, reprs and tracebacks."""

from __future__ import annotations

from typing import AnyStr, Generic


class Secret(Generic[AnyStr]):
    """Holds a secret value; printing it shows stars, `reveal()` gives the value.

    Generic in the value's type: `Secret[bytes]` for Fernet keys, `Secret[str]` for text."""

    __slots__ = ("_value",)

    def __init__(self, value: AnyStr) -> None:
        self._value: AnyStr = value

    def reveal(self) -> AnyStr:
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
