"""Which facts drove an answer: four attribution methods over a KG-LoRA model's knowledge.

For each answer, every node of the retrieved subgraph and every fact the model read gets:

- **leave-one-out**: the answer's log-probability with the node or fact minus without it. A
  removed node takes its edges, its links and every fact naming it along (the next-ranked
  facts move up into the prompt and the memory, as they would have had the KG lacked it).
  Every removal of every example is one row of one batched scoring pass: one extra
  forward per node, no generation;
- **gradient x input**: the gradient of the answer's log-probability times what it flows
  from, summed: each memory slot's key and value in every layer (``memory``; a node gets its
  label's slots), or the node states of the graph encoder (``token``, ``cross``, ``prefix``);
- **attention**: the attention the positions that predict the answer put on the node, per
  layer and summed: in ``memory`` mode each slot's softmax weight times its head's gate
  opening, averaged over heads; in ``cross`` mode each knowledge projection's weight on the
  node. Other designs have no attention over nodes, and the field stays ``None``;
- **selection**: the fact scorer's probability of each fact (a node: summed over its facts),
  where a scorer chose the facts.

Attention is not evidence on its own: ``benchmarks/faithfulness.py`` measures how far the
top node of each method moves the answer when removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from kgpeft.data import KnowledgeCollator, KnowledgeDataset
from kgpeft.explain.explanation import Explanation, FactAttribution, NodeAttribution
from kgpeft.inference import first_line, generate_texts, target_log_likelihoods
from kgpeft.retrieval import fact_spans
from kgpeft.selection import fact_probabilities


@contextmanager
def recording(modules: Sequence[nn.Module]):
    """Inside the block, each module (``MemoryGate``, ``CrossFusion``) appends its attention weights to a list."""
    records: list[list[Tensor]] = [[] for _ in modules]
    for module, record in zip(modules, records, strict=True):
        module.record = record
    try:
        yield records
    finally:
        for module in modules:
            module.record = None


def explain(
    model,
    dataset: KnowledgeDataset,
    indices: Sequence[int] | None = None,
    *,
    answers: Sequence[str] | None = None,
    scorer: nn.Module | None = None,
    max_new_tokens: int = 16,
    batch_size: int = 32,
) -> list[Explanation]:
    """Explain ``model``'s answers to examples ``indices`` of ``dataset`` (all by default).

    Args:
        model (KGPeftModel): the adapter to explain, on a causal LM.
        dataset (KnowledgeDataset): the examples as the model reads them (``causal_lm``): links,
            subgraphs, fact ranking, facts in the prompt and in memory.
        indices: which examples. (default: all)
        answers: the answer to explain per example (e.g. the gold one); by default the model's
            greedy answer (its first line). (default: none)
        scorer (FactScorer, optional): the scorer that ranked the dataset's facts, for the
            ``selection`` column. (default: none)
        max_new_tokens (int): the longest generated answer. (default: ``16``)
        batch_size (int): rows per forward pass. (default: ``32``)
    """
    indices = list(range(len(dataset.examples))) if indices is None else list(indices)
    if answers is None:
        prompts = dataset.ablated([(i, None, ()) for i in indices])
        outputs = generate_texts(
            model, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, first_line_only=True
        )
        answers = [first_line(t) for t in outputs]
    elif len(answers) != len(indices):
        raise ValueError(f"`answers` has {len(answers)} entries for {len(indices)} examples.")
    answers = list(answers)
    candidates = [(dataset.graphs[i].n_id.tolist(), _facts_read(dataset, i)) for i in indices]
    rows, row_answers = [], []
    for i, answer, (nodes, facts) in zip(indices, answers, candidates, strict=True):
        rows += [(i, None, ()), *[(i, e, ()) for e in nodes], *[(i, None, (t,)) for t, _ in facts]]
        row_answers += [answer] * (1 + len(nodes) + len(facts))
    scores = target_log_likelihoods(model, dataset.ablated(rows, row_answers), batch_size=batch_size).tolist()
    signals = _gradient_and_attention(model, dataset.ablated([(i, None, ()) for i in indices], answers), batch_size)
    selection = [None] * len(indices)
    if scorer is not None:
        selection = fact_probabilities(scorer, dataset, dataset.tokenizer, indices)
    out, start = [], 0
    for k, i in enumerate(indices):
        nodes, facts = candidates[k]
        logp = scores[start : start + 1 + len(nodes) + len(facts)]
        start += len(logp)
        out.append(_assemble(model, dataset, i, answers[k], nodes, facts, logp, signals[k], selection[k]))
    return out


def _facts_read(dataset: KnowledgeDataset, index: int) -> list[tuple[int, str]]:
    """``(triple, read_as)`` of the facts the model reads (memory, prompt), else of every subgraph edge."""
    ranked = dataset.ranked_facts(index)
    memory, prompt = dataset.retrieval.memory_facts, dataset.retrieval.num_facts
    read = []
    for rank, triple in enumerate(ranked[: max(memory, prompt)]):
        ways = [w for w, n in (("memory", memory), ("prompt", prompt)) if rank < n]
        read.append((triple, "+".join(ways)))
    if read:
        return read
    return [(t, "graph") for t in dict.fromkeys(dataset.graphs[index].edge_id.tolist())]


def _fact_tokens(dataset: KnowledgeDataset, triple: int) -> list[str | None]:
    """Per token of the fact as memory holds it, ``"head"``, ``"tail"`` or ``None`` (relation, punctuation)."""
    text, spans = fact_spans(dataset.kg, triple, dataset.retrieval.fact_format)
    enc = dataset.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    roles = []
    for start, end in enc["offset_mapping"][: dataset.retrieval.max_fact_tokens]:
        role = None
        for field in ("head", "tail"):
            lo, hi = spans.get(field, (0, 0))
            if start < hi and end > lo:
                role = field
        roles.append(role)
    return roles


def _gradient_and_attention(model, data: KnowledgeDataset, batch_size: int) -> list[dict]:
    """Per row of ``data`` (answers as targets): per-slot or per-node gradient x input and attention."""
    config, adapter = model.active_config, model.active_adapter
    mode = config.knowledge_mode
    probes = list(model.memory_gates[adapter]) if mode == "memory" else []
    if mode == "cross":
        probes = list(model.fusions[adapter].values())
    pad = data.tokenizer.pad_token_id if data.tokenizer.pad_token_id is not None else 0
    collate = KnowledgeCollator(pad, "right")
    device = next(model.parameters()).device
    model.eval()
    out: list[dict] = []
    for lo in range(0, len(data), batch_size):
        batch = collate([data[j] for j in range(lo, min(lo + batch_size, len(data)))])
        knowledge = batch.pop("knowledge").to(device)
        labels = batch.pop("labels").to(device)
        inputs = {k: v.to(device) for k, v in batch.items()}
        knowledge.validate(model.kg.num_entities, *inputs["input_ids"].shape)
        nodes: list[Tensor] = []

        def leaf(module, args, output, nodes=nodes):  # the node states, as a leaf whose gradient we read
            nodes.append(output.detach().requires_grad_())
            return nodes[-1]

        handle = model.graph_encoders[adapter].register_forward_hook(leaf) if mode != "memory" else None
        try:
            with torch.enable_grad():
                state = model.encode_knowledge(knowledge)
                memory = state.memory
                if memory is not None:
                    memory.keys = [k.detach().float().requires_grad_() for k in memory.keys]
                    memory.values = [v.detach().float().requires_grad_() for v in memory.values]
                with recording(probes) as records, model.context.activate(state):
                    logits = model.peft_model(**inputs).logits[:, :-1].float()  # position t predicts t + 1
                targets = labels[:, 1:]
                answer = targets != -100  # (B, T - 1): the positions that predict the answer
                logp = logits.log_softmax(-1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]
                total = (logp * answer).sum()
                leaves = [*memory.keys, *memory.values] if memory is not None else nodes
                grads = torch.autograd.grad(total, leaves, allow_unused=True) if leaves else []
        finally:
            if handle is not None:
                handle.remove()
        weight = answer.to(logits.dtype)
        # per layer (B, M): the attention summed over the answer positions
        attention = [torch.einsum("btm,bt->bm", r[0][:, :-1].float(), weight) for r in records if r]
        rows = []
        if memory is not None:
            n = len(memory.keys)
            gxi = sum(
                (x.detach() * (g if g is not None else torch.zeros_like(x))).sum((-1, -2))
                for x, g in zip(leaves, grads, strict=True)
            )  # (B, M)
            length = knowledge.fact_ids.size(2)
            for b in range(labels.size(0)):
                rows.append(
                    {
                        "slots": length,
                        "gxi": gxi[b].tolist(),
                        "attention": [a[b].tolist() for a in attention] if attention else None,
                        "layers": n,
                    }
                )
        else:
            z, g = (nodes[0], grads[0]) if nodes else (None, None)
            per_node = (z.detach() * g).sum(-1) if z is not None and g is not None else None  # (N,)
            ptr = knowledge.graph.ptr.tolist()
            for b in range(labels.size(0)):
                count = ptr[b + 1] - ptr[b]
                rows.append(
                    {
                        "gxi": per_node[ptr[b] : ptr[b + 1]].tolist() if per_node is not None else [0.0] * count,
                        "attention": [a[b, :count].tolist() for a in attention] if attention else None,
                    }
                )
        out.extend(rows)
    return out


def _assemble(
    model,
    dataset: KnowledgeDataset,
    index: int,
    answer: str,
    nodes: list[int],
    facts: list[tuple[int, str]],
    logp: list[float],
    signals: dict,
    selection: dict[int, float] | None,
) -> Explanation:
    """Example ``index``'s :class:`Explanation` from its leave-one-out scores ``logp`` (full, per node,
    per fact), its gradient and attention ``signals`` and the scorer's ``selection``."""
    kg, mode = dataset.kg, model.active_config.knowledge_mode
    mentions = dataset.mentions[index]
    full, node_logp, fact_logp = logp[0], logp[1 : 1 + len(nodes)], logp[1 + len(nodes) :]
    node_gxi, fact_gxi, node_att, fact_att = _spread_signals(dataset, mode, nodes, facts, signals)
    has_attention = signals["attention"] is not None
    node_sel = _node_selection(kg, nodes, selection)
    seeds = {m.entity for m in mentions}
    node_rows = [
        NodeAttribution(
            leave_one_out=full - node_logp[k],
            gradient_x_input=node_gxi[e],
            attention=sum(node_att[e]) if has_attention else None,
            attention_per_layer=node_att[e] if has_attention else None,
            selection=node_sel[e] if node_sel is not None else None,
            entity=e,
            key=kg.entity_keys[e],
            label=kg.labels[e],
            linked=e in seeds,
        )
        for k, e in enumerate(nodes)
    ]
    fact_rows = []
    for k, (triple, way) in enumerate(facts):
        h, r, t = kg.triples[:, triple].tolist()
        in_memory = triple in fact_gxi
        fact_rows.append(
            FactAttribution(
                leave_one_out=full - fact_logp[k],
                gradient_x_input=fact_gxi[triple] if in_memory else None,
                attention=sum(fact_att[triple]) if in_memory and has_attention else None,
                attention_per_layer=fact_att[triple] if in_memory and has_attention else None,
                selection=selection.get(triple, 0.0) if selection is not None else None,
                triple=triple,
                head=h,
                relation=kg.relation_keys[r],
                tail=t,
                text=fact_spans(kg, triple, dataset.retrieval.fact_format)[0],
                read_as=way,
            )
        )
    linked, edges = _linked(dataset, index), _edges(dataset, index)
    note = None
    if not mentions:
        note = "no entity is linked in the text: the answer used no knowledge"
    elif not nodes:
        note = "the linked entities' subgraph is empty: the answer used no knowledge"
    return Explanation(dataset.examples[index].text, answer, full, mode, linked, edges, node_rows, fact_rows, note)


