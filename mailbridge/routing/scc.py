"""Strongly connected components and cycles, without recursion.

Tarjan's algorithm with an explicit stack: linear in nodes plus edges and
safe for chains far longer than Python's recursion limit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Components:
    """The SCCs of a graph.

    `members[c]` lists the nodes of component `c`; components are numbered
    in reverse topological order (every edge leaving a component goes to
    one with a smaller number). `of[n]` is the component of node `n`.
    `cyclic[c]` is true when the component holds a cycle: two or more
    nodes, or one node with an edge to itself.
    """

    members: list[list[int]]
    of: list[int]
    cyclic: list[bool]

    def on_cycle(self, node: int) -> bool:
        return self.cyclic[self.of[node]]


def strongly_connected(adjacency: Sequence[Sequence[int]]) -> Components:
    """Tarjan's SCC algorithm, iterative."""
    count = len(adjacency)
    unvisited = -1
    order = [unvisited] * count
    low = [0] * count
    on_stack = [False] * count
    of = [unvisited] * count
    stack: list[int] = []
    members: list[list[int]] = []
    cyclic: list[bool] = []
    counter = 0
    for root in range(count):
        if order[root] != unvisited:
            continue
        # Each frame: (node, position of the next successor to look at).
        frames: list[list[int]] = [[root, 0]]
        order[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        while frames:
            frame = frames[-1]
            node, position = frame
            successors = adjacency[node]
            if position < len(successors):
                frame[1] = position + 1
                target = successors[position]
                if order[target] == unvisited:
                    order[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack[target] = True
                    frames.append([target, 0])
                elif on_stack[target] and order[target] < low[node]:
                    low[node] = order[target]
                continue
            frames.pop()
            if frames:
                parent = frames[-1][0]
                if low[node] < low[parent]:
                    low[parent] = low[node]
            if low[node] != order[node]:
                continue
            component = len(members)
            group: list[int] = []
            while True:
                member = stack.pop()
                on_stack[member] = False
                of[member] = component
                group.append(member)
                if member == node:
                    break
            members.append(group)
            cyclic.append(len(group) > 1 or node in successors)
    return Components(members=members, of=of, cyclic=cyclic)


def cycle_through(
    adjacency: Sequence[Sequence[int]], components: Components, start: int
) -> list[int]:
    """A shortest cycle from `start` back to itself, inside its component.

    Returns the nodes in order, `start` first and not repeated at the end.
    Breadth-first search restricted to the component: linear in its size.
    """
    component = components.of[start]
    if start in adjacency[start]:
        return [start]
    parent: dict[int, int] = {start: start}
    queue: deque[int] = deque([start])
    while queue:
        node = queue.popleft()
        for target in adjacency[node]:
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                path.reverse()
                return path
            if target in parent or components.of[target] != component:
                continue
            parent[target] = node
            queue.append(target)
    raise ValueError(f"node {start} is on no cycle")
