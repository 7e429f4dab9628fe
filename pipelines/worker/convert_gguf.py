"""Convert a GGUF checkpoint into a plain transformers model folder (trainer env).

Usage: python -m pipelines.worker.convert_gguf GGUF_FILE OUT_DIR

transformers dequantizes the GGUF weights into a normal LlamaForCausalLM. The
converted SmolLM2 tokenizer declares `<|im_start|>` as end-of-sequence, which
would make generation stop at once and training learn the wrong stop token, so
end-of-turn is set to `<|im_end|>` and a separate pad token is declared.
"""

from __future__ import annotations

import sys
from pathlib import Path

END_OF_TURN = "<|im_end|>"
PAD = "<|endoftext|>"


def convert(gguf_file: Path, out_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)

    tokenizer.eos_token = END_OF_TURN
    tokenizer.pad_token = PAD
    for config in (model.config, model.generation_config):
        config.eos_token_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
        config.pad_token_id = tokenizer.convert_tokens_to_ids(PAD)
        config.bos_token_id = tokenizer.convert_tokens_to_ids("<|im_start|>")

    tmp = out_dir.with_name(out_dir.name + ".partial")
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out_dir)  # atomic: a half-written folder is never mistaken for a model


if __name__ == "__main__":
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
