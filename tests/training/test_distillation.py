"""Knowledge distillation from a KGE teacher: the loss, the teacher's soft targets, the data path, the model."""

import math

import pytest
import torch
from tiny_models import ARCHITECTURES, WORDS, build_model, tiny_tokenizer

from kgpeft import KnowledgeGraph
from kgpeft.data import KnowledgeCollator, KnowledgeDataset
from kgpeft.kge import EmbeddingFileError, KGEConfig, KGEmbeddings
from kgpeft.kge import build_model as build_kge
from kgpeft.kge.distillation import (
    DistillationConfig,
    DistillationError,
    KGETeacher,
    SoftTargets,
    distillation_loss,
)
from kgpeft.model import get_kg_peft_model
from kgpeft.pipeline import JobConfig, JobConfigError
from kgpeft.retrieval import SubgraphRetriever
from kgpeft.tasks import TaskExample
from kgpeft.training.loss import batch_loss
from kgpeft.tuners import KGLoraConfig

ID = {w: i for i, w in enumerate(WORDS)}
LLAMA = next(a for a in ARCHITECTURES if a[0] == "llama")


def _embeddings(kg: KnowledgeGraph, seed: int = 0) -> KGEmbeddings:
    torch.manual_seed(seed)
    model = build_kge("distmult", kg.num_entities, kg.num_relations, 8)
    return KGEmbeddings(model, KGEConfig(model="distmult", hidden_channels=8), kg.num_relations, kg.fingerprint)


def test_loss_is_temperature_scaled_kl_by_hand():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 10)
    tokens = torch.tensor([[4, 7, 2], [5, 1, -1]])
    teacher = torch.tensor([[2.0, 0.5, -1.0], [0.3, 1.2, 0.0]])
    t = 2.0
    targets = SoftTargets(torch.tensor([1, 2]), tokens, teacher, temperature=t, weight=1.0)
    expected = []
    for row, (pos, n) in enumerate([(1, 3), (2, 2)]):
        p = torch.softmax(teacher[row, :n] / t, 0)
        log_q = torch.log_softmax(logits[row, pos, tokens[row, :n]] / t, 0)
        expected.append((p * (p.log() - log_q)).sum())
    assert distillation_loss(logits, targets).item() == pytest.approx((torch.stack(expected).mean() * t * t).item())


def test_candidates_sharing_a_first_token_are_merged():
    logits = torch.randn(1, 1, 10)
    teacher = torch.tensor([[1.0, 2.0, 0.0]])
    merged = SoftTargets(torch.tensor([0]), torch.tensor([[3, 5, 3]]), teacher, temperature=1.0)
    p = torch.softmax(teacher[0], 0)
    p_merged = torch.stack([p[0] + p[2], p[1]])  # token 3 gets candidates 0 and 2
    log_q = torch.log_softmax(logits[0, 0, [3, 5]], 0)
    expected = (p_merged * (p_merged.log() - log_q)).sum()
    assert distillation_loss(logits, merged).item() == pytest.approx(expected.item(), rel=1e-5)
    # the student's best answer is the teacher's: the loss is minimal (zero) at q = p_merged
    ideal = torch.full((1, 1, 10), -30.0)
    ideal[0, 0, [3, 5]] = p_merged.log()
    assert distillation_loss(ideal, merged).item() == pytest.approx(0.0, abs=1e-6)


def test_teacher_top_k_includes_gold_and_never_the_subject(kg):
    emb = _embeddings(kg)
    teacher = KGETeacher(emb, kg, num_candidates=3)
    example = TaskExample("the dog", answer="pet", entity="dog", relations=("is_a",), answer_entities=("pet",))
    [(ids, scores)] = teacher.soft_targets([example])
    assert ids[0] == kg.entity_id("pet") and len(ids) == 3 and kg.entity_id("dog") not in ids
    expected = emb.score_tails(torch.tensor([0]), torch.tensor([0]))[0, ids]
    assert torch.allclose(torch.tensor(scores), expected, atol=1e-6)
    # the others are the teacher's best remaining entities
    all_scores = emb.score_tails(torch.tensor([0]), torch.tensor([0]))[0]
    all_scores[[0, kg.entity_id("pet")]] = -math.inf
    assert set(ids[1:]) == set(all_scores.topk(2).indices.tolist())


def test_teacher_over_choices_with_two_relations_uses_logsumexp(kg):
    emb = _embeddings(kg)
    example = TaskExample(
        "the dog", answer="pet", entity="dog", choices=("river", "pet"), choice_entities=("river", "pet"), label=1
    )
    teacher = KGETeacher(emb, kg, candidates="choices", relations=["is_a", "near"])
    [(ids, scores)] = teacher.soft_targets([example])
    assert ids == [5, 3]
    per_relation = emb.score_tails(torch.tensor([0, 0]), torch.tensor([0, 1]), torch.tensor(ids))
    assert torch.allclose(torch.tensor(scores), torch.logsumexp(per_relation, 0), atol=1e-6)


