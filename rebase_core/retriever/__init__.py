"""A retriever that learns: Intermediate Distillation (Li, Zhang, Zhang 2024) over ReBase.

Signals (a task and rows in order, best first) come from a teacher LLM ranking a task's top-N
rows (`teacher`), from a reviewer's decisions in the workspace (`curated`), for tasks the user
wrote or pseudo-tasks made from the datastore (`pseudo`). A cross-encoder ranker learns the
orders with ListMLE (`ranker`); the query side — a d x d map on the task's vectors — learns the
ranker's score distribution with a KL loss (`query`). The cell vectors never change, so the
store is not re-embedded and retrieval stays exact. A trained retriever is a folder
(`versions`), measured on held-out tasks by NDCG and yield (`evaluate`); `train` runs it all,
`jobs` runs collection and training in the background.

One call per action of the Retrieve page's panel:
    collect_rankings(store, tasks, embedder, llm, ...)  teacher signals   (job: CollectRun)
    curation_signals(ws)                                 curation signals
    train_retriever(store, signals, embedder, out, ...)  train            (job: TrainRetrieverRun)
    list_retrievers(settings)                            the versions, with held-out figures
    use_retriever(ws, task_id, path | None)              choose one, or back to the base
    task_embedder(ws, task_id, base)                     what `retrieve` embeds the task with
    compare_top_rows(store, task, base, retriever, k)    before/after of the task's top rows
"""

from rebase_core.retriever.compare import MovedRow, compare_top_rows
from rebase_core.retriever.curated import curation_signal, curation_signals
from rebase_core.retriever.evaluate import (
    MetricSummary,
    RetrieverEval,
    evaluate_retriever,
    ndcg,
    plan_yield,
)
from rebase_core.retriever.jobs import CollectRun, TrainRetrieverRun
from rebase_core.retriever.pseudo import example_columns, heldout_exclusions, pseudo_tasks
from rebase_core.retriever.query import AdaptedEmbedder, DistillInstance, QueryConfig, QueryMap
from rebase_core.retriever.ranker import Ranker, RankerConfig, Scorer
from rebase_core.retriever.signals import (
    RankingSignal,
    RowRef,
    read_signals,
    resolve_signals,
    signal_counts,
    write_signals,
)
from rebase_core.retriever.teacher import (
    CollectReport,
    ParsedRanking,
    TeacherConfig,
    collect_rankings,
    parse_ranking,
)
from rebase_core.retriever.train import TrainConfig, train_retriever
from rebase_core.retriever.versions import (
    RetrieverInfo,
    TrainedRetriever,
    list_retrievers,
    load_retriever,
    retrievers_dir,
    task_embedder,
    task_retriever,
    use_retriever,
)

__all__ = [
    "AdaptedEmbedder",
    "CollectReport",
    "CollectRun",
    "DistillInstance",
    "MetricSummary",
    "MovedRow",
    "ParsedRanking",
    "QueryConfig",
    "QueryMap",
    "Ranker",
    "RankerConfig",
    "RankingSignal",
    "RetrieverEval",
    "RetrieverInfo",
    "RowRef",
    "Scorer",
    "TeacherConfig",
    "TrainConfig",
    "TrainRetrieverRun",
    "TrainedRetriever",
    "collect_rankings",
    "compare_top_rows",
    "curation_signal",
    "curation_signals",
    "evaluate_retriever",
    "example_columns",
    "heldout_exclusions",
    "list_retrievers",
    "load_retriever",
    "ndcg",
    "parse_ranking",
    "plan_yield",
    "pseudo_tasks",
    "read_signals",
    "resolve_signals",
    "retrievers_dir",
    "signal_counts",
    "task_embedder",
    "task_retriever",
    "train_retriever",
    "use_retriever",
    "write_signals",
]
