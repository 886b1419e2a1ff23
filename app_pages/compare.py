"""Compare: ReBase pairs against baselines written without retrieval (direct, SELF-GUIDE).

Side-by-side diversity metrics (raw and curated), the shared 2-D map of examples, retrieved rows
and every set of pairs (lasso a region to list its points and curate them), length and label
charts, a baseline launcher running as a background job, and a one-click export.
"""

from __future__ import annotations

import importlib.util
import io
import json
import threading
import zipfile
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

import ui
from rebase_core import runs
from rebase_core.diversity import (
    DiversityMetrics,
    embed_texts,
    input_output,
    label_figure,
    length_figure,
    measure_diversity,
    project,
    projection_figure,
    selected_indices,
)
from rebase_core.synthesize import (
    DEFAULT_STUDENT,
    METHODS,
    BaselineRun,
    estimate_synthesis,
    make_config,
)
from rebase_core.types import Pair
from rebase_core.workspace import PairRun

BASELINES = ("direct", "self-guide")
PAIR_ORIGINS = ("rebase", *BASELINES, "manual")
CURATED = ("accepted", "edited")
SMOLLM2_CALLS_PER_S = 2.0  # measured 1.2-3.1 SELF-GUIDE calls/s on one core of a busy box
METRIC_COLUMNS = {
    "n": "pairs",
    "unique_inputs": "unique inputs",
    "distinct_1": "distinct-1",
    "distinct_2": "distinct-2",
    "avg_input_len": "input words",
    "avg_output_len": "output words",
    "dispersion": "dispersion",
    "near_duplicate_share": "near-duplicates",
    "label_entropy": "label balance",
}

settings = ui.get_settings()
st.title("Compare")
record = ui.need_task()
ws = ui.get_workspace()
task = record.task
st.caption(
    f"Task **{task.name}**: are the ReBase pairs more varied than pairs an LLM writes from the "
    "instruction alone (*direct*, prompt2model) or that the student writes itself "
    "(*SELF-GUIDE*)? Metrics as in the paper's Table 3, plus embedding dispersion."
)


# ----------------------------------------------------------------------------- helpers


def run_label(run: Any, counts: Mapping[str, int]) -> str:
    total = sum(counts.values())
    curated = sum(counts.get(s, 0) for s in CURATED)
    return f"#{run.id} · {run.llm or '?'} · {run.created_at} · {total} pairs, {curated} curated"


def metrics_frame(metrics: Mapping[str, DiversityMetrics | None]) -> pd.DataFrame:
    """One row per set, the report's numbers as columns (empty sets have none)."""
    rows = []
    for name, m in metrics.items():
        row: dict[str, Any] = {"set": name}
        data = m.to_json_dict() if m is not None else {"n": 0}
        row.update({label: data.get(field) for field, label in METRIC_COLUMNS.items()})
        rows.append(row)
    return pd.DataFrame(rows).set_index("set")


@st.cache_data(show_spinner=False, max_entries=64)
def cached_vectors(texts: tuple[str, ...], embedder_name: str, threads: int) -> np.ndarray:
    return embed_texts(ui.get_embedder(embedder_name, threads), list(texts))


@st.cache_data(show_spinner=False, max_entries=64)
def cached_metrics(
    pairs: tuple[tuple[str, str], ...], embedder_name: str, threads: int
) -> DiversityMetrics:
    vectors = cached_vectors(tuple(p[0] for p in pairs), embedder_name, threads)
    items = [{"input": a, "output": b} for a, b in pairs]
    return measure_diversity(items, vectors=vectors)


