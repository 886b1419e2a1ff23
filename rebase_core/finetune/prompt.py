"""The prompt and completion a student learns from, and the token ids and labels built from them.

`format_prompt` is shared with evaluation, so a student is asked exactly as it was trained.
"""

from __future__ import annotations

from typing import Any

from rebase_core.errors import InputError
from rebase_core.task import is_chain_of_thought
from rebase_core.types import Task

PROMPT_FORMAT = "alpaca-examples-v1"  # bump when format_prompt changes: old runs keep their name
COT_PREFIX = "Let's think step by step."
IGNORE_INDEX = -100  # label value the loss skips


def format_prompt(task: Task, input: str, with_examples: bool = True) -> str:
    """The Alpaca-style prompt of method.md §4; training and evaluation both use it.

    For chain-of-thought tasks the example responses, and the response to write, start with
    "Let's think step by step." (the paper's habit on BBH), so the model reasons before answering.
    """
    cot = is_chain_of_thought(task.examples)
    parts = []
    if with_examples:
        parts.append(
            "Below is an instruction that describes a task, paired with some examples of the task "
            "and an input. Write a response that appropriately completes the request."
        )
    else:
        parts.append(
            "Below is an instruction that describes a task, paired with an input that provides "
            "further context. Write a response that appropriately completes the request."
        )
    parts.append(f"### Instruction:\n{task.instruction.strip()}")
    if with_examples:
        shots = [
            f"Input: {ex.input.strip()}\nResponse: {_with_cot_prefix(ex.output.strip(), cot)}"
            for ex in task.examples
        ]
        parts.append("### Examples:\n" + "\n\n".join(shots))
    parts.append(f"### Input:\n{input.strip()}")
    parts.append("### Response:\n" + (COT_PREFIX if cot else ""))
    return "\n\n".join(parts)


def format_completion(task: Task, output: str) -> str:
    """The text the model learns to write after `format_prompt` (no end-of-sequence token)."""
    text = output.strip()
    if is_chain_of_thought(task.examples) and text.lower().startswith(COT_PREFIX.lower()):
        text = text[len(COT_PREFIX) :].lstrip()  # the prompt already ends with it
    # After the prefix the reasoning goes on after a space; keeping the space in the completion
    # lets BPE tokenizers make their usual " word" tokens instead of a lone trailing space.
    return " " + text if is_chain_of_thought(task.examples) else text


def _with_cot_prefix(output: str, cot: bool) -> str:
    if cot and not output.lower().startswith(COT_PREFIX.lower()):
        return f"{COT_PREFIX} {output}"
    return output


def end_token(tokenizer: Any) -> str:
    """The token that ends a response: eos, or [SEP] for BERT-style tokenizers without one."""
    token = tokenizer.eos_token or tokenizer.sep_token
    if not token:
        raise InputError(
            "The student's tokenizer has neither an eos nor a sep token; set `eos_token` in its "
            "tokenizer_config.json."
        )
    return str(token)


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Give the tokenizer an eos and a pad token (many causal LMs ship without a pad token)."""
    if tokenizer.eos_token is None:
        tokenizer.eos_token = end_token(tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_features(
    tokenizer: Any,
    prompt: str,
    completion: str,
    *,
    max_seq_len: int,
    completion_only_loss: bool,
) -> dict[str, Any]:
    """Token ids and labels of one training example.

    Prompt and completion are tokenised separately (no special tokens), exactly as generation sees
    them: the prompt alone, then new tokens. When too long, the prompt loses its start (the input
    and "### Response:" stay) and the completion keeps at least half the budget.
    """
    prompt_ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    completion_ids = list(tokenizer(completion, add_special_tokens=False)["input_ids"])
    completion_ids.append(tokenizer.convert_tokens_to_ids(end_token(tokenizer)))
    truncated = len(prompt_ids) + len(completion_ids) > max_seq_len
    if truncated:
        prompt_room = max(max_seq_len - len(completion_ids), max_seq_len // 2)
        prompt_ids = prompt_ids[-prompt_room:]
        completion_ids = completion_ids[: max_seq_len - len(prompt_ids)]
    input_ids = prompt_ids + completion_ids
    if completion_only_loss:
        labels = [IGNORE_INDEX] * len(prompt_ids) + completion_ids
    else:
        labels = list(input_ids)
    return {
        "input_ids": input_ids,
        "labels": labels,
        "attention_mask": [1] * len(input_ids),
        "n_prompt": len(prompt_ids),
        "truncated": truncated,
    }
