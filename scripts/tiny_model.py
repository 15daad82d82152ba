"""Generate a tiny Mistral-architecture model (random weights) with a trained tokenizer, for CPU vLLM tests.

    python scripts/tiny_model.py OUTDIR [--head-dim 32] [--vocab-size 8000] [--seed 0]
        [--hidden-size 128] [--intermediate-size 256] [--layers 2] [--heads 4] [--kv-heads 2]
        [--sliding-window 0] [--max-position-embeddings 2048]

The shape options exist so tests can generate models of different KV-cache shapes (the sizing planner's CPU check);
their defaults are the demo's model. --sliding-window 0 means none.

Needs torch, transformers and tokenizers: run it with the vLLM venv's python. The output (about 5 MB) is a normal
Hugging Face model directory: config.json, model.safetensors, tokenizer.json, tokenizer_config.json (with a Mistral
`[INST]` chat template), generation_config.json. Same inputs give the same files (fixed seed, sorted corpus).
head_dim 32 serves on vLLM's CPU attention; head_dim 16 starts and lists its model but fails every generation.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import MistralConfig, MistralForCausalLM, PreTrainedTokenizerFast

# Local text the tokenizer is trained on: Debian's license texts (present on every Debian/Ubuntu host), plus a few
# lines so the seed prompts tokenize into whole words.
CORPUS_DIR = Path("/usr/share/common-licenses")
SEED_TEXT = [
    "A GPU is a graphics processing unit.",
    "Which GPU models are available on Oracle Cloud Infrastructure?",
    "Mistral 7B Instruct is served by vLLM through an OpenAI compatible API.",
]
UNK, BOS, EOS = "<unk>", "<s>", "</s>"
SPECIAL_TOKENS = [UNK, BOS, EOS]
# Mistral's [INST] format, as in Mistral-7B-Instruct-v0.2 (system text is folded into the first user turn).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% set system = namespace(text='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set system.text = message['content'] + '\\n\\n' %}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' + system.text + message['content'] + ' [/INST]' }}"
    "{% set system.text = '' %}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% endif %}"
    "{% endfor %}"
)


# The demo's model: the defaults of the shape options below.
DEFAULT_SHAPE = argparse.Namespace(
    hidden_size=128,
    intermediate_size=256,
    layers=2,
    heads=4,
    kv_heads=2,
    sliding_window=0,
    max_position_embeddings=2048,
)


def corpus_lines() -> list[str]:
    lines = list(SEED_TEXT)
    if CORPUS_DIR.is_dir():
        for path in sorted(p for p in CORPUS_DIR.iterdir() if p.is_file()):
            lines.extend(path.read_text(encoding="utf-8", errors="replace").splitlines())
    return [line for line in lines if line.strip()]


def train_tokenizer(vocab_size: int, model_max_length: int = 2048) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus_lines(), trainer=trainer)
    bos = tok.token_to_id(BOS)
    # Completions get a BOS like Mistral's tokenizer adds; chat prompts carry it in the template instead.
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[(BOS, bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        chat_template=CHAT_TEMPLATE,
        model_max_length=model_max_length,  # vLLM caps its default max_model_len at this
        clean_up_tokenization_spaces=False,
    )


def build_model(
    tokenizer: PreTrainedTokenizerFast, head_dim: int, seed: int, shape: argparse.Namespace | None = None
) -> MistralForCausalLM:
    torch.manual_seed(seed)
    dims = shape or DEFAULT_SHAPE
    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=dims.hidden_size,
        intermediate_size=dims.intermediate_size,
        num_hidden_layers=dims.layers,
        num_attention_heads=dims.heads,
        num_key_value_heads=dims.kv_heads,
        head_dim=head_dim,
        max_position_embeddings=dims.max_position_embeddings,
        sliding_window=dims.sliding_window or None,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    model = MistralForCausalLM(config)
    return model.to(torch.bfloat16).eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=0)
    for name, default in vars(DEFAULT_SHAPE).items():
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=default)
    args = parser.parse_args(argv)

    tokenizer = train_tokenizer(args.vocab_size, args.max_position_embeddings)
    model = build_model(tokenizer, args.head_dim, args.seed, args)
    args.outdir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.outdir)
    tokenizer.save_pretrained(args.outdir)
    for path in args.outdir.iterdir():
        path.chmod(0o644)  # safetensors writes 0600; containers may read the mounted model as another user
    digest = hashlib.sha256((args.outdir / "model.safetensors").read_bytes()).hexdigest()
    summary = {
        "outdir": str(args.outdir),
        "head_dim": args.head_dim,
        "vocab_size": len(tokenizer),
        "parameters": sum(p.numel() for p in model.parameters()),
        **{name: getattr(args, name) for name in vars(DEFAULT_SHAPE)},
        "weights_sha256": digest,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
