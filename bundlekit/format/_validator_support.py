"""Exception classes the generated manifest validator raises.

They mirror fastjsonschema's, so the generated code runs without importing
fastjsonschema (whose package import pulls in its whole code generator).
"""

from __future__ import annotations

from typing import Any


class JsonSchemaValueException(ValueError):
    def __init__(
        self,
        message: str,
        value: Any = None,
        name: str | None = None,
        definition: Any = None,
        rule: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.value = value
        self.name = name
        self.definition = definition
        self.rule = rule


class JsonSchemaValuesException(ValueError):
    def __init__(self, errors: list[JsonSchemaValueException]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors
