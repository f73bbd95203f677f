r"""KG embedding models: TransE, DistMult, ComplEx and RotatE.

Each model subclasses its :mod:`torch_geometric.nn.kge` counterpart (the embedding tables,
their initialisation and the signature ``forward(head_index, rel_type, tail_index)`` are
PyG's; two score functions differ, see below) and adds what training and evaluation at
scale need and PyG lacks:

- :meth:`KGEModel.score` over any broadcastable shapes, e.g. one positive and ``k``
  negatives per row in one call: ``score(h[:, None], r[:, None], t_neg)``;
- :meth:`KGEModel.score_tails` and :meth:`KGEModel.score_heads` against all entities (or a
  candidate set) in one call, with a matrix product for the bilinear models and
  ``torch.cdist`` for TransE, chunked so that a batch against WordNet's 117k entities fits
  in memory;
- :meth:`KGEModel.entity_embeddings`: one real vector per entity (real and imaginary parts
  concatenated for the complex models), for :class:`~kgpeft.nn.KGENodeFeatures`.

RotatE's distance follows the paper (a sum of per-dimension complex moduli) where PyG
takes the Euclidean norm of the whole complex vector; TransE normalises entities in L2
whatever the distance's norm, where PyG normalises them in ``p_norm``.

Score functions (higher is more plausible; ``∘`` the element-wise product):

=========  =====================================================================
TransE     :math:`-\|\mathbf{h} + \mathbf{r} - \mathbf{t}\|_p`, entity vectors L2-normalised
DistMult   :math:`\langle \mathbf{h}, \mathbf{r}, \mathbf{t} \rangle`
ComplEx    :math:`\mathrm{Re}\,\langle \mathbf{h}, \mathbf{r}, \bar{\mathbf{t}} \rangle`
RotatE     :math:`\gamma - \sum_i |h_i r_i - t_i|`, :math:`|r_i| = 1`
=========  =====================================================================
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch_geometric.nn.kge as pyg_kge
from torch import Tensor

# Largest number of floats a broadcast (B, N, d) score block may hold.
_BLOCK_ELEMENTS = 1 << 25


class KGEModel(pyg_kge.KGEModel):
    """Behaviour shared by kgpeft's KGE models (see the module docstring)."""

    #: number of real parameters per entity and dimension (2 for the complex models)
    parts: int = 1

    def forward(self, head_index: Tensor, rel_type: Tensor, tail_index: Tensor) -> Tensor:
        return self.score(head_index, rel_type, tail_index)

    # Subclasses define these three on embeddings.
    def _entities(self, index: Tensor | None) -> tuple[Tensor, ...]:
        """Entity embedding parts for ``index`` (``None``: all entities)."""
        weights = [self.node_emb.weight] + ([self.node_emb_im.weight] if self.parts == 2 else [])
        return tuple(w if index is None else w[index] for w in weights)

    def _relations(self, index: Tensor) -> tuple[Tensor, ...]:
        weights = [self.rel_emb.weight] + ([self.rel_emb_im.weight] if hasattr(self, "rel_emb_im") else [])
        return tuple(w[index] for w in weights)

    def _score(self, h: tuple[Tensor, ...], r: tuple[Tensor, ...], t: tuple[Tensor, ...]) -> Tensor:
        raise NotImplementedError

    def score(self, head_index: Tensor, rel_type: Tensor, tail_index: Tensor) -> Tensor:
        """Scores of triples; the three index tensors broadcast against each other."""
        return self._score(self._entities(head_index), self._relations(rel_type), self._entities(tail_index))

    def _score_corrupted(
        self, head_index: Tensor, rel_type: Tensor, tail_index: Tensor, random: Tensor, corrupt_head: Tensor
    ) -> Tensor:
        """``(B, K)`` scores of the ``(B,)`` triples with the head (where ``corrupt_head``) or else the tail
        replaced by the ``(B, K)`` entities ``random``: the negatives of negative sampling."""
        neg_h = torch.where(corrupt_head, random, head_index[:, None])
        neg_t = torch.where(corrupt_head, tail_index[:, None], random)
        return self.score(neg_h, rel_type[:, None], neg_t)

    def score_tails(self, head_index: Tensor, rel_type: Tensor, candidates: Tensor | None = None) -> Tensor:
        """``(B, N)`` scores of ``(head_index[i], rel_type[i], c)`` for every candidate ``c``.

        Args:
            head_index (Tensor): ``(B,)`` heads.
            rel_type (Tensor): ``(B,)`` relations.
            candidates (Tensor, optional): ``(N,)`` entity ids. (default: all entities)
        """
        return self._score_all(self._entities(head_index), self._relations(rel_type), candidates, tails=True)

    def score_heads(self, rel_type: Tensor, tail_index: Tensor, candidates: Tensor | None = None) -> Tensor:
        """``(B, N)`` scores of ``(c, rel_type[i], tail_index[i])`` for every candidate ``c``."""
        return self._score_all(self._entities(tail_index), self._relations(rel_type), candidates, tails=False)

    def _score_all(self, fixed: tuple[Tensor, ...], rel: tuple[Tensor, ...], candidates: Tensor | None, tails: bool):
        # Generic path: broadcast (B, 1, d) against (1, n, d) in blocks of candidates.
        ents = self._entities(candidates)
        b, n, d = fixed[0].size(0), ents[0].size(0), ents[0].size(-1)
        step = max(1, _BLOCK_ELEMENTS // max(1, b * d * self.parts))
        fixed, rel = tuple(x[:, None] for x in fixed), tuple(x[:, None] for x in rel)
        out = []
        for start in range(0, n, step):
            block = tuple(e[None, start : start + step] for e in ents)
            out.append(self._score(fixed, rel, block) if tails else self._score(block, rel, fixed))
        return torch.cat(out, dim=1) if out else fixed[0].new_zeros(b, 0)

    def entity_embeddings(self) -> Tensor:
        """``(num_nodes, parts * hidden_channels)`` entity vectors, detached."""
        return torch.cat(self._entities(None), dim=-1).detach()

    def regularizer(self, entity_index: Tensor, rel_type: Tensor, kind: str = "n3") -> Tensor:
        """The ``"n3"`` (Lacroix et al., 2018) or ``"l2"`` penalty of the embeddings a batch uses.

        Summed over the given entities and relations, divided by the number of relations (the batch size).
        """
        p = {"n3": 3, "l2": 2}[kind]
        terms = []
        for parts in (self._entities(entity_index), self._relations(rel_type)):
            if len(parts) == 2 and p == 3:  # N3 takes the modulus of the complex numbers
                terms.append(torch.sqrt(parts[0] ** 2 + parts[1] ** 2 + 1e-12).pow(3).sum())
            else:
                terms.extend(x.abs().pow(p).sum() for x in parts)
        return torch.stack(terms).sum() / max(rel_type.numel(), 1)

    def __repr__(self) -> str:
        sizes = f"num_relations={self.num_relations}, hidden_channels={self.hidden_channels}"
        return f"{type(self).__name__}({self.num_nodes}, {sizes})"


class _Bilinear:
    """Negatives of the bilinear models, whose score is a dot product of a query with the candidate entity."""

    def _queries(self, h, r, t) -> tuple[Tensor, Tensor]:
        """``(B, parts * d)`` queries whose dot product with an entity vector scores it as the tail, as the head."""
        raise NotImplementedError

    def _score_corrupted(self, head_index, rel_type, tail_index, random, corrupt_head) -> Tensor:
        # One gather of the random entities and one batched matrix product for both sides, instead of
        # gathering (B, K, d) heads and tails and multiplying them element-wise: the same scores, faster.
        queries = self._queries(self._entities(head_index), self._relations(rel_type), self._entities(tail_index))
        candidates = self._entities(random)
        candidates = candidates[0] if len(candidates) == 1 else torch.cat(candidates, dim=-1)  # (B, K, parts * d)
        scores = torch.bmm(candidates, torch.stack(queries, dim=2))  # (B, K, 2)
        return torch.where(corrupt_head, scores[..., 1], scores[..., 0])


class TransE(KGEModel, pyg_kge.TransE):
    r"""TransE (Bordes et al., 2013): :math:`-\|\mathbf{h} + \mathbf{r} - \mathbf{t}\|_p`.

    Entity vectors are L2-normalised before scoring (PyG normalises them in the distance's own
    ``p_norm``, so with ``p_norm=1`` the two differ).

    Args:
        num_nodes (int): number of entities.
        num_relations (int): number of relations.
        hidden_channels (int): embedding size.
        margin (float): margin of PyG's ranking loss. (default: ``1.0``)
        p_norm (float): the norm of the distance. (default: ``1.0``)
    """

    def __init__(
        self, num_nodes: int, num_relations: int, hidden_channels: int, margin: float = 1.0, p_norm: float = 1.0
    ) -> None:
        pyg_kge.TransE.__init__(self, num_nodes, num_relations, hidden_channels, margin=margin, p_norm=p_norm)

    def _entities(self, index: Tensor | None) -> tuple[Tensor, ...]:
        w = self.node_emb.weight if index is None else self.node_emb(index)
        return (F.normalize(w, p=2.0, dim=-1),)

    def _score(self, h, r, t) -> Tensor:
        return -torch.linalg.vector_norm(h[0] + r[0] - t[0], ord=self.p_norm, dim=-1)

    def _score_all(self, fixed, rel, candidates, tails):
        query = fixed[0] + rel[0] if tails else fixed[0] - rel[0]  # t ≈ h + r, h ≈ t - r
        return -torch.cdist(query, self._entities(candidates)[0], p=self.p_norm)


class DistMult(_Bilinear, KGEModel, pyg_kge.DistMult):
    r"""DistMult (Yang et al., 2015): :math:`\sum_i h_i r_i t_i`.

    Args:
        num_nodes (int): number of entities.
        num_relations (int): number of relations.
        hidden_channels (int): embedding size.
        margin (float): margin of PyG's ranking loss. (default: ``1.0``)
    """

    def __init__(self, num_nodes: int, num_relations: int, hidden_channels: int, margin: float = 1.0) -> None:
        pyg_kge.DistMult.__init__(self, num_nodes, num_relations, hidden_channels, margin=margin)

    def _score(self, h, r, t) -> Tensor:
        return (h[0] * r[0] * t[0]).sum(dim=-1)

    def _score_all(self, fixed, rel, candidates, tails):
        return (fixed[0] * rel[0]) @ self._entities(candidates)[0].t()

    def _queries(self, h, r, t):
        return h[0] * r[0], r[0] * t[0]


class ComplEx(_Bilinear, KGEModel, pyg_kge.ComplEx):
    r"""ComplEx (Trouillon et al., 2016): :math:`\mathrm{Re}\sum_i h_i r_i \bar{t}_i`.

    Args:
        num_nodes (int): number of entities.
        num_relations (int): number of relations.
        hidden_channels (int): complex dimensions (``2 * hidden_channels`` reals per vector).
    """

    parts = 2

    def __init__(self, num_nodes: int, num_relations: int, hidden_channels: int) -> None:
        pyg_kge.ComplEx.__init__(self, num_nodes, num_relations, hidden_channels)

    def _score(self, h, r, t) -> Tensor:
        (h_re, h_im), (r_re, r_im), (t_re, t_im) = h, r, t
        hr_re, hr_im = h_re * r_re - h_im * r_im, h_re * r_im + h_im * r_re
        return (hr_re * t_re + hr_im * t_im).sum(dim=-1)

    def _score_all(self, fixed, rel, candidates, tails):
        (a_re, a_im), (r_re, r_im) = fixed, rel
        e_re, e_im = self._entities(candidates)
        if tails:  # Re(h r conj(t)) = Re(h r)·Re(t) + Im(h r)·Im(t)
            q_re, q_im = a_re * r_re - a_im * r_im, a_re * r_im + a_im * r_re
            return q_re @ e_re.t() + q_im @ e_im.t()
        # Re(h · (r conj(t))) = Re(h)·Re(r conj t) - Im(h)·Im(r conj t)
        q_re, q_im = r_re * a_re + r_im * a_im, r_im * a_re - r_re * a_im
        return q_re @ e_re.t() - q_im @ e_im.t()

    def _queries(self, h, r, t):
        (h_re, h_im), (r_re, r_im), (t_re, t_im) = h, r, t
        tail = torch.cat([h_re * r_re - h_im * r_im, h_re * r_im + h_im * r_re], dim=-1)
        head = torch.cat([r_re * t_re + r_im * t_im, r_re * t_im - r_im * t_re], dim=-1)
        return tail, head


class RotatE(KGEModel, pyg_kge.RotatE):
    r"""RotatE (Sun et al., 2019): :math:`\gamma - \sum_i |h_i r_i - t_i|` with :math:`r_i = e^{i\theta_i}`.

    Args:
        num_nodes (int): number of entities.
        num_relations (int): number of relations.
        hidden_channels (int): complex dimensions.
        margin (float): :math:`\gamma`. (default: ``1.0``)
    """

    parts = 2

    def __init__(self, num_nodes: int, num_relations: int, hidden_channels: int, margin: float = 1.0) -> None:
        pyg_kge.RotatE.__init__(self, num_nodes, num_relations, hidden_channels, margin=margin)

    def _relations(self, index: Tensor) -> tuple[Tensor, ...]:
        theta = self.rel_emb(index)
        return torch.cos(theta), torch.sin(theta)

    def _score(self, h, r, t) -> Tensor:
        (h_re, h_im), (r_re, r_im), (t_re, t_im) = h, r, t
        d_re = h_re * r_re - h_im * r_im - t_re
        d_im = h_re * r_im + h_im * r_re - t_im
        return self.margin - torch.sqrt(d_re**2 + d_im**2 + 1e-12).sum(dim=-1)

    def _score_all(self, fixed, rel, candidates, tails):
        if not tails:  # h ≈ t ∘ conj(r): rotate the tail back, then compare like tails
            (t_re, t_im), (r_re, r_im) = fixed, rel
            fixed = (t_re * r_re + t_im * r_im, t_im * r_re - t_re * r_im)
        else:  # h ∘ r, then compare with the candidate tails
            (h_re, h_im), (r_re, r_im) = fixed, rel
            fixed = (h_re * r_re - h_im * r_im, h_re * r_im + h_im * r_re)
        q_re, q_im = fixed
        one = (torch.ones_like(q_re), torch.zeros_like(q_re))
        return super()._score_all((q_re, q_im), one, candidates, tails=True)


MODELS: dict[str, type[KGEModel]] = {"transe": TransE, "distmult": DistMult, "complex": ComplEx, "rotate": RotatE}


def build_model(name: str, num_nodes: int, num_relations: int, hidden_channels: int, **kwargs) -> KGEModel:
    """A model by (case-insensitive) name: ``"transe"``, ``"distmult"``, ``"complex"`` or ``"rotate"``."""
    try:
        cls = MODELS[name.lower()]
    except KeyError:
        raise ValueError(f"Unknown KGE model {name!r}; choose one of {', '.join(MODELS)}.") from None
    return cls(num_nodes, num_relations, hidden_channels, **kwargs)
