"""The iterative SCC pass and cycle extraction on plain adjacency lists."""

from __future__ import annotations

import sys

import pytest

from mailbridge.routing.scc import cycle_through, strongly_connected


def test_long_chain_needs_no_recursion() -> None:
    size = 20 * sys.getrecursionlimit()
    chain = [[i + 1] for i in range(size - 1)] + [[0]]
    components = strongly_connected(chain)
    assert len(components.members) == 1
    assert components.on_cycle(size // 2)
    assert len(cycle_through(chain, components, 0)) == size


def test_reverse_topological_numbering() -> None:
    adjacency = [[1], [2], [1, 3], []]
    components = strongly_connected(adjacency)
    of = components.of
    assert of[1] == of[2]
    assert of[3] < of[1] < of[0]
    assert [components.cyclic[of[n]] for n in range(4)] == [False, True, True, False]


def test_self_edge_is_a_cycle_of_one() -> None:
    components = strongly_connected([[0, 1], []])
    assert components.on_cycle(0)
    assert not components.on_cycle(1)
    assert cycle_through([[0, 1], []], components, 0) == [0]


def test_shortest_cycle_through_start() -> None:
    adjacency = [[1, 3], [2], [0], [0]]
    components = strongly_connected(adjacency)
    assert cycle_through(adjacency, components, 0) == [0, 3]


def test_no_cycle_raises() -> None:
    adjacency: list[list[int]] = [[1], []]
    with pytest.raises(ValueError, match="on no cycle"):
        cycle_through(adjacency, strongly_connected(adjacency), 0)
