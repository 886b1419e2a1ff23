"""Fine-tune: train the student on curated pairs as a background job, watch its loss, list runs."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pandas as pd
import streamlit as st

import finetune_ui
import ui
from rebase_core import finetune as ft
from rebase_core.evaluate import ORIGIN_LABELS
from rebase_core.transform import quality_warnings
from rebase_core.types import PAIR_STATUSES

settings = ui.get_settings()
st.title("Fine-tune")
record = ui.need_task()
task = record.task
ws = ui.get_workspace()

all_pairs = ws.pairs(task_id=record.id)
task_runs = ft.list_runs(settings, task_name=task.name)
if not all_pairs and not task_runs:
    st.info(
        "No pairs for this task yet. Transform retrieved rows (or generate baseline pairs) and "
        "accept the good ones: they are what the student learns from."
    )
    st.page_link(
        "app_pages/transform.py",
        label="Go to the Transform & curate page",
        icon=":material/auto_fix_high:",
    )
    st.stop()

OPTIONS = ft.TrainConfig(threads=settings.threads).options()


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _eta(plan: ft.TrainPlan) -> str:
    if plan.seconds is None:
        return "time unknown until a first run of this student measures it"
    return f"about {ui.fmt_seconds(plan.seconds)} (measured on earlier runs)"


def _option_widget(container: Any, option: ft.OptionInfo) -> Any:
    """One TrainConfig option as a widget; its help is the option's help plus its default."""
    name, label, default = option.name, option.label, option.default
    kw: dict[str, Any] = {
        "key": f"ft_{name}",
        "help": f"{option.help} Default: {option.default_text}.",
    }
    if name == "method":
        return container.selectbox(label, ["lora", "full"], **kw)
    if isinstance(default, bool):
        return container.checkbox(label, value=default, **kw)
    if name == "max_steps":
        return int(container.number_input(label, 0, 10_000_000, 0, **kw)) or None
    if isinstance(default, int):
        low = 0 if name == "seed" else 16 if name == "max_seq_len" else 1
        return int(container.number_input(label, low, 10_000_000, default, **kw))
    if name == "learning_rate":
        return container.number_input(label, 1e-7, 1.0, default, step=1e-5, format="%.1e", **kw)
    if isinstance(default, float):
        return float(container.number_input(label, 0.0, 10_000.0, default, **kw))
    return container.text_input(label, value=default, **kw)


# ----------------------------------------------------------------------------- data
st.subheader("Data")
# Each picker counts within the other's current choice (the widgets' state, read before them).
shown = ft.choose_pairs(
    all_pairs, st.session_state.get("ft_origins"), st.session_state.get("ft_statuses")
)
c1, c2 = st.columns(2)
origins = c1.multiselect(
    "Origins",
    shown.present_origins,
    default=shown.origins,
    format_func=lambda o: f"{ORIGIN_LABELS.get(o, o)} ({shown.by_origin.get(o, 0):,})",
    key="ft_origins",
    help="Where the pairs came from: ReBase (retrieved and transformed rows), direct synthesis "
    "or SELF-GUIDE (the baselines), or written by hand. Train one run per origin to compare them.",
)
statuses = c2.multiselect(
    "Statuses",
    list(PAIR_STATUSES),
    default=shown.statuses,
    format_func=lambda s: f"{s} ({shown.by_status.get(s, 0):,})",
    key="ft_statuses",
    help="Accepted and edited pairs are the curated data; pending ones are not reviewed yet.",
)
choice = ft.choose_pairs(all_pairs, origins, statuses)
if all_pairs:
    origin_of = pd.Series([ORIGIN_LABELS.get(p.origin, p.origin) for p in all_pairs], name="origin")
    status_of = pd.Series([p.status for p in all_pairs], name="status")
    st.expander("Pairs by origin and status").dataframe(pd.crosstab(origin_of, status_of))
trainable = ft.without_held_out(settings, task, choice)
held_out = len(choice.pairs) - len(trainable.pairs)
st.caption(
    f"**{len(trainable.pairs):,}** pairs chosen for training"
    + (f" ({held_out:,} held out as the Evaluate page's test set)." if held_out else ".")
)
# A small student trained on one label mostly learns to answer it everywhere.
for warning in quality_warnings(task, trainable.pairs)[0]:
    st.warning(f"In the pairs chosen for training: {warning}", icon=":material/warning:")

