"""Axolotl plugin (trainer env): seed every RNG before the LoRA weights are created.

Axolotl hands `seed` to the Hugging Face Trainer, which seeds only when it is
built, after the model and its adapter exist; the adapter's random initial
weights then differ from run to run, and so does the trained adapter. Seeding
here, before the model and again before the adapter are built, makes a CPU run
repeat exactly (same data, recipe and threads), which `rung reproduce` relies on.
Rendered into every Axolotl config by pipelines/lib/axolotl_config.py.
"""

from __future__ import annotations

from typing import Any

from axolotl.integrations.base import BasePlugin


class SeedPlugin(BasePlugin):
    def _seed(self, cfg: Any) -> None:
        from transformers import set_seed

        set_seed(int(cfg.seed))

    def pre_model_load(self, cfg: Any) -> None:
        self._seed(cfg)

    def pre_lora_load(self, cfg: Any, model: Any) -> None:
        self._seed(cfg)
