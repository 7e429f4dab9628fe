"""The base every recipe section shares.

Unknown keys are errors (Axolotl silently ignores misspelled keys; rung must not), and a
parsed recipe is frozen so that its hashes stay true to what was validated.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
