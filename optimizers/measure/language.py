"""What a causal language model's report adds: perplexity on text, and how fast it generates.

Both take the model as Slimforge holds it (`TokenIdsModel`, or the TorchScript a recipe saved): int64 token ids
[N, L] in, logits [N, L, vocabulary] out. Those models take the whole sequence at every call and keep no key-value
cache, so generating a token costs a forward pass over everything before it: the speeds here are what the saved
file gives as it is, not what a serving stack with a cache would reach.
"""
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from optimizers.measure.inference import inference_context

BATCH = 8  # blocks per forward pass: a [8, 256, 49152] float32 logits tensor is 400 MB
PERPLEXITY_BUDGET_S = 120.0
# TorchScript's executor profiles a module's first calls and optimizes it at the second: a second or more each for
# a decoder, which would land in the timed loop. After that, new lengths run at full speed.
WARMUP_CALLS = 3


@dataclass
class Perplexity:
    value: float | None  # exp of the mean next-token cross-entropy over every predicted token; None if none ran
    tokens: int  # tokens predicted (each block of L tokens predicts L - 1)
    blocks: int  # blocks evaluated
    note: str | None = None  # why fewer blocks than given were evaluated


def perplexity(model: Any, blocks: torch.Tensor | Sequence[torch.Tensor], *, batch: int = BATCH,
               budget_s: float = PERPLEXITY_BUDGET_S) -> Perplexity:
    """Perplexity of `model` on `blocks` of token ids ([B, L] tensor, or 1-D tensors of any lengths).

    Token-weighted: every predicted token counts once, so a long block weighs more than a short one. Blocks of
    equal length run `batch` at a time; evaluation stops once `budget_s` is spent (after the first batch), and
    the note says how many blocks were used.
    """
    rows = [block.reshape(-1) for block in blocks]
    if not rows:
        return Perplexity(None, 0, 0, "no text to measure perplexity on")
    total_loss, total_tokens, done = 0.0, 0, 0
    deadline = time.perf_counter() + budget_s
    with inference_context(model):
        while done < len(rows) and (done == 0 or time.perf_counter() < deadline):
            group = _same_length(rows, done, batch)
            ids = torch.stack(group)
            loss, tokens = _next_token_loss(model(ids), ids)
            total_loss, total_tokens, done = total_loss + loss, total_tokens + tokens, done + len(group)
    note = None if done == len(rows) else f"perplexity on the first {done} of {len(rows)} blocks (time budget)"
    value = math.exp(total_loss / total_tokens) if total_tokens else None
    return Perplexity(value, total_tokens, done, note)


def _same_length(rows: list[torch.Tensor], start: int, batch: int) -> list[torch.Tensor]:
    """Up to `batch` consecutive rows from `start` that share the first one's length (they are stacked)."""
    group = [rows[start]]
    for row in rows[start + 1:start + batch]:
        if len(row) != len(group[0]):
            break
        group.append(row)
    return group


def _next_token_loss(logits: torch.Tensor, ids: torch.Tensor) -> tuple[float, int]:
    """(summed cross-entropy of predicting ids[:, 1:] from logits[:, :-1], number of predictions)."""
    if logits.dim() != 3 or logits.shape[:2] != ids.shape:
        raise ValueError(f"perplexity needs logits [N, L, vocabulary] for ids {list(ids.shape)}; the model "
                         f"returns {list(logits.shape)}")
    predicted = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    loss = F.cross_entropy(predicted, ids[:, 1:].reshape(-1), reduction="sum")
    return float(loss.double()), predicted.shape[0]


@dataclass
class GenerationSpeed:
    prompt_tokens: int
    new_tokens: int
    time_to_first_token_ms: float  # the prompt's forward pass at batch 1 (prefill), best of the runs
    tokens_per_s: dict[int, float]  # batch -> generated tokens per second (all sequences), greedy, no cache
    continuation: list[int] = field(default_factory=list)  # the greedy tokens at batch 1: compare models by it


def generation_speed(model: Any, prompt_ids: torch.Tensor, new_tokens: int, batch: int, *,
                     repeats: int = 3) -> GenerationSpeed:
    """Time to first token and greedy decoding speed at batch 1 and at `batch` (the prompt repeated).

    No key-value cache (see the module's docstring): step k runs the model over prompt + k tokens. `WARMUP_CALLS`
    passes run first at each batch size (TorchScript optimizes a graph on its first calls); the time to first token
    is the best of `repeats` prefills, and tokens per second count every sequence's new tokens over the whole loop.
    """
    if new_tokens < 1 or batch < 1:
        raise ValueError("generation needs at least one new token and a batch of at least 1")
    prompt = prompt_ids.reshape(1, -1)
    with inference_context(model):
        for _ in range(WARMUP_CALLS):
            model(prompt)
        first = []
        for _ in range(repeats):
            started = time.perf_counter()
            model(prompt)
            first.append(time.perf_counter() - started)
        speeds, continuation = {}, []
        for size in dict.fromkeys((1, batch)):
            prompts = prompt.expand(size, -1).contiguous()
            for _ in range(WARMUP_CALLS if size > 1 else 0):
                model(prompts)
            generated, seconds = _greedy(model, prompts, new_tokens)
            speeds[size] = round(size * new_tokens / seconds, 3)
            if size == 1:
                continuation = generated[0].tolist()
    return GenerationSpeed(prompt.shape[1], new_tokens, round(min(first) * 1000, 3), speeds, continuation)


def _greedy(model: Any, ids: torch.Tensor, new_tokens: int) -> tuple[torch.Tensor, float]:
    """(the `new_tokens` greedy tokens [N, new_tokens], seconds the loop took)."""
    started = time.perf_counter()
    for _ in range(new_tokens):
        logits = model(ids)
        ids = torch.cat([ids, logits[:, -1].argmax(dim=-1, keepdim=True).to(ids.dtype)], dim=1)
    return ids[:, -new_tokens:], time.perf_counter() - started
