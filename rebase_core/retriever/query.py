"""The query side: a linear map on the task's vectors, distilled from the ranker (stage 2).

Only what embeds the task learns; the datastore's cell and description vectors never change,
so nothing is re-embedded and retrieval stays exact (the same certificate, new query vectors).
The learnt part is an affine map, W (d x d, initialised to the identity) and b (d, zero): each
task text's base vector e becomes normalise(W e + b), and the ReBase score is computed from
those vectors as always. W re-weights what a task asks for; b carries what the teacher prefers
whatever the task (one direction towards useful rows).

Training (Intermediate Distillation's KL stage): for each signal's candidate rows, the ranker's
scores give p = softmax(z / T_teacher) (z: the scores centred per list, in units of their
spread over all lists); the retriever's own ReBase scores,
computed from the stored cell vectors with W in the graph,

    S_in(r) = max_c v_c . mean_i normalise(W e(x_i)),   S_out likewise,
    S_ds(r) = v_desc(r) . normalise(W e(I)),   score = (w_in S_in + w_out S_out + w_ds S_ds) / W,

give q = softmax(score / T_student), and the loss is KL(p || q) + lambda (||W - I||^2 + ||b||^2).
The student temperature is learnt (ReBase scores live in a narrow band; only their order matters
to retrieval), and the pull towards the identity keeps unseen tasks close to the base.

Why a map rather than a fine-tuned query encoder (a `Router` with `DistillKLDivLoss`): the
loss is on the real score — mean over examples, max over a row's cells, the description term —
which `DistillKLDivLoss`'s one query-one document similarity does not express; the base vectors
of the task texts are computed once, so an epoch is matrix products (seconds on one thread);
and a query costs one extra d x d product (bench/retriever.py measures both).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rebase_core.datastore import Datastore
from rebase_core.embed import Embedder
from rebase_core.errors import InputError
from rebase_core.task import final_answer
from rebase_core.types import Progress, ProgressFn, Task, no_progress

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QueryMap:
    """The trained query side: e -> normalise(matrix @ e + bias)."""

    matrix: np.ndarray  # (d, d)
    bias: np.ndarray  # (d,)

    @classmethod
    def identity(cls, dim: int) -> QueryMap:
        return cls(np.eye(dim, dtype=np.float32), np.zeros(dim, dtype=np.float32))

    @property
    def dim(self) -> int:
        return int(self.bias.shape[0])


class AdaptedEmbedder:
    """A base embedder with the trained query map applied: same `name` and `dim` as the base,
    so `retrieval.retrieve` accepts it for a store the base built."""

    def __init__(self, base: Embedder, query_map: QueryMap) -> None:
        if query_map.matrix.shape != (base.dim, base.dim) or query_map.dim != base.dim:
            raise InputError(
                f"The query map is for {query_map.dim}-d vectors but the {base.name!r} embedder "
                f"gives {base.dim}-d ones; use a retriever trained on this embedder."
            )
        self.base = base
        self.query_map = query_map
        self.name = base.name
        self.dim = base.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        qm = self.query_map
        vectors = self.base.embed(texts) @ qm.matrix.T + qm.bias
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return np.asarray(vectors / norms, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class QueryConfig:
    """How the query map trains."""

    epochs: int = 40
    learning_rate: float = 2e-3  # Adam
    batch_size: int = 16  # signals per step
    l2_to_identity: float = 0.05  # weight of ||W - I||^2 + ||b||^2
    teacher_temperature: float = 0.5  # on the ranker's scores, in units of their spread
    student_temperature: float = 0.05  # initial value; learnt
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.learning_rate <= 0 or self.batch_size < 1:
            raise InputError(
                "Query-side epochs, learning rate and batch size must be positive, got "
                f"{self.epochs}, {self.learning_rate}, {self.batch_size}."
            )
        if self.teacher_temperature <= 0 or self.student_temperature <= 0:
            raise InputError("Temperatures must be positive.")


@dataclass(frozen=True, slots=True)
class DistillInstance:
    """One signal as the query side sees it: the task, its candidate rows (store indexes) and
    the ranker's score of each."""

    task: Task
    row_idxs: tuple[int, ...]
    targets: tuple[float, ...]