def test_teacher_errors_name_the_row_and_the_kg(kg):
    emb = _embeddings(kg)
    with pytest.raises(DistillationError, match="Row 0: the teacher needs the example's `entity` and `relations`"):
        KGETeacher(emb, kg).soft_targets([TaskExample("the dog", answer="pet", entity="dog")])
    with pytest.raises(DistillationError, match="Row 0: distilling over choices needs `choice_entities`"):
        KGETeacher(emb, kg, candidates="choices", relations=["is_a"]).soft_targets(
            [TaskExample("the dog", answer="pet", entity="dog", choices=("pet", "river"))]
        )
    other = KnowledgeGraph(kg.entity_keys, ["is_a", "near", "owns"], kg.triples)
    with pytest.raises(EmbeddingFileError, match="fingerprint"):
        KGETeacher(emb, other)


def _teacher_dataset(kg, tokenizer, teacher, examples):
    retriever = SubgraphRetriever(kg, num_neighbors=[-1], max_nodes=8)
    return KnowledgeDataset(examples, tokenizer, kg, retriever=retriever, teacher=teacher)


def test_dataset_and_collator_carry_soft_targets_at_the_answer_position(kg):
    tokenizer = tiny_tokenizer()
    teacher = KGETeacher(_embeddings(kg), kg, num_candidates=3, temperature=3.0, weight=0.25)
    examples = [
        TaskExample("the dog", answer="pet", entity="dog", relations=("is_a",), answer_entities=("pet",)),
        TaskExample("a big bank", answer="river", entity="bank", relations=("near",), answer_entities=("river",)),
    ]
    ds = _teacher_dataset(kg, tokenizer, teacher, examples)
    batch = KnowledgeCollator(pad_token_id=0)([ds[0], ds[1]])
    soft = batch["distillation"]
    assert soft.temperature == 3.0 and soft.weight == 0.25 and soft.tokens.shape == (2, 3)
    # the gold candidate comes first, and its first token is the label the position predicts
    labels = batch["labels"]
    for row in range(2):
        assert labels[row, soft.position[row] + 1] == soft.tokens[row, 0]
    assert soft.tokens[0, 0] == ID["pet"] and soft.tokens[1, 0] == ID["river"]
    with pytest.raises(ValueError, match="needs `with_target=True`"):
        KnowledgeDataset(examples, tokenizer, kg, teacher=teacher, with_target=False)


def test_the_trainer_adds_the_weighted_distillation_loss(kg):
    tokenizer = tiny_tokenizer()
    teacher = KGETeacher(_embeddings(kg), kg, num_candidates=3, weight=0.25)
    examples = [TaskExample("the dog", answer="pet", entity="dog", relations=("is_a",), answer_entities=("pet",))]
    batch = KnowledgeCollator(pad_token_id=0)([_teacher_dataset(kg, tokenizer, teacher, examples)[0]])
    model = get_kg_peft_model(
        build_model(*LLAMA[1:]), KGLoraConfig(knowledge_mode="token", r=4, graph_channels=8), kg, tokenizer
    )
    soft = batch["distillation"]
    plain = model(**{k: v for k, v in batch.items() if k != "distillation"})
    loss = batch_loss(model, batch)
    kd = distillation_loss(plain.logits, soft)
    assert kd.item() > 0
    assert loss.item() == pytest.approx(plain.loss.item() + 0.25 * kd.item(), rel=1e-5)
    loss.backward()  # the KD term reaches the adapters
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)


def test_job_config_distillation_section(tmp_path, kg):
    path = tmp_path / "teacher.safetensors"
    _embeddings(kg).save(path)
    adapter = {"knowledge_mode": "token"}
    config = JobConfig.from_dict(
        {"model": "m", "adapter": adapter, "distillation": {"teacher": str(path), "weight": 0.3}}
    )
    dist = config.distillation
    assert isinstance(dist, DistillationConfig) and dist.weight == 0.3
    assert dist.build_teacher(kg, multiple_choice=True).candidates == "choices"
    with pytest.raises(JobConfigError, match="did you mean 'temperature'"):
        JobConfig.from_dict(
            {"model": "m", "adapter": adapter, "distillation": {"teacher": str(path), "temperture": 1.0}}
        )
    with pytest.raises(JobConfigError, match="'teacher'"):
        JobConfig.from_dict({"model": "m", "adapter": adapter, "distillation": {"weight": 1.0}})
