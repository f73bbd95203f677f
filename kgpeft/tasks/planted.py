"""A toy task whose answer only one fact can give: for tests, notebooks and explanations.

Each subject ``e0 ... eN`` gets a colour drawn at random (``e7 color pink``) and up to two
places (``e7 near p3``, distractors); the question ``"the e7 is"`` asks for the colour. Every
question can only be answered by reading the colour fact: the tokenizer has no word for any
subject (each reads as ``[UNK]``), so the model sees the same question for all of them and
cannot memorise a subject's colour, and in each subject's one-hop subgraph the colour fact is
the only one naming the colour. A tiny causal LM (:meth:`PlantedFacts.model`) with a
``memory`` adapter learns to copy it in a few hundred steps on one CPU core, for any seed of
the task, the model and the batch order, so an explanation has a known right answer: the
colour fact.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from kgpeft.graph import KnowledgeGraph
from kgpeft.tasks.base import TaskExample

COLORS = ("red", "blue", "green", "gold", "pink")


@dataclass
class PlantedFacts:
    """The toy task: its KG, a word-level tokenizer over its words, and train/test questions."""

    kg: KnowledgeGraph
    tokenizer: object
    splits: dict[str, list[TaskExample]]

    def model(self, seed: int = 0, hidden_size: int = 32):
        """A fresh tiny Llama over the task's vocabulary (initialised wide enough to reach confident answers)."""
        from transformers import AutoModelForCausalLM, LlamaConfig

        torch.manual_seed(seed)
        config = LlamaConfig(
            hidden_size=hidden_size,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=2 * hidden_size,
            vocab_size=len(self.tokenizer),
            initializer_range=0.3,  # at the default 0.02 the tiny model's logits stay near uniform
            pad_token_id=self.tokenizer.pad_token_id,
            bos_token_id=None,
            eos_token_id=None,
        )
        return AutoModelForCausalLM.from_config(config).eval()


def planted_facts(num_subjects: int = 300, num_test: int = 50, num_places: int = 20, seed: int = 0) -> PlantedFacts:
    """Build the toy task: ``num_subjects`` subjects, the last ``num_test`` held out for testing."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    if not 0 < num_test < num_subjects:
        raise ValueError(f"`num_test` should lie in (0, {num_subjects}), got {num_test}.")
    rng = random.Random(seed)
    subjects = [f"e{i}" for i in range(num_subjects)]
    places = [f"p{i}" for i in range(num_places)]
    entities = [*subjects, *COLORS, *places]
    color = [rng.randrange(len(COLORS)) for _ in subjects]
    triples = [[i, 0, num_subjects + color[i]] for i in range(num_subjects)]
    for i in range(num_subjects):  # 0 to 2 places each: the model meets memories of 1 to 3 facts
        near = rng.sample(range(num_places), rng.randrange(3))
        triples += [[i, 1, num_subjects + len(COLORS) + p] for p in near]
    kg = KnowledgeGraph(entities, ["color", "near"], torch.tensor(triples).t(), labels=entities)
    # No subject is a word: with a token of its own, the model memorises the training subjects'
    # colours and answers some held-out subjects by a confident guess, not from the fact.
    words = ["[PAD]", "[UNK]", "the", "is", "color", "near", *COLORS, *places]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]")
    examples = [
        TaskExample(f"the {s} is", answer=COLORS[c], answer_entities=(COLORS[c],))
        for s, c in zip(subjects, color, strict=True)
    ]
    split = num_subjects - num_test
    return PlantedFacts(kg, tokenizer, {"train": examples[:split], "test": examples[split:]})