def task_texts(task: Task) -> list[str]:
    """What the retriever embeds for a task: inputs, final answers, instruction (in that
    order, as `retrieval.task_vectors` does)."""
    return [
        *(e.input for e in task.examples),
        *(final_answer(e.output) for e in task.examples),
        task.instruction,
    ]


def standardised(instances: Sequence[DistillInstance]) -> list[DistillInstance]:
    """Targets centred per list and divided by their spread over all lists: the teacher's
    temperature is then in units of the ranker's own spread, whatever scale its logits took in
    training (one scale for all lists, so a list the ranker finds flat stays flat)."""
    centred = [np.asarray(i.targets, dtype=np.float64) - np.mean(i.targets) for i in instances]
    spread = float(np.std(np.concatenate(centred))) or 1.0
    return [
        DistillInstance(i.task, i.row_idxs, tuple(float(v) for v in c / spread))
        for i, c in zip(instances, centred, strict=True)
    ]


def _embed_tasks(tasks: Sequence[Task], embedder: Embedder) -> list[np.ndarray]:
    texts = [task_texts(t) for t in tasks]
    flat = [t for group in texts for t in group]
    vectors = embedder.embed(flat)
    out, start = [], 0
    for group in texts:
        out.append(np.asarray(vectors[start : start + len(group)], dtype=np.float32))
        start += len(group)
    return out


