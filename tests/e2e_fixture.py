"""A small world for the end-to-end test: a fixture datastore (hashing embedder), a tiny student,
a held-out test file. Also runnable by hand: `python tests/e2e_fixture.py DIR` prepares DIR."""

from __future__ import annotations

import json
import sys
from pathlib import Path

SENTENCES = {
    "claims": [
        ("A man is sleeping on a couch.", "A person is resting.", "entailment"),
        ("The dog runs in the park.", "An animal is outside.", "entailment"),
        ("Two kids play football.", "The children are asleep.", "contradiction"),
        ("A woman reads a book on the train.", "She is travelling.", "entailment"),
        ("The market fell sharply today.", "Stocks rose today.", "contradiction"),
        ("A chef cooks pasta.", "Someone is preparing food.", "entailment"),
        ("The river flooded the town.", "The town is dry.", "contradiction"),
        ("A bird sings in the tree.", "The bird is a parrot.", "neutral"),
    ],
    "reviews": [
        ("The film was wonderful and moving.", "", "positive"),
        ("A dull, boring story.", "", "negative"),
        ("Great acting and a clever plot.", "", "positive"),
        ("I walked out after an hour.", "", "negative"),
    ],
    "trivia": [
        ("What is the capital of France?", "", "Paris"),
        ("Who wrote Hamlet?", "", "Shakespeare"),
        ("How many legs does a spider have?", "", "eight"),
    ],
}


def prepare(home: Path) -> dict[str, Path]:
    """Build the fixture datastore in `home` and write the other fixtures; returns their paths."""
    from rebase_core.datastore import build_datastore
    from rebase_core.embed import HashingEmbedder
    from rebase_core.settings import Settings

    home.mkdir(parents=True, exist_ok=True)
    sources = []
    for name, rows in SENTENCES.items():
        folder = home.parent / "sources" / name
        folder.mkdir(parents=True, exist_ok=True)
        records = [
            {"premise": a, "hypothesis": b, "label": c} if b else {"text": a, "label": c}
            for a, b, c in rows
        ]
        (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (folder / "description.txt").write_text(f"Small {name} dataset for the end-to-end test.")
        sources.append(str(folder))
    settings = Settings(home=home, embedder="hash")
    build_datastore(settings.default_store, sources, settings, embedder=HashingEmbedder())
    test = home.parent / "nli_test.jsonl"
    test.write_text(
        "".join(
            json.dumps({"input": f"Premise: {a}\nHypothesis: {b}", "output": c}) + "\n"
            for a, b, c in SENTENCES["claims"][:5]
        )
    )
    return {"home": home, "test": test, "student": make_tiny_llama(home.parent / "tiny-llama")}


def make_tiny_llama(out: Path) -> Path:
    """A ~1M-parameter random Llama with the packaged MiniLM tokenizer: trains in seconds."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from rebase_core.assets import minilm_path

    if (out / "config.json").exists():
        return out
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(minilm_path())
    tok.eos_token = "[SEP]"
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.sep_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


if __name__ == "__main__":
    print(prepare(Path(sys.argv[1]).resolve() / "home"))