# ----------------------------------------------------------------------------- student and config
st.subheader("Student and hyperparameters")
with st.form("ft_form"):
    student = st.text_input(
        "Student",
        value=ft.DEFAULT_STUDENT,
        key="ft_student",
        help=f"{OPTIONS['student'].help} Default: {ft.DEFAULT_STUDENT}.",
    )
    values = {}
    for group, in_group in ft.FORM_GROUPS.items():
        with st.expander(group, expanded=group == "Training"):
            for col, name in zip(st.columns(len(in_group)), in_group, strict=True):
                values[name] = _option_widget(col, OPTIONS[name])
    submitted = st.form_submit_button(
        "Review and launch", type="primary", icon=":material/rocket_launch:"
    )

with st.expander("What the defaults mean"):
    st.dataframe(
        pd.DataFrame(
            [
                {"setting": o.label, "default": o.default_text, "meaning": o.help}
                for o in OPTIONS.values()
            ]
        ),
        hide_index=True,
        column_config={"meaning": st.column_config.TextColumn(width="large")},
    )
    st.caption(
        "The defaults are the paper's (LoRA r 8, alpha 16, lr 3e-4, one epoch, effective batch "
        "8), with a shorter max length so a CPU run stays in minutes."
    )

config: ft.TrainConfig | None = None
with ui.shown_errors(stop=False):
    config = ft.TrainConfig.from_dict({"student": student.strip(), **values})
if config is not None:
    plan = ft.plan_training(settings, task, choice, config)
    st.caption(
        f"{_count(plan.n_pairs, 'pair')} → **{_count(plan.steps, 'optimizer step')}** (effective "
        f"batch {config.per_device_batch * config.grad_accum}, {config.epochs:g} epoch(s)"
        + (f", at most {config.max_steps}" if config.max_steps else "")
        + f"); {_eta(plan)}."
    )


def _forget_launch() -> None:
    st.session_state.pop("ft_launch", None)


@st.dialog("Start training", on_dismiss=_forget_launch)
def confirm_launch(cfg: dict[str, Any]) -> None:
    config = ft.TrainConfig.from_dict(cfg)
    plan = ft.plan_training(settings, task, choice, config)
    origin_text = ", ".join(f"{ORIGIN_LABELS.get(o, o)} {n:,}" for o, n in plan.by_origin.items())
    st.markdown(
        f"Train **{config.student}** ({config.method}) on **{_count(plan.n_pairs, 'pair')}** "
        f"({origin_text}) for **{_count(plan.steps, 'step')}**."
    )
    st.markdown(f"Training time: {_eta(plan)}, plus loading the model.")
    if plan.existing == "done":
        st.info(f"Run `{plan.run_dir.name}` already trained on exactly this data and config.")
    elif plan.existing:
        st.info(
            f"Run `{plan.run_dir.name}` ({plan.existing}) has this data and config: it resumes."
        )
    st.caption(f"Run folder: `{plan.run_dir}`")
    if st.button("Start training", type="primary", icon=":material/play_arrow:"):
        with ui.shown_errors():
            ft.start_training(settings, task, choice, config)
        st.session_state["ft_run"] = plan.run_dir.name
        _forget_launch()
        st.rerun()


if submitted and config is not None:
    with ui.shown_errors(stop=False):
        ft.check_launch(settings, choice, config)  # too few pairs or a bad folder fail here
        st.session_state["ft_launch"] = asdict(config)
if "ft_launch" in st.session_state:
    confirm_launch(st.session_state["ft_launch"])

# ----------------------------------------------------------------------------- runs
st.subheader("Runs")
show_all = st.toggle("Runs of every task", key="ft_all_runs")
listed = ft.list_runs(settings) if show_all else task_runs
if listed:
    st.dataframe(
        pd.DataFrame([r.table_row() for r in listed]).replace({"data": ORIGIN_LABELS}),
        hide_index=True,
        column_config={"last loss": st.column_config.NumberColumn(format="%.4f")},
    )
# Jobs whose run has no card yet (loading the model, or failed before training) are watchable too.
attempts = ft.train_attempts(settings, task_name=None if show_all else task.name)
names = list(dict.fromkeys([*(r.name for r in listed), *attempts]))
if not names:
    st.caption("No run yet: choose the data above and press **Review and launch**.")
    st.stop()
if st.session_state.get("ft_run") not in names:
    st.session_state["ft_run"] = names[0]
run_name = st.selectbox("Watch run", names, key="ft_run", bind="query-params")


finetune_ui.monitor(settings, run_name)

st.page_link(
    "app_pages/evaluate.py",
    label="Next: evaluate the runs against the untrained student",
    icon=":material/arrow_forward:",
)
