"""Perplexity and generation speed of causal language models, on small models whose answers are known."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optimizers.measure.language import generation_speed, perplexity

VOCAB = 11


class Uniform(nn.Module):
    """Every token equally likely: perplexity is the vocabulary size."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*ids.shape, VOCAB)


class Counter(nn.Module):
    """Predicts token t + 1 after token t (mod VOCAB), all but certain."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return 50.0 * F.one_hot((ids + 1) % VOCAB, VOCAB).float()


class Tiny(nn.Module):
    """Some fixed causal model: an embedding and a head, each position seeing only its own token."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding, self.head = nn.Embedding(VOCAB, 8), nn.Linear(8, VOCAB)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(ids))


def _blocks(count: int, length: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (count, length), generator=torch.Generator().manual_seed(count * length))


def test_a_model_that_knows_nothing_has_the_vocabulary_as_perplexity():
    result = perplexity(Uniform(), _blocks(5, 9))
    assert result.value == pytest.approx(VOCAB) and (result.tokens, result.blocks, result.note) == (40, 5, None)


def test_a_model_that_predicts_every_token_has_perplexity_one():
    counting = torch.arange(40).remainder(VOCAB).reshape(4, 10)
    assert perplexity(Counter(), counting).value == pytest.approx(1.0, abs=1e-6)
    assert perplexity(Counter(), _blocks(4, 10)).value > 1e6  # random text surprises it completely


def test_every_predicted_token_weighs_the_same_whatever_the_block_lengths():
    model = Tiny()
    blocks = [_blocks(1, 3)[0], *_blocks(2, 12)]  # one alone, then two stacked
    with torch.no_grad():
        losses = [F.cross_entropy(model(block[None])[0, :-1], block[1:], reduction="sum") for block in blocks]
    expected = math.exp(float(sum(losses)) / (2 + 11 + 11))
    result = perplexity(model, blocks, batch=2)
    assert result.value == pytest.approx(expected, rel=1e-6) and result.tokens == 24


def test_evaluation_stops_at_the_time_budget_and_says_so():
    result = perplexity(Uniform(), _blocks(7, 5), batch=3, budget_s=0.0)
    assert (result.blocks, result.tokens) == (3, 12)
    assert result.note == "perplexity on the first 3 of 7 blocks (time budget)"
    assert perplexity(Uniform(), []).value is None


def test_a_model_without_next_token_logits_is_refused_by_name():
    with pytest.raises(ValueError, match=r"logits \[N, L, vocabulary\]"):
        perplexity(nn.Identity(), _blocks(2, 4))


def test_greedy_generation_continues_the_text_and_is_timed_at_both_batches():
    speed = generation_speed(Counter(), torch.tensor([3, 4, 5]), new_tokens=6, batch=3, repeats=2)
    assert speed.continuation == [6, 7, 8, 9, 10, 0]
    assert (speed.prompt_tokens, speed.new_tokens) == (3, 6)
    assert set(speed.tokens_per_s) == {1, 3} and all(value > 0 for value in speed.tokens_per_s.values())
    assert speed.time_to_first_token_ms > 0
    assert set(generation_speed(Counter(), torch.tensor([[1]]), new_tokens=1, batch=1).tokens_per_s) == {1}
    with pytest.raises(ValueError, match="at least one new token"):
        generation_speed(Counter(), torch.tensor([1]), new_tokens=0, batch=1)
