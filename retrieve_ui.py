"""The Retrieve page's panels for one retrieval run: the partial-store notices, where its rows
come from, the datasets in its top K, the table of its rows with bulk keep/drop, and one row in
detail. Every edit is one workspace or `rebase_core.retrieval_runs` call; this module only draws,
so that the page stays its widgets, its retrieval call and the order of these panels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

import ui
from rebase_core import retrieval_runs as rr

if TYPE_CHECKING:
    from rebase_core.datastore import Datastore
    from rebase_core.datastore.readiness import StoreChoice
    from rebase_core.workspace import RetrievalRun, RetrievedRow, Workspace


def partial_store_notice(choice: StoreChoice) -> None:
    """Says up front that retrieval uses a partial store, so a thin run is not a surprise."""
    if choice.partial:
        st.info(
            f"Retrieval uses {choice.note}. A run made now is marked, and offered again here "
            "once the full datastore is ready.",
            icon=":material/hourglass_top:",
        )


def full_store_offer(current: RetrievalRun, store_path: str, store_partial: bool) -> bool:
    """The warning on a run made on a partial store once the full one is ready, with its rerun
    button; True when pressed (the page makes the run again: its one retrieval call)."""
    note = rr.partial_store_note(current, store_path, store_partial)
    if note is None:
        return False
    st.warning(note, icon=":material/database:")
    return st.button("Retrieve again on the full datastore", icon=":material/refresh:")


def _bar_clicked() -> None:
    """A click on a bar of the sources chart filters the rows to that dataset."""
    event = st.session_state.get("rv_hist")
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if points:
        st.session_state["rv_ds"] = sorted({p["y"] for p in points if "y" in p})


def sources(current: RetrievalRun, counts: dict[str, int], store: Datastore) -> None:
    """The run's rows per dataset as a chart (a bar click filters) and what its options left
    out, folded away: the datasets table below says the same in numbers."""
    with st.expander(f"Sources: {len(counts)} datasets (click a bar to filter)", expanded=False):
        if counts:  # a run of no rows (its keywords matched none) has nothing to chart
            st.plotly_chart(
                rr.sources_chart(list(counts.items())),
                key="rv_hist",
                on_select=_bar_clicked,
                selection_mode=("points",),
            )
        excluded = rr.excluded_datasets(current, store.dataset_names)
        if excluded:
            st.caption(f"Excluded by your options: {', '.join(excluded)}")


def _with_bool_keep(columns: dict[str, list[Any]]) -> pd.DataFrame:
    """The table with its `keep` column as booleans even when it has no rows: pandas makes an
    empty column float, and a checkbox editor refuses a float column (the page would stop)."""
    return pd.DataFrame(columns).astype({"keep": bool})


def datasets_in_top_k(
    ws: Workspace, run_id: int, rows: Sequence[RetrievedRow], edit_version: int
) -> None:
    """The datasets of the run's top K with a tick each, to keep or drop a dataset's rows at
    once. A change bumps the editors' version, so that their old edits are not replayed."""
    summary = rr.dataset_summary(rows)

    def _datasets_changed() -> None:
        edits = st.session_state[f"rv_ds_editor_{edit_version}"].get("edited_rows", {})
        changed = rr.apply_dataset_edits(ws, run_id, summary, edits)
        st.session_state["rv_toast"] = f"{changed:,} row(s) changed."
        st.session_state["rv_edit_v"] = edit_version + 1

    with st.expander(
        f"Datasets in your top {len(rows):,}: {len(summary)} (largest {summary[0].share:.0%})"
        if summary
        else "Datasets in your top K",
        expanded=True,
    ):
        st.caption("Untick a dataset to drop all its rows, tick it to keep them all.")
        st.data_editor(
            _with_bool_keep(rr.dataset_table(summary)),
            key=f"rv_ds_editor_{edit_version}",
            hide_index=True,
            disabled=["dataset", "rows", "share", "kept", "best rank"],
            on_change=_datasets_changed,
            column_config={
                "keep": st.column_config.CheckboxColumn("keep", help="Keep every row of it"),
                "share": st.column_config.ProgressColumn(
                    format="percent", min_value=0, max_value=1
                ),
            },
            height=min(36 * (len(summary) + 1) + 4, 320),
        )


