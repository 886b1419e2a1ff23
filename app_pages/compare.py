"""Compare: ReBase pairs against baselines written without retrieval (direct, SELF-GUIDE).

Side-by-side diversity metrics (raw and curated), the shared 2-D map of examples, retrieved rows
and every set of pairs (lasso a region to list its points and curate them), length and label
charts, a baseline launcher running as a background job, and a one-click export. What is shown is
computed by `rebase_core.diversity.comparison` and drawn by `baseline_ui` (the baseline runs) and
`compare_ui` (the sets' panels); this page reads the widgets and lays the panels out in order.
"""

from __future__ import annotations

import streamlit as st

import baseline_ui
import compare_ui
import ui
from rebase_core.diversity import (
    BASELINES,
    build_comparison,
    comparison_zip,
    figure_png,
    list_baseline_runs,
    metrics_table,
)

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

# ----------------------------------------------------------------------------- baseline runs
baseline_runs = list_baseline_runs(ws, record.id)
busy = baseline_ui.latest_run(ws, settings, baseline_runs)
baseline_ui.launcher(ws, settings, record, baseline_runs, busy=busy)

# ----------------------------------------------------------------------------- the sets
no_rebase = st.container()  # above the run pickers, filled once the sets are loaded
chosen_runs: dict[str, int] = {}
if baseline_runs:
    for col, kind in zip(st.columns(len(BASELINES)), BASELINES, strict=True):
        if baseline_runs.by_kind[kind]:
            options = [r.id for r in baseline_runs.by_kind[kind]]
            picked = col.selectbox(
                f"{kind} run",
                options,
                format_func=baseline_runs.labels.__getitem__,
                key=f"cmp_run_{kind}",
            )
            chosen_runs[kind] = options[0] if picked is None else picked
        else:
            col.caption(f"No {kind} run yet.")
with ui.shown_errors():
    comparison = build_comparison(ws, record, chosen_runs)
if not comparison.has_rebase:
    no_rebase.info(
        "No ReBase pairs yet: transform the retrieved rows into pairs first, then come back to "
        "compare them with the baselines."
    )
    no_rebase.page_link(
        "app_pages/transform.py", label="Go to Transform & curate", icon=":material/auto_fix_high:"
    )
if comparison.is_empty:
    st.stop()

# ----------------------------------------------------------------------------- metrics
show_curated = st.toggle(
    "Also curated sets (accepted + edited pairs only)",
    value=True,
    key="cmp_curated",
    bind="query-params",
)
metrics = compare_ui.measured(comparison, settings, curated=show_curated)
table = metrics_table(metrics)
st.subheader("Diversity")
compare_ui.diversity(comparison, metrics, table)

# ----------------------------------------------------------------------------- the map
st.subheader("Map")
figure = compare_ui.map_panel(comparison, settings)

# ----------------------------------------------------------------------------- distributions
st.subheader("Lengths and labels")
charts = compare_ui.distributions(comparison, metrics)

# ----------------------------------------------------------------------------- export
st.subheader("Export")
st.download_button(
    "Download the comparison (.zip: metrics CSV/JSON, charts as HTML)",
    data=lambda: comparison_zip(table, {"map": figure, **charts.named()}),
    file_name=f"{task.name}-comparison.zip",
    mime="application/zip",
    icon=":material/download:",
    on_click="ignore",
    key="cmp_export",
)
png = figure_png(figure)
if png.data is None:
    st.caption(png.note)
else:
    st.download_button(
        "Download the map (.png)", png.data, file_name=f"{task.name}-map.png", mime="image/png"
    )
