"""Node features: what the graph encoder starts from for each entity of a subgraph.

Every initialiser maps global entity ids ``n_id (N,)`` (as in the ``n_id`` of a
:class:`~kgpeft.retrieval.SubgraphRetriever` batch) to features ``(N, out_channels)``.
They differ in what a checkpoint must hold per entity:

- :class:`TextNodeFeatures` (the default): nothing; features come from the entity's
  label through the base model's frozen input embeddings, so entities never seen in
  training get features too.
- :class:`KGENodeFeatures`: nothing while the pretrained vectors stay frozen; the
  caller passes the same table again after loading.
- :class:`LearnedNodeFeatures`: a full ``(num_entities, out_channels)`` table.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgpeft.graph import KnowledgeGraph
from kgpeft.nn.label_tokens import label_token_ids


class NodeFeatures(nn.Module):
    """The interface of the node-feature initialisers: ``forward(n_id (N,)) -> (N, out_channels)``.

    Args:
        num_entities (int): number of entities of the KG; valid ids are ``[0, num_entities)``.
        out_channels (int): size of each output feature.
    """

    def __init__(self, num_entities: int, out_channels: int) -> None:
        super().__init__()
        if num_entities < 0:
            raise ValueError(f"`num_entities` should be non-negative, got {num_entities}.")
        if out_channels < 1:
            raise ValueError(f"`out_channels` should be positive, got {out_channels}.")
        self.num_entities = num_entities
        self.out_channels = out_channels

    def _check_ids(self, n_id: Tensor) -> None:
        if n_id.dim() != 1 or n_id.is_floating_point() or n_id.is_complex() or n_id.dtype == torch.bool:
            raise ValueError(
                f"`n_id` should be a 1-D tensor of entity ids, got {n_id.dtype} of shape {tuple(n_id.shape)}."
            )
        if n_id.numel() > 0:
            lo, hi = torch.aminmax(n_id)
            if lo < 0 or hi >= self.num_entities:
                raise ValueError(
                    f"`n_id` holds entity ids in [{int(lo)}, {int(hi)}], "
                    f"but there are only {self.num_entities} entities."
                )


class TextNodeFeatures(NodeFeatures):
    r"""Entity features from label text, read through a language model's frozen input
    embeddings, in the spirit of the frozen-LM node-text features of `"G-Retriever:
    Retrieval-Augmented Generation for Textual Graph Understanding and Question Answering"
    <https://arxiv.org/abs/2402.07630>`_: an entity's feature is a projection of the mean
    embedding of its label's tokens,

    .. math::
        \mathbf{x}_v = \mathbf{W} \frac{1}{|T_v|} \sum_{t \in T_v} \mathbf{E}_t ,

    where :math:`T_v` are the tokens of the label of entity :math:`v`,
    :math:`\mathbf{E}` the frozen embedding matrix and :math:`\mathbf{W}` a trainable
    projection without bias. An empty label (:math:`T_v = \emptyset`) gives exactly zero.

    All labels are tokenised once, here, in batches (about 2 s for WordNet's 117,659 labels
    with a fast BERT tokenizer on 2 CPU cores), without special tokens, and for KGs of
    50,000 entities or more cached on disk (:func:`~kgpeft.nn.label_tokens.label_token_ids`).
    The token ids are kept as a CSR cache (``token_ids`` and ``token_ptr``, non-persistent
    buffers that follow the module across devices but are not saved), and
    :meth:`forward` pools only the requested entities' tokens with
    :func:`~torch.nn.functional.embedding_bag`. No per-entity embedding table exists:
    memory beyond the token-id cache does not grow with the KG, and the
    checkpoint holds only :math:`\mathbf{W}`.

    .. note::
        The embedding belongs to the base model, not to this module: it is held by a
        plain reference outside the module tree, so :meth:`parameters` does not list it
        (an optimiser or a trainable-parameter count never sees it), :meth:`state_dict`
        does not save it (a SmolLM2-sized vocabulary would add about 100 MB per
        checkpoint) and :meth:`to` does not move it (it stays wherever the base model
        puts it; token ids move to its device and pooled features back). Its weight is
        detached at use, so no gradient reaches it even if the base model trains it.

    Args:
        kg (KnowledgeGraph): the graph whose :attr:`~KnowledgeGraph.labels` are read.
        tokenizer: the base model's tokenizer (a Hugging Face tokenizer; fast ones are
            much quicker here).
        embedding (torch.nn.Embedding): the base model's input embedding, e.g.
            ``model.get_input_embeddings()``.
        out_channels (int): size of each output feature.

    Shapes:
        - **input:** entity ids :math:`(N)`
        - **output:** node features :math:`(N, F_{out})`
    """

    token_ids: Tensor
    token_ptr: Tensor

    def __init__(self, kg: KnowledgeGraph, tokenizer: Any, embedding: nn.Embedding, out_channels: int) -> None:
        super().__init__(kg.num_entities, out_channels)
        if not isinstance(embedding, nn.Embedding):
            raise TypeError(f"`embedding` should be a torch.nn.Embedding, got {type(embedding).__name__}.")
        self._embedding = (embedding,)  # a tuple, so that nn.Module does not register it (see the note above)
        self.in_channels = embedding.embedding_dim

        token_ids, token_ptr = label_token_ids(kg, tokenizer)
        if token_ids.numel() > 0 and int(token_ids.max()) >= embedding.num_embeddings:
            raise ValueError(
                f"The tokenizer gave token id {int(token_ids.max())}, but `embedding` has only "
                f"{embedding.num_embeddings} rows; are they from the same model?"
            )
        self.register_buffer("token_ids", token_ids, persistent=False)
        self.register_buffer("token_ptr", token_ptr, persistent=False)
        # No bias: the encoder adds its own, and an entity without label text stays exactly zero.
        self.proj = nn.Linear(self.in_channels, out_channels, bias=False)
        self.reset_parameters()

    @property
    def embedding(self) -> nn.Embedding:
        """The frozen input embedding the labels are read through (not a submodule)."""
        return self._embedding[0]

    def reset_parameters(self) -> None:
        self.proj.reset_parameters()

    def forward(self, n_id: Tensor) -> Tensor:
        self._check_ids(n_id)
        n_id = n_id.to(self.token_ptr.device)
        start = self.token_ptr[n_id]  # (N,)
        length = self.token_ptr[n_id + 1] - start  # (N,)
        offsets = torch.cumsum(length, 0) - length  # (N,) where each entity's tokens start in `ids`
        total = int(length.sum())
        # Token j of the gathered list sits at start[bag] + (j - offsets[bag]) in the cache.
        pos = torch.repeat_interleave(start - offsets, length, output_size=total)
        pos += torch.arange(total, device=pos.device)
        ids = self.token_ids[pos].long()  # (total,)
        weight = self.embedding.weight.detach()
        pooled = F.embedding_bag(ids.to(weight.device), weight, offsets.to(weight.device), mode="mean")  # (N, d_emb)
        return self.proj(pooled.to(self.proj.weight))  # (N, out_channels)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channels}, {self.out_channels}, num_entities={self.num_entities})"


class KGENodeFeatures(NodeFeatures):
    r"""Entity features from pretrained knowledge-graph embeddings (e.g. TransE, `"Translating
    Embeddings for Modeling Multi-Relational Data" <https://proceedings.neurips.cc/paper/2013/file/
    1cecc7a77928ca8133fa24680a88d2f9-Paper.pdf>`_), followed by a trainable projection
    without bias:

    .. math::
        \mathbf{x}_v = \mathbf{W} \mathbf{e}_v .

    With ``freeze=True`` the table is a non-persistent buffer: it follows the module
    across devices, gets no gradient, and is not saved, so a checkpoint holds only
    :math:`\mathbf{W}` whatever the size of the KG; pass the same table (the one the KGE
    was trained to, same KG fingerprint) when loading. With ``freeze=False`` it is a
    parameter, fine-tuned and saved, and the checkpoint grows with the KG.
    Complex vectors (ComplEx, RotatE) are split into real and imaginary parts, so their
    feature size is twice the embedding dimension. :meth:`reset_parameters` resets the
    projection only; the table is pretrained, not initialised.

    Args:
        embeddings (Tensor): the pretrained vectors, ``(num_entities, d)``, real or complex.
        out_channels (int): size of each output feature.
        freeze (bool, optional): keep the vectors fixed (and out of the checkpoint).
            (default: :obj:`True`)

    Shapes:
        - **input:** entity ids :math:`(N)`
        - **output:** node features :math:`(N, F_{out})`
    """

    def __init__(self, embeddings: Tensor, out_channels: int, freeze: bool = True) -> None:
        embeddings = torch.as_tensor(embeddings).detach()
        if embeddings.dim() != 2:
            raise ValueError(f"`embeddings` should have shape (num_entities, d), got {tuple(embeddings.shape)}.")
        if embeddings.is_complex():
            embeddings = torch.view_as_real(embeddings).flatten(1)  # (num_entities, 2 d)
        if not embeddings.is_floating_point():
            raise ValueError(f"`embeddings` should hold real or complex numbers, got {embeddings.dtype}.")
        super().__init__(embeddings.size(0), out_channels)
        self.in_channels = embeddings.size(1)
        self.freeze = freeze
        if freeze:
            self.register_buffer("embeddings", embeddings, persistent=False)
        else:
            # A copy, so that training does not overwrite the caller's pretrained table.
            self.embeddings = nn.Parameter(embeddings.clone())
        self.proj = nn.Linear(self.in_channels, out_channels, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.proj.reset_parameters()

    def forward(self, n_id: Tensor) -> Tensor:
        self._check_ids(n_id)
        e = self.embeddings[n_id.to(self.embeddings.device)]  # (N, d)
        return self.proj(e.to(self.proj.weight))  # (N, out_channels)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
            f"num_entities={self.num_entities}, freeze={self.freeze})"
        )


class LearnedNodeFeatures(NodeFeatures):
    r"""A trainable feature vector per entity, as in the featureless R-GCN of
    `"Modeling Relational Data with Graph Convolutional Networks"
    <https://arxiv.org/abs/1703.06103>`_:

    .. math::
        \mathbf{x}_v = \mathbf{E}_v .

    The table is a parameter, so the checkpoint grows with the KG
    (``num_entities * out_channels`` numbers), it only fits a KG with the same
    fingerprint, and entities unseen in training keep their random initial vectors.
    Prefer :class:`TextNodeFeatures` unless entities have no meaningful labels.

    Args:
        num_entities (int): number of entities of the KG.
        out_channels (int): size of each output feature.

    Shapes:
        - **input:** entity ids :math:`(N)`
        - **output:** node features :math:`(N, F_{out})`
    """

    def __init__(self, num_entities: int, out_channels: int) -> None:
        super().__init__(num_entities, out_channels)
        self.embedding = nn.Embedding(num_entities, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.embedding.reset_parameters()

    def forward(self, n_id: Tensor) -> Tensor:
        self._check_ids(n_id)
        return self.embedding(n_id.to(self.embedding.weight.device))  # (N, out_channels)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.num_entities}, {self.out_channels})"