def row_table(ws: Workspace, run_id: int, view: Sequence[RetrievedRow], edit_version: int) -> None:
    """The filtered rows with a keep tick each. The ranks shown are kept in the session, since
    the editor reports its edits by position in what it showed."""

    def _keep_changed() -> None:
        edits = st.session_state[f"rv_editor_{edit_version}"].get("edited_rows", {})
        shown = st.session_state["rv_view_ranks"]
        for keep in (True, False):
            ranks = [shown[i] for i, e in edits.items() if e.get("keep") is keep]
            if ranks:
                ws.set_selected(run_id, ranks, keep)

    st.session_state["rv_view_ranks"] = [r.rank for r in view]
    table = _with_bool_keep(rr.row_table(view))
    st.data_editor(
        table,
        key=f"rv_editor_{edit_version}",
        hide_index=True,
        disabled=[c for c in table.columns if c != "keep"],
        on_change=_keep_changed,
        column_config={
            "keep": st.column_config.CheckboxColumn(
                "keep", help="Keep this row for transformation"
            ),
            "score": st.column_config.ProgressColumn(format="%.4f", min_value=0.0, max_value=1.0),
            "input": st.column_config.NumberColumn(format="%.3f"),
            "output": st.column_config.NumberColumn(format="%.3f"),
            "dataset term": st.column_config.NumberColumn(format="%.3f"),
            "best input cell": st.column_config.TextColumn(width="large"),
            "best output cell": st.column_config.TextColumn(width="medium"),
        },
        height=420,
    )


def _forget_bulk() -> None:
    st.session_state.pop("rv_bulk", None)


@st.dialog("Change the selection", on_dismiss=_forget_bulk)
def _confirm_bulk(
    ws: Workspace, run_id: int, edit_version: int, ranks: list[int], keep: bool
) -> None:
    verb = "Keep" if keep else "Drop"
    st.write(f"{verb} all **{len(ranks):,}** rows of the current filter?")
    if st.button(f"{verb} {len(ranks):,} rows", type="primary"):
        changed = ws.set_selected(run_id, ranks, keep)
        st.session_state["rv_toast"] = f"{changed:,} row(s) changed."
        st.session_state["rv_edit_v"] = edit_version + 1
        _forget_bulk()
        st.rerun()


def bulk_actions(
    ws: Workspace, run_id: int, view: Sequence[RetrievedRow], edit_version: int
) -> None:
    """Keep or drop every row the filters show, through a confirmation: one click can change
    thousands of rows. The dialog stays open across reruns until it is answered."""
    view_ranks = [r.rank for r in view]
    b1, b2, _ = st.columns([2, 2, 4])
    if b1.button(f"Keep all {len(view):,} shown", disabled=not view):
        st.session_state["rv_bulk"] = (view_ranks, True)
    if b2.button(f"Drop all {len(view):,} shown", disabled=not view):
        st.session_state["rv_bulk"] = (view_ranks, False)
    if "rv_bulk" in st.session_state:
        _confirm_bulk(ws, run_id, edit_version, *st.session_state["rv_bulk"])
    if "rv_toast" in st.session_state:
        st.toast(st.session_state.pop("rv_toast"))


def row_detail(
    ws: Workspace,
    store: Datastore,
    current: RetrievalRun,
    rows: Sequence[RetrievedRow],
    view: Sequence[RetrievedRow],
    words: Sequence[str],
) -> None:
    """One row of `view` (not empty) in full: its cells with the filter's words marked, its
    scores term by term, its keep toggle, and the store's rows like it on demand."""
    by_rank = {r.rank: r for r in rows}
    detail_rank = int(
        st.selectbox(
            "Row",
            [r.rank for r in view],
            key="rv_row",
            format_func=lambda k: rr.row_label(by_rank[k]),
        )
    )
    shown = by_rank[detail_rank]
    picked = shown.row
    left, right = st.columns([3, 2])
    with left:
        st.html(rr.cells_html(picked, words))
    with right:
        st.markdown(f"**{picked.dataset}** · config `{picked.config}` · row `{picked.row_id}`")
        st.markdown(rr.score_text(picked, current.options.get("weights", (1.0, 1.0, 1.0))))
        st.caption(picked.description[:600])
        keep_key = f"rv_keep_{current.id}_{detail_rank}"

        def _keep_toggled() -> None:
            ws.set_selected(current.id, [detail_rank], bool(st.session_state[keep_key]))

        st.toggle(
            "Keep for transformation", value=shown.selected, key=keep_key, on_change=_keep_toggled
        )
        if st.button("More like this row", icon=":material/manage_search:"):
            with ui.shown_errors():
                similar = rr.rows_like(store, picked)
            st.dataframe(pd.DataFrame(rr.similar_table(similar, rows)), hide_index=True)
