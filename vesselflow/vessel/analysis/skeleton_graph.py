"""The graph of a 2-D pixel skeleton, in numpy and scipy: skan's graph without its numba code.

skan (``skan.Skeleton``) compiles numba functions at its first call in a process, several
without a disk cache: about 6 s on a quiet 2-core machine, paid by the first photo of every
``vesselflow segment`` run and every app start. This module builds the same graph with
vectorised numpy/scipy code:

* nodes are the skeleton's pixels in raster order, edges join 8-neighbours with their
  Euclidean distance (``skimage.graph.pixel_graph``, what skan calls);
* clusters of junction pixels (degree >= 3) keep only a minimum spanning tree of their edges
  among themselves (skan's ``_mst_junctions``), so a junction drawn as a 2x2 block is not a
  tangle of short loops;
* a *path* runs between two stop nodes (degree != 2) through degree-2 pixels, as skan's
  paths do; :func:`chain_paths` orders the interior of every path at once (unweighted
  distances from one end of each chain).

``tests/vessel/test_skeleton_graph.py`` checks it against skan on vessel tracings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph


@dataclass(frozen=True)
class SkeletonGraph:
    """Attributes: ``graph`` (N, N) csr edge lengths (px); ``coordinates`` (N, 2) row/col;
    ``degrees`` (N,) neighbours per node after the junction trees."""

    graph: sparse.csr_matrix
    coordinates: np.ndarray
    degrees: np.ndarray

    @property
    def length(self) -> float:
        """Total skeleton length (px): every edge once (each belongs to exactly one path)."""
        return float(self.graph.data.sum() / 2)


def skeleton_graph(sk: np.ndarray) -> SkeletonGraph:
    """The :class:`SkeletonGraph` of a 2-D bool skeleton."""
    from skimage.graph import pixel_graph

    sk = np.asarray(sk, dtype=bool)
    graph, nodes = pixel_graph(sk, mask=sk, connectivity=2)
    graph = _junction_trees(graph.tocsr())
    coords = np.stack(np.unravel_index(nodes, sk.shape), axis=1)
    return SkeletonGraph(graph, coords, np.diff(graph.indptr))


def _junction_trees(graph: sparse.csr_matrix) -> sparse.csr_matrix:
    """Edges between junction pixels (degree >= 3) reduced to their minimum spanning tree."""
    degrees = np.diff(graph.indptr)
    junction = degrees >= 3
    coo = graph.tocoo()
    both = junction[coo.row] & junction[coo.col]
    among = sparse.csr_matrix((coo.data[both], (coo.row[both], coo.col[both])),
                              shape=graph.shape)
    mst = csgraph.minimum_spanning_tree(among)
    out = (graph - (among - (mst + mst.T))).tocsr()
    out.eliminate_zeros()
    return out


def chain_paths(g: SkeletonGraph) -> tuple[np.ndarray, np.ndarray]:
    """Every path between two stop nodes that passes through at least one degree-2 node, as
    (indptr, indices) over nodes in path order (stop, interior..., stop), like skan's
    ``paths``. Left out: paths straight from stop to stop (one edge) and isolated cycles
    (no stop), neither of which has a chord worth a tortuosity."""
    deg = g.degrees
    n = len(deg)
    inner = deg == 2
    coo = g.graph.tocoo()
    keep = inner[coo.row] & inner[coo.col]
    chain = sparse.csr_matrix((np.ones(int(keep.sum())), (coo.row[keep], coo.col[keep])),
                              shape=(n, n))
    n_comp, comp = csgraph.connected_components(chain, directed=False)
    chain_deg = np.diff(chain.indptr)
    # A chain's ends: inner nodes with < 2 inner neighbours; a cycle has none (left out).
    ends = np.flatnonzero(inner & (chain_deg < 2))
    if len(ends) == 0:
        return np.zeros(1, np.intp), np.zeros(0, np.intp)
    first_end = np.full(n_comp, n)
    np.minimum.at(first_end, comp[ends], ends)
    starts = first_end[first_end < n]
    # Unweighted distance of every chain node from its chain's start: one search from a
    # virtual root joined to every start.
    root = n
    links = sparse.csr_matrix((np.ones(len(starts)), (np.full(len(starts), root), starts)),
                              shape=(n + 1, n + 1))
    full = sparse.bmat([[chain, None], [None, sparse.csr_matrix((1, 1))]]).tocsr() + links
    dist = csgraph.shortest_path(full, unweighted=True, directed=False, indices=root)[:n]
    members = np.flatnonzero(inner & np.isfinite(dist))
    order = members[np.lexsort((dist[members], comp[members]))]
    cid = comp[order]
    bounds = np.flatnonzero(np.r_[True, cid[1:] != cid[:-1], True])
    n_chains = len(bounds) - 1
    # The stop nodes beside each chain's ends (a one-node chain has both beside it).
    first_stop, second_stop = _stop_neighbours(g.graph, inner)
    head, tail = order[bounds[:-1]], order[bounds[1:] - 1]
    single = bounds[1:] - bounds[:-1] == 1
    s0 = first_stop[head]
    s1 = np.where(single, np.where(second_stop[head] >= 0, second_stop[head], s0),
                  first_stop[tail])
    # Chain k's nodes shift by 2k + 1 (its own and the earlier chains' two stops).
    chain_of = np.repeat(np.arange(n_chains), np.diff(bounds))
    indices = np.empty(len(order) + 2 * n_chains, dtype=np.intp)
    indices[np.arange(len(order)) + 2 * chain_of + 1] = order
    indices[bounds[:-1] + 2 * np.arange(n_chains)] = s0
    indices[bounds[1:] + 2 * np.arange(n_chains) + 1] = s1
    indptr = (bounds + 2 * np.arange(n_chains + 1)).astype(np.intp)
    return indptr, indices


def _stop_neighbours(graph: sparse.csr_matrix, inner: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per node: its first and second stop neighbour (non-inner, in index order), -1 if
    none; defined for inner nodes."""
    coo = graph.tocoo()
    sel = inner[coo.row] & ~inner[coo.col]
    rows, cols = coo.row[sel], coo.col[sel]
    o = np.lexsort((cols, rows))
    rows, cols = rows[o], cols[o]
    first = np.full(len(inner), -1, dtype=np.intp)
    second = np.full(len(inner), -1, dtype=np.intp)
    uniq, start, count = np.unique(rows, return_index=True, return_counts=True)
    first[uniq] = cols[start]
    two = count > 1
    second[uniq[two]] = cols[start[two] + 1]
    return first, second
