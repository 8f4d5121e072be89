"""Selectors (thinkbudget/selection.py), their token accounting and subsampling, on literal cases."""

from __future__ import annotations

import math

import pytest
from _records import rec

from thinkbudget import evaluation as ev
from thinkbudget import selection as sel


# ------------------------------------------------------------------------------------------------
# Selectors
# ------------------------------------------------------------------------------------------------
def test_majority_and_weighted_vote_literal_cases():
    assert sel.majority_vote(["18", "18", "7"], [True, True, False]) is True
    assert sel.majority_vote(["3", "4"], [False, True]) is False  # tie: first seen
    assert sel.majority_vote([None, None], [False, False]) is False
    assert ev.majority_vote is sel.majority_vote and ev.best_of_n is sel.best_of_n  # one implementation
    # The weights overturn the count: one answer worth 0.7 beats two worth 0.1 each.
    assert sel.weighted_majority_vote(["7", "7", "18"], [0.1, 0.1, 0.7], [False, False, True]) is True
    assert sel.weighted_majority_vote(["7", "7", "18"], [0.3, 0.3, 0.4], [False, False, True]) is False
    assert sel.weighted_majority_vote(["1 000", "1000", "5"], [0.3, 0.3, 0.4], [True, True, False]) is True
    assert sel.weighted_majority_vote([None, "5"], [0.9, 0.1], [False, True]) is True  # no answer never wins
    assert sel.weighted_majority_vote([None], [1.0], [False]) is False


def test_softmax_weights():
    assert sel.softmax_weights([0.0, math.log(3)]) == pytest.approx([0.25, 0.75])
    assert sel.softmax_weights([100.0, 100.0 + math.log(3)]) == pytest.approx([0.25, 0.75])  # offset-free
    assert sel.softmax_weights([None, 2.0]) == pytest.approx([0.0, 1.0])
    assert sel.softmax_weights([None, None]) == [0.0, 0.0]


def test_each_selector_on_one_group():
    # Answers 5, 5, 4 (right), 6. Majority: 5 (wrong). Log-prob favours sample 3 (wrong); the scorer
    # favours sample 2 (right); the scorer's weights put 4 ahead of the two votes for 5.
    group = [
        rec("a", 0, False, "5", logprob=-2.0, score=0.0),
        rec("a", 1, False, "5", logprob=-3.0, score=0.1),
        rec("a", 2, True, "4", logprob=-1.0, score=2.0),
        rec("a", 3, False, "6", logprob=-0.5, score=-1.0),
    ]
    assert sel.select("majority", group) is False
    assert sel.select("logprob", group) is False
    assert sel.select("scorer", group) is True
    assert sel.select("scorer_majority", group) is True
    assert sel.select("oracle", group) is True
    assert sel.select(sel.SINGLE, group[2:3]) is True
    with pytest.raises(ValueError, match="one sample"):
        sel.select(sel.SINGLE, group)
    with pytest.raises(ValueError, match="unknown selector"):
        sel.select("vibes", group)


def test_selection_cost_counts_generation_and_scorer_reads():
    group = [
        rec("a", 0, True, "1", 20, 5, score=1.0, read=40),
        rec("a", 1, False, "2", 30, 5, score=0.0, read=50),
    ]
    assert sel.selection_cost("majority", group) == (60, 0)
    assert sel.selection_cost("logprob", group) == (60, 0)
    assert sel.selection_cost("oracle", group) == (60, 0)
    assert sel.selection_cost("scorer", group) == (60, 90)
    assert sel.selection_cost("scorer_majority", group) == (60, 90)
    with pytest.raises(ValueError, match="needs scorer scores"):
        sel.selection_cost("scorer", [rec("a", 0, True, "1")])


@pytest.mark.parametrize(
    "n_samples, n, blocks",
    [
        (4, 1, [[0], [1], [2], [3]]),
        (4, 2, [[0, 1], [2, 3]]),
        (4, 4, [[0, 1, 2, 3]]),
        (5, 2, [[0, 1], [2, 3]]),
    ],
)
def test_subsample_blocks(n_samples, n, blocks):
    assert [list(b) for b in sel.subsample_blocks(n_samples, n)] == blocks


def test_subsample_blocks_rejects_bad_n():
    for n in (0, 5):
        with pytest.raises(ValueError):
            sel.subsample_blocks(4, n)


def test_selector_at_n_averages_blocks_and_costs():
    # Samples (in index order; stored shuffled): right, wrong, wrong, right; 10/20/30/40 generated tokens.
    group = [
        rec("a", 2, False, "9", 25, 5, score=0.0, read=7),
        rec("a", 0, True, "4", 5, 5, score=1.0, read=7),
        rec("a", 3, True, "4", 35, 5, score=0.5, read=7),
        rec("a", 1, False, "9", 15, 5, score=2.0, read=7),
    ]
    one = sel.selector_at_n(sel.SINGLE, group, 1)
    assert one == {"accuracy": 0.5, "generated_tokens": 25.0, "scorer_tokens": 0.0, "blocks": 4}
    # Blocks [0,1] and [2,3]: the scorer picks sample 1 (wrong), then sample 3 (right).
    two = sel.selector_at_n("scorer", group, 2)
    assert two == {"accuracy": 0.5, "generated_tokens": 50.0, "scorer_tokens": 14.0, "blocks": 2}
    assert sel.selector_at_n("oracle", group, 2)["accuracy"] == 1.0
    assert sel.selector_at_n("majority", group, 4) == {
        "accuracy": 1.0,  # 4 and 9 tie at two votes; 4 is seen first (sample 0)
        "generated_tokens": 100.0,
        "scorer_tokens": 0.0,
        "blocks": 1,
    }


def test_available_selectors_need_every_score():
    scored = [[rec("a", 0, True, "1", score=1.0, read=3)]]
    assert sel.available_selectors(scored) == list(sel.SELECTORS)
    unscored = [[rec("a", 0, True, "1", score=1.0, read=3), rec("a", 1, True, "1")]]
    assert sel.available_selectors(unscored) == ["majority", "logprob", "oracle"]