def zip_export(frame: pd.DataFrame, figures: Mapping[str, Any]) -> bytes:
    """The comparison as one file: metrics (CSV and JSON) and every chart as standalone HTML."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metrics.csv", frame.to_csv())
        archive.writestr(
            "metrics.json", json.dumps(json.loads(frame.to_json(orient="index")), indent=2)
        )
        for name, fig in figures.items():
            archive.writestr(f"{name}.html", fig.to_html(include_plotlyjs=True, full_html=True))
    return buffer.getvalue()


# ----------------------------------------------------------------------------- baseline runs

baseline_runs = {kind: ws.pair_runs(record.id, kind) for kind in BASELINES}
run_counts = {r.id: ws.status_counts(run_id=r.id) for rs in baseline_runs.values() for r in rs}
newest = max((r for rs in baseline_runs.values() for r in rs), key=lambda r: r.id, default=None)
latest_job = runs.pair_run_job(settings, newest) if newest is not None else None


@st.fragment(run_every="2s")
def job_monitor(run: PairRun) -> None:
    """Live progress of the baseline job; reruns the page when it finishes."""
    job = runs.pair_run_job(settings, run)
    if job is None:
        return
    ui.job_panel(job, label=f"Baseline run ({run.kind})")
    if not job.is_active:
        st.rerun()


if newest is not None and latest_job is not None and latest_job.is_active:
    job_monitor(newest)
elif newest is not None and latest_job is not None:
    ui.job_panel(latest_job, label=f"Last baseline run ({newest.kind})")
    if latest_job.state in ("failed", "cancelled") and st.button(
        "Resume it", key="cmp_resume", icon=":material/replay:"
    ):
        with ui.shown_errors():
            runs.resume_pair_run(settings, ws, newest)
        st.rerun()

no_baseline = not any(baseline_runs.values())
with st.expander("Launch a baseline run", expanded=no_baseline, icon=":material/rocket_launch:"):
    if no_baseline:
        st.info(
            "No baseline yet for this task. Make one here: its pairs land in the workspace like "
            "ReBase pairs (curate them on the Transform page) and appear in the comparison below."
        )
    method = (
        st.segmented_control(
            "Method",
            METHODS,
            default="direct",
            key="cmp_method",
            format_func={"direct": "Direct generation", "self-guide": "SELF-GUIDE"}.get,
            help="Direct: an LLM writes pairs from the instruction and examples, temperature "
            "rising from 0.5, duplicates voted out. SELF-GUIDE: the student writes inputs, answers "
            "each several times and keeps answers it agrees on that pass the rule filters.",
        )
        or "direct"
    )
    choice = ui.llm_choice()
    c1, c2, c3 = st.columns(3)
    n = int(c1.number_input("Pairs to make", 1, 20_000, 100 if method == "direct" else 30))
    seed = int(
        c2.number_input(
            "Seed",
            0,
            1_000_000,
            len(baseline_runs[method]),
            help="Another seed gives other pairs; the same seed reruns from the cache for free.",
        )
    )
    if method == "self-guide":
        own = c3.toggle(
            "Use the sidebar LLM",
            value=False,
            help=f"SELF-GUIDE's point is that the student writes its own data: by default "
            f"{DEFAULT_STUDENT}, the student the Fine-tune page trains.",
        )
        spec = choice.spec if own else DEFAULT_STUDENT
        base_url = choice.base_url if own else ""
    else:
        spec, base_url = choice.spec, choice.base_url
        c3.markdown(f"LLM: `{spec}`  \n(change it in the sidebar)")
    values: dict[str, Any] = {"seed": seed, "concurrency": choice.concurrency}
    with st.popover("Settings", icon=":material/tune:"):
        if method == "direct":
            values["per_call"] = st.number_input("Pairs per call", 1, 20, 5)
            values["max_temperature"] = st.slider("Highest temperature", 0.5, 2.0, 1.2, 0.05)
        else:
            values["samples"] = st.number_input("Answers per input (self-consistency)", 1, 20, 5)
            values["min_share"] = st.slider("Share the top answer needs", 0.0, 1.0, 0.3, 0.05)
            values["inputs_per_round"] = st.number_input("Inputs per round", 1, 100, 10)
    with ui.shown_errors():
        config = make_config(method, values)
        estimate = estimate_synthesis(task, spec, method, n, config)
    if estimate.cost_usd is None:
        cost = "cost unknown (no price for this model)"
    elif estimate.cost_usd == 0:
        cost = "free"
    else:
        cost = f"about ${estimate.cost_usd:.3f} (at most ${estimate.max_cost_usd:.3f})"
    timing = ""
    if spec == DEFAULT_STUDENT:
        low = estimate.calls / SMOLLM2_CALLS_PER_S
        high = estimate.max_calls / SMOLLM2_CALLS_PER_S
        timing = f", roughly {ui.fmt_seconds(low)} to {ui.fmt_seconds(high)} on this machine"
    st.caption(
        f"About {estimate.calls:,} calls (at most {estimate.max_calls:,} if many are dropped), "
        f"{estimate.input_tokens:,} tokens in, {estimate.output_tokens:,} out: {cost}{timing}. "
        "Calls already in the response cache cost nothing."
    )
    busy = latest_job is not None and latest_job.is_active
    if st.button(
        f"Make {n:,} {method} pairs",
        type="primary",
        disabled=busy,
        key="cmp_launch",
        icon=":material/play_arrow:",
        help="One baseline run at a time per task." if busy else None,
    ):
        with ui.shown_errors():
            baseline = BaselineRun(
                record.id, method, n, runs.LLMRef(spec, base_url or None), config
            )
            run_id = runs.start_pair_run(settings, ws, baseline).id
        st.session_state.pop(f"cmp_run_{method}", None)  # compare the new run from now on
        st.session_state["cmp_toast"] = f"Started run #{run_id}: {n} {method} pairs with {spec}."
        st.rerun()
if "cmp_toast" in st.session_state:
    st.toast(st.session_state.pop("cmp_toast"))

# ----------------------------------------------------------------------------- the sets
all_pairs = ws.pairs(task_id=record.id)
rebase_pairs = [p for p in all_pairs if p.origin == "rebase"]
if not rebase_pairs:
    st.info(
        "No ReBase pairs yet: transform the retrieved rows into pairs first, then come back to "
        "compare them with the baselines."
    )
    st.page_link(
        "app_pages/transform.py", label="Go to Transform & curate", icon=":material/auto_fix_high:"
    )

chosen_runs: dict[str, int] = {}
if any(baseline_runs.values()):
    cols = st.columns(len(BASELINES))
    for col, kind in zip(cols, BASELINES, strict=True):
        if baseline_runs[kind]:
            options = {r.id: run_label(r, run_counts[r.id]) for r in baseline_runs[kind]}
            chosen_runs[kind] = col.selectbox(
                f"{kind} run", list(options), format_func=options.get, key=f"cmp_run_{kind}"
            )
        else:
            col.caption(f"No {kind} run yet.")

pairs_by_origin: dict[str, list[Pair]] = {"rebase": rebase_pairs}
for kind, run_id in chosen_runs.items():
    pairs_by_origin[kind] = ws.pairs(run_id=run_id)
manual = [p for p in all_pairs if p.origin == "manual"]
if manual:
    pairs_by_origin["manual"] = manual
pairs_by_id = {p.id: p for ps in pairs_by_origin.values() for p in ps}

retrieval_runs = ws.retrieval_runs(record.id)
retrieved = ws.kept_rows(retrieval_runs[0].id) if retrieval_runs else []

if not any(pairs_by_origin.values()) and not retrieved:
    st.stop()

# ----------------------------------------------------------------------------- metrics
embedder_name, threads = settings.embedder, settings.threads
show_curated = st.toggle(
    "Also curated sets (accepted + edited pairs only)",
    value=True,
    key="cmp_curated",
    bind="query-params",
)
sets: dict[str, list[tuple[str, str]]] = {}
if retrieved:
    sets["retrieved"] = [input_output(r) for r in retrieved]
for origin, pairs in pairs_by_origin.items():
    if pairs:
        sets[origin] = [(p.input, p.output) for p in pairs]
    if show_curated and pairs:
        sets[f"{origin} · curated"] = [(p.input, p.output) for p in pairs if p.status in CURATED]

metrics: dict[str, DiversityMetrics | None] = {}
with st.spinner("Embedding and measuring…"), ui.shown_errors():
    for name, items in sets.items():
        metrics[name] = cached_metrics(tuple(items), embedder_name, threads) if items else None
frame = metrics_frame(metrics)

st.subheader("Diversity")
cards = [o for o in pairs_by_origin if metrics.get(o) is not None]
if cards:
    base = metrics.get("rebase")
    for col, origin in zip(st.columns(len(cards)), cards, strict=True):
        m = metrics[origin]
        assert m is not None
        delta = None
        if base is not None and origin != "rebase":
            delta = f"{m.distinct_2 - base.distinct_2:+.3f} vs ReBase"
        col.metric(
            f"{origin}: distinct bigrams",
            f"{m.distinct_2:.3f}",
            delta=delta,
            help=f"{m.n} pairs; unique inputs {m.unique_inputs:.0%}",
        )
st.dataframe(
    frame,
    key="cmp_metrics",
    column_config={
        label: st.column_config.NumberColumn(format="%d" if field == "n" else "%.3f")
        for field, label in METRIC_COLUMNS.items()
    },
)
st.caption(
    "unique inputs: share of distinct inputs · distinct-n: distinct n-grams ÷ all n-grams of the "
    "inputs · words: average lengths · dispersion: mean pairwise cosine distance of the input "
    "embeddings (higher is more spread) · near-duplicates: share of inputs whose nearest "
    "neighbour has cosine ≥ 0.95 · label balance: label entropy ÷ its maximum (1 = even)."
)
with st.expander("Why pairs were dropped", icon=":material/filter_alt:"):
    for kind, run_id in chosen_runs.items():
        counts = Counter(f.failure.reason for f in ws.failures(run_id))
        text = ", ".join(f"{k} {v}" for k, v in counts.most_common()) or "none"
        st.markdown(f"**{kind}** run #{run_id}: {text}")
    if not chosen_runs:
        st.caption("No baseline run yet.")

# ----------------------------------------------------------------------------- the map
st.subheader("Map")
groups: dict[str, list[str]] = {"examples": [e.input for e in task.examples]}
ids: dict[str, list[str]] = {"examples": [f"examples:{i}" for i in range(len(task.examples))]}
outputs: dict[str, str] = {f"examples:{i}": e.output for i, e in enumerate(task.examples)}
if retrieved:
    groups["retrieved"] = [input_output(r)[0] for r in retrieved]
    ids["retrieved"] = [f"retrieved:{r.dataset}/{r.config}/{r.row_id}" for r in retrieved]
    outputs.update(
        {i: input_output(r)[1] for i, r in zip(ids["retrieved"], retrieved, strict=True)}
    )
for origin, pairs in pairs_by_origin.items():
    if pairs:
        groups[origin] = [p.input for p in pairs]
        ids[origin] = [p.id for p in pairs]
vectors = {
    name: cached_vectors(tuple(texts), embedder_name, threads) for name, texts in groups.items()
}
cache_dir = settings.home / "cache" / "projections"
map_method = (
    st.segmented_control(
        "Projection",
        ["pca", "umap"],
        default="pca",
        key="cmp_map_method",
        bind="query-params",
        format_func=str.upper,
        help="PCA is instant. UMAP shows neighbourhoods better; it is computed in the "
        "background (the first time in a server process also compiles UMAP, ~40 s) and cached.",
    )
    or "pca"
)
with ui.shown_errors():
    projection = project(groups, vectors=vectors, ids=ids, method="pca", cache_dir=cache_dir)
data_key = projection.cache_key
if map_method == "umap":
    umap_state = st.session_state.setdefault("cmp_umap", {})
    if data_key not in umap_state:
        box: dict[str, Any] = {}

        def compute(box: dict[str, Any] = box) -> None:  # no Streamlit calls in this thread
            try:
                box["projection"] = project(
                    groups, vectors=vectors, ids=ids, method="umap", cache_dir=cache_dir
                )
            except Exception as exc:  # shown by the page, not lost with the thread
                box["error"] = exc

        worker = threading.Thread(target=compute, name="umap", daemon=True)
        box["thread"] = worker
        umap_state[data_key] = box
        worker.start()
    box = umap_state[data_key]
    if "projection" in box:
        projection = box["projection"]
    elif "error" in box:
        st.error(f"UMAP failed: {box['error']}. Showing PCA.")
    else:

        @st.fragment(run_every="2s")
        def umap_poller() -> None:
            if not box["thread"].is_alive():
                st.rerun()
            st.caption(":material/hourglass_top: UMAP is computing; PCA shown meanwhile.")

        umap_poller()
if projection.note:
    st.caption(projection.note)
figure = projection_figure(
    projection, title=f"{projection.method.upper()} of the inputs ({len(projection):,} points)"
)
event = st.plotly_chart(
    figure, key="cmp_map", on_select="rerun", selection_mode=("points", "box", "lasso")
)
points = event.selection.points if event is not None and hasattr(event, "selection") else []
chosen = selected_indices(points, projection)
if chosen:
    table = pd.DataFrame(
        {
            "origin": [projection.origin[i] for i in chosen],
            "input": [projection.text[i] for i in chosen],
            "output": [
                pairs_by_id[pid].output if pid in pairs_by_id else outputs.get(pid, "")
                for pid in (projection.point_id[i] for i in chosen)
            ],
            "status": [
                pairs_by_id[pid].status if pid in pairs_by_id else ""
                for pid in (projection.point_id[i] for i in chosen)
            ],
            "id": [projection.point_id[i] for i in chosen],
        }
    )
    st.caption(f"{len(chosen):,} points selected")
    st.dataframe(table, hide_index=True, key="cmp_selected")
    pair_ids = [pid for pid in table["id"] if pid in pairs_by_id]
    st.session_state["curate_ids"] = pair_ids
    if pair_ids:
        st.page_link(
            "app_pages/transform.py",
            label=f"Curate these {len(pair_ids):,} pairs",
            icon=":material/rule:",
        )
else:
    st.caption("Drag a box or a lasso on the map to list the points inside it.")

# ----------------------------------------------------------------------------- distributions
st.subheader("Lengths and labels")
input_sets = {o: [p.input for p in ps] for o, ps in pairs_by_origin.items() if ps}
output_sets = {o: [p.output for p in ps] for o, ps in pairs_by_origin.items() if ps}
figures: dict[str, Any] = {"map": figure}
tabs = st.tabs(["Input length", "Output length", "Labels"])
if input_sets:
    figures["input_lengths"] = length_figure(input_sets, title="Input length in words")
    figures["output_lengths"] = length_figure(output_sets, title="Output length in words")
    tabs[0].plotly_chart(figures["input_lengths"], key="cmp_len_in")
    tabs[1].plotly_chart(figures["output_lengths"], key="cmp_len_out")
labelled = {k: m for k, m in metrics.items() if m is not None and m.label_distribution}
if labelled:
    figures["labels"] = label_figure(labelled)
    tabs[2].plotly_chart(figures["labels"], key="cmp_labels")
else:
    tabs[2].caption("The outputs do not look like a small label set, so there is no label chart.")

# ----------------------------------------------------------------------------- export
st.subheader("Export")
st.download_button(
    "Download the comparison (.zip: metrics CSV/JSON, charts as HTML)",
    data=lambda: zip_export(frame, figures),
    file_name=f"{task.name}-comparison.zip",
    mime="application/zip",
    icon=":material/download:",
    on_click="ignore",
    key="cmp_export",
)
if importlib.util.find_spec("kaleido") is None:
    st.caption(
        "PNG export needs the `kaleido` package, which is not installed. The HTML charts open "
        "offline in any browser; their camera button saves a PNG."
    )
else:
    try:
        png = figure.to_image(format="png")
    except (ValueError, RuntimeError) as exc:
        st.caption(f"PNG export failed ({exc}); use the HTML file.")
    else:
        st.download_button(
            "Download the map (.png)", png, file_name=f"{task.name}-map.png", mime="image/png"
        )
