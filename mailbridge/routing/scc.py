"""Strongly connected components and cycles, without recursion.

Tarjan's algorithm with an explicit stack: linear in nodes plus edges and
safe for chains far longer than Python's recursion limit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
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
    """Tarjan's SCC algorithm, iterative.

    The walk keeps one iterator per node on the path instead of a call
    stack; the loops are written for speed, as the graph may hold
    hundreds of thousands of addresses.
    """
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
        order[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        path: list[tuple[int, Iterator[int]]] = [(root, iter(adjacency[root]))]
        while path:
            node, successors = path[-1]
            descended = False
            for target in successors:
                if order[target] == unvisited:
                    order[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack[target] = True
                    path.append((target, iter(adjacency[target])))
                    descended = True
                    break
                if on_stack[target] and order[target] < low[node]:
                    low[node] = order[target]
            if descended:
                continue
            path.pop()
            node_low = low[node]
            if path:
                parent = path[-1][0]
                if node_low < low[parent]:
                    low[parent] = node_low
            if node_low != order[node]:
                continue
            component = len(members)
            member = stack.pop()
            on_stack[member] = False
            of[member] = component
            if member == node:
                members.append([node])
                cyclic.append(node in adjacency[node])
                continue
            group = [member]
            while member != node:
                member = stack.pop()
                on_stack[member] = False
                of[member] = component
                group.append(member)
            members.append(group)
            cyclic.append(True)
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