def _linked(dataset: KnowledgeDataset, index: int) -> list[dict]:
    """Example ``index``'s mentions: where each lies in the text and the entity it links to."""
    kg = dataset.kg
    return [
        {
            "surface": m.surface,
            "start": m.start,
            "end": m.end,
            "entity": m.entity,
            "key": kg.entity_keys[m.entity],
            "label": kg.labels[m.entity],
        }
        for m in dataset.mentions[index]
    ]


def _edges(dataset: KnowledgeDataset, index: int) -> list[tuple[int, str, int]]:
    """Example ``index``'s subgraph as ``(head, relation key, tail)``, each triple once."""
    kg, edges = dataset.kg, []
    for triple in dict.fromkeys(dataset.graphs[index].edge_id.tolist()):
        h, r, t = kg.triples[:, triple].tolist()
        edges.append((h, kg.relation_keys[r], t))
    return edges


def _spread_signals(
    dataset: KnowledgeDataset, mode: str, nodes: list[int], facts: list[tuple[int, str]], signals: dict
) -> tuple[dict[int, float], dict[int, float], dict[int, list[float]], dict[int, list[float]]]:
    """``(node_gxi, fact_gxi, node_att, fact_att)``: gradient x input and per-layer attention per node
    and per memory fact, from the memory slots (``memory``: a fact gets its slots, a node the slots
    of the tokens that spell it) or from the node rows (the other modes: no per-fact signals)."""
    kg = dataset.kg
    node_gxi = dict.fromkeys(nodes, 0.0)
    fact_gxi: dict[int, float] = {}
    layers = len(signals["attention"]) if signals["attention"] else 0
    node_att = {e: [0.0] * layers for e in nodes}
    fact_att: dict[int, list[float]] = {}
    if mode == "memory":
        length = signals["slots"]
        memory = [t for t, way in facts if "memory" in way]
        for f, triple in enumerate(memory):
            h, _, t = kg.triples[:, triple].tolist()
            slots = range(f * length, (f + 1) * length)
            roles = _fact_tokens(dataset, triple)
            fact_gxi[triple] = sum(signals["gxi"][s] for s in slots)
            fact_att[triple] = [sum(a[s] for s in slots) for a in signals["attention"] or []]
            for s, role in zip(slots, roles, strict=False):
                entity = h if role == "head" else t if role == "tail" else None
                if entity in node_gxi:
                    node_gxi[entity] += signals["gxi"][s]
                    for layer, a in enumerate(signals["attention"] or []):
                        node_att[entity][layer] += a[s]
    else:
        node_gxi = dict(zip(nodes, signals["gxi"], strict=True))
        for layer, a in enumerate(signals["attention"] or []):
            for entity, value in zip(nodes, a, strict=True):
                node_att[entity][layer] = value
    return node_gxi, fact_gxi, node_att, fact_att


def _node_selection(kg, nodes: list[int], selection: dict[int, float] | None) -> dict[int, float] | None:
    """Per node, the scorer's probability summed over the facts naming it; None without a scorer."""
    if selection is None:
        return None
    node_sel = dict.fromkeys(nodes, 0.0)
    for triple, p in selection.items():
        h, _, t = kg.triples[:, triple].tolist()
        for entity in {h, t} & node_sel.keys():
            node_sel[entity] += p
    return node_sel