def _batch_tensors(
    store: Datastore, batch: Sequence[DistillInstance]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded (B, R, C, d) cells with masks, (B, R, d) descriptions, (B, R) targets."""
    import torch

    n_rows = max(len(b.row_idxs) for b in batch)
    n_cells = max(int(store.row_end[r] - store.row_start[r]) for b in batch for r in b.row_idxs)
    cells = np.zeros((len(batch), n_rows, n_cells, store.dim), dtype=np.float32)
    cell_mask = np.zeros((len(batch), n_rows, n_cells), dtype=bool)
    desc = np.zeros((len(batch), n_rows, store.dim), dtype=np.float32)
    row_mask = np.zeros((len(batch), n_rows), dtype=bool)
    targets = np.zeros((len(batch), n_rows), dtype=np.float32)
    for b, inst in enumerate(batch):
        for r, idx in enumerate(inst.row_idxs):
            start, end = int(store.row_start[idx]), int(store.row_end[idx])
            cells[b, r, : end - start] = store.vectors[start:end]
            cell_mask[b, r, : end - start] = True
            desc[b, r] = store.dataset_vectors[int(store.row_dataset[idx])]
        row_mask[b, : len(inst.row_idxs)] = True
        targets[b, : len(inst.targets)] = inst.targets
    return (
        torch.from_numpy(cells),
        torch.from_numpy(cell_mask),
        torch.from_numpy(desc),
        torch.from_numpy(row_mask),
        torch.from_numpy(targets),
    )


def rebase_scores(
    matrix: torch.Tensor,
    bias: torch.Tensor,
    task_vecs: Sequence[torch.Tensor],
    n_examples: Sequence[int],
    cells: torch.Tensor,
    cell_mask: torch.Tensor,
    desc: torch.Tensor,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> torch.Tensor:
    """The ReBase score of every candidate row (B, R), differentiable in `matrix` (torch)."""
    import torch

    w = torch.as_tensor(weights, dtype=torch.float32)
    queries = []
    for vecs, k in zip(task_vecs, n_examples, strict=True):
        mapped = torch.nn.functional.normalize(vecs @ matrix.T + bias, dim=1)
        queries.append(torch.stack([mapped[:k].mean(0), mapped[k : 2 * k].mean(0), mapped[2 * k]]))
    q = torch.stack(queries)  # (B, 3, d)
    sims = torch.einsum("brcd,bsd->brcs", cells, q[:, :2])  # (B, R, C, 2)
    sims = sims.masked_fill(~cell_mask[..., None], -2.0)  # padding never wins the max
    best = sims.max(dim=2).values  # (B, R, 2): S_in, S_out
    s_ds = torch.einsum("brd,bd->br", desc, q[:, 2])
    return (w[0] * best[..., 0] + w[1] * best[..., 1] + w[2] * s_ds) / w.sum()


def train_query_side(
    store: Datastore,
    instances: Sequence[DistillInstance],
    embedder: Embedder,
    config: QueryConfig | None = None,
    *,
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
    on_progress: ProgressFn = no_progress,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[QueryMap, float, float]:
    """Fit the query map on the instances; (map, seconds, final mean KL)."""
    config = config or QueryConfig()
    instances = [i for i in instances if len(i.row_idxs) >= 2]
    if not instances:
        raise InputError("No instance with two or more candidate rows to train the query side.")
    instances = standardised(instances)
    if store.embedder_name != embedder.name:
        raise InputError(
            f"The datastore was built with {store.embedder_name!r} but the query side would "
            f"train on {embedder.name!r}; use the store's embedder."
        )
    import torch

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    vecs = [torch.from_numpy(v) for v in _embed_tasks([i.task for i in instances], embedder)]
    ks = [len(i.task.examples) for i in instances]
    d = store.dim
    matrix = torch.nn.Parameter(torch.eye(d))
    bias = torch.nn.Parameter(torch.zeros(d))
    log_tau = torch.nn.Parameter(torch.tensor(float(np.log(config.student_temperature))))
    optimiser = torch.optim.Adam([matrix, bias, log_tau], lr=config.learning_rate)
    eye = torch.eye(d)
    rng = np.random.default_rng(config.seed)
    batches_per_epoch = -(-len(instances) // config.batch_size)
    total = config.epochs * batches_per_epoch
    step = 0
    last_kl = float("nan")
    for _epoch in range(config.epochs):
        order = rng.permutation(len(instances))
        kls = []
        for start in range(0, len(instances), config.batch_size):
            if should_stop():
                break
            members = [int(i) for i in order[start : start + config.batch_size]]
            cells, cell_mask, desc, row_mask, targets = _batch_tensors(
                store, [instances[i] for i in members]
            )
            scores = rebase_scores(
                matrix,
                bias,
                [vecs[i] for i in members],
                [ks[i] for i in members],
                cells,
                cell_mask,
                desc,
                weights,
            )
            neg = torch.finfo(torch.float32).min
            teacher = torch.softmax(
                (targets / config.teacher_temperature).masked_fill(~row_mask, neg), dim=1
            )
            student = torch.log_softmax((scores / log_tau.exp()).masked_fill(~row_mask, neg), dim=1)
            kl_terms = teacher * (torch.log(teacher.clamp_min(1e-12)) - student)
            kl = kl_terms.masked_fill(~row_mask, 0.0).sum(1).mean()
            pull = ((matrix - eye) ** 2).sum() + (bias**2).sum()
            loss = kl + config.l2_to_identity * pull
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            kls.append(float(kl.detach()))
            step += 1
            on_progress(Progress(step, total, f"query side: KL {kls[-1]:.4f}"))
        if kls:
            last_kl = float(np.mean(kls))
        if should_stop():
            break
    seconds = time.perf_counter() - started
    logger.info(
        "query side: %d instances, %.1f s, KL %.4f, T %.4f",
        len(instances),
        seconds,
        last_kl,
        float(log_tau.detach().exp()),
    )
    query_map = QueryMap(
        matrix.detach().numpy().astype(np.float32), bias.detach().numpy().astype(np.float32)
    )
    return query_map, seconds, last_kl
