"""KG-LoRA behaviour beyond the architecture suite: adapters, merging, checkpoints, bad input."""

import json
import os
import re
import shutil
import stat
from pathlib import Path

import pytest
import torch
from tiny_models import ARCHITECTURES, build_model, make_inputs, make_knowledge
from transformers import AutoModelForCausalLM, CodeGenConfig, GPT2Config, XGLMConfig

from kgpeft import KnowledgeGraph
from kgpeft.errors import OutputPathError
from kgpeft.model import CheckpointError, KGPeftModel, get_kg_peft_model
from kgpeft.tuners import (
    ATTENTION_TARGET_MODULES,
    KGLoraConfig,
    KnowledgeBatch,
    KnowledgeError,
    TargetModulesError,
    resolve_target_modules,
)

LLAMA = ARCHITECTURES[1]


def _llama(kg, tokenizer, **config):
    _, model_config, auto = LLAMA
    config = {"r": 4, "graph_channels": 16, "knowledge_mode": "token", **config}
    return get_kg_peft_model(build_model(model_config, auto), KGLoraConfig(**config), kg, tokenizer=tokenizer)


def _knowledge(kg):
    tokens = torch.full((2, 6), -1)
    tokens[0, 1], tokens[1, 2] = 0, 4
    return make_knowledge(kg, [[0], [4]], tokens)


def _perturb(model):
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)


def test_default_targets_are_attention_projections(kg, tokenizer):
    model = _llama(kg, tokenizer)
    assert model.target_modules["default"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    adapted = {n.rsplit(".", 1)[-1] for n in model.fusions["default"]}
    assert {n.split("__")[-1] for n in adapted} == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert len(model.fusions["default"]) == 2 * 4  # 2 layers x q, k, v, o


def test_unknown_architecture_targets_are_discovered():
    class Attention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.wq, self.wo = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = Attention()
            self.mlp = torch.nn.Linear(8, 8)

    assert resolve_target_modules(Net(), None) == ["attn.wq", "attn.wo"]
    assert resolve_target_modules(Net(), ["mlp"]) == ["mlp"], "explicit targets win"
    with pytest.raises(
        TargetModulesError,
        match=r"matches no linear module of Net\. Its linear modules include: attn\.wo, attn\.wq, mlp\.",
    ):
        resolve_target_modules(Net(), ["q_proj"])


def test_trainable_parameters(kg, tokenizer, capsys):
    model = _llama(kg, tokenizer)
    trainable, total = model.get_nb_trainable_parameters()
    expected = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n or not n.startswith("peft_model."))
    assert trainable == expected and 0 < trainable < total
    model.print_trainable_parameters()
    assert f"trainable params: {trainable:,}" in capsys.readouterr().out


def test_missing_and_bad_knowledge_are_named(kg, tokenizer):
    model = _llama(kg, tokenizer)
    inputs = make_inputs()
    with pytest.raises(KnowledgeError, match="pass `knowledge=`"):
        model(**inputs)
    k = _knowledge(kg)
    n = k.graph.n_id.numel()
    out_of_range = k.token_node_index.masked_fill(k.token_node_index == 0, 100)
    with pytest.raises(KnowledgeError, match=rf"values should lie in \[-1, {n}\).*got \[-1, 100\]"):
        model(**inputs, knowledge=KnowledgeBatch(k.graph, out_of_range))
    with pytest.raises(KnowledgeError, match="batch size 1 but the knowledge has 2"):
        model(input_ids=inputs["input_ids"][:1], knowledge=k)
    with pytest.raises(KnowledgeError, match="6 tokens per row but `token_node_index` has 4"):
        model(**inputs, knowledge=KnowledgeBatch(k.graph, k.token_node_index[:, :4]))
    swapped = k.token_node_index.flip(0)
    with pytest.raises(KnowledgeError, match="another sample's subgraph"):
        model(**inputs, knowledge=KnowledgeBatch(k.graph, swapped))
    with model.disable_adapter():
        model(**inputs)  # the base model alone needs no knowledge
    assert model.context.state is None


def test_context_is_cleared_when_forward_raises(kg, tokenizer):
    model = _llama(kg, tokenizer)
    with pytest.raises(IndexError):
        model(input_ids=torch.full((2, 6), 10_000), knowledge=_knowledge(kg))
    assert model.context.state is None


def test_disable_adapter_gives_base_output(kg, tokenizer):
    model = _llama(kg, tokenizer)
    _perturb(model)
    inputs = make_inputs()
    reference = build_model(*LLAMA[1:])
    with model.disable_adapter():
        assert torch.equal(model(**inputs).logits, reference(**inputs).logits)


def test_several_adapters(kg, tokenizer, tmp_path):
    model = _llama(kg, tokenizer)
    model.add_adapter("cross", KGLoraConfig(r=4, graph_channels=16, knowledge_mode="cross"))
    _perturb(model)
    model.set_adapter("cross")
    _perturb(model)
    assert model.active_adapter == "cross"
    assert all(not p.requires_grad for p in model.graph_encoders["default"].parameters())
    model.eval()
    inputs, k = make_inputs(), _knowledge(kg)
    out_cross = model(**inputs, knowledge=k).logits
    model.set_adapter("default")
    out_token = model(**inputs, knowledge=k).logits
    assert (out_cross - out_token).abs().max() > 1e-4
    model.save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "cross" / "adapter_model.safetensors").is_file()
    loaded = KGPeftModel.from_pretrained(build_model(*LLAMA[1:]), tmp_path / "ckpt", kg, tokenizer=tokenizer)
    assert torch.equal(loaded(**inputs, knowledge=k).logits, out_token)
    loaded.set_adapter("cross")
    assert torch.equal(loaded(**inputs, knowledge=k).logits, out_cross)
    with pytest.raises(ValueError, match="Unknown adapter 'nope'"):
        model.set_adapter("nope")


def test_merge_and_unload_keeps_plain_lora(kg, tokenizer):
    model = _llama(kg, tokenizer)
    _perturb(model)
    model.eval()
    inputs = make_inputs()
    plain = model(**inputs, knowledge=KnowledgeBatch.empty(2, 6)).logits
    with pytest.warns(UserWarning, match="knowledge path"):
        merged = model.merge_and_unload()
    assert (merged(**inputs).logits - plain).abs().max() < 1e-5


@pytest.mark.parametrize("mode", ["token", "cross", "prefix"])
def test_gradient_checkpointing_matches(kg, tokenizer, mode):
    grads = []
    for checkpointing in (False, True):
        model = _llama(kg, tokenizer, knowledge_mode=mode)
        _perturb(model)
        model.train()
        if checkpointing:
            model.gradient_checkpointing_enable()
        out = model(**make_inputs(), knowledge=_knowledge(kg))
        out.logits.pow(2).mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, msg=name)


def test_checkpoint_refuses_other_kg_model_and_version(kg, tokenizer, tmp_path):
    model = _llama(kg, tokenizer)
    model.save_pretrained(tmp_path / "ckpt")
    other_kg = KnowledgeGraph([*kg.entity_keys, "extra"], kg.relation_keys, kg.triples)
    with pytest.raises(CheckpointError, match=r"another knowledge graph.*9 entities.*10 entities"):
        KGPeftModel.from_pretrained(build_model(*LLAMA[1:]), tmp_path / "ckpt", other_kg, tokenizer=tokenizer)
    other = AutoModelForCausalLM.from_config(GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=64))
    with pytest.raises(CheckpointError, match=r"another base model \(model_type: checkpoint 'llama', model 'gpt2'"):
        KGPeftModel.from_pretrained(other, tmp_path / "ckpt", kg, tokenizer=tokenizer)
    torch.manual_seed(5)
    retrained = LLAMA[2].from_config(LLAMA[1])
    with pytest.raises(CheckpointError, match="embedding_checksum"):
        KGPeftModel.from_pretrained(retrained, tmp_path / "ckpt", kg, tokenizer=tokenizer)
    meta = json.loads((tmp_path / "ckpt" / "kgpeft_config.json").read_text())
    meta["format_version"] = 99
    (tmp_path / "ckpt" / "kgpeft_config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="format version 99"):
        KGPeftModel.from_pretrained(build_model(*LLAMA[1:]), tmp_path / "ckpt", kg, tokenizer=tokenizer)


@pytest.mark.parametrize("file", ["kgpeft_model.safetensors", "adapter_model.safetensors"])
def test_truncated_checkpoint_is_refused(kg, tokenizer, tmp_path, file):
    model = _llama(kg, tokenizer)
    model.save_pretrained(tmp_path / "ckpt")
    path = tmp_path / "ckpt" / file
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=f"{file} is corrupt or was changed after saving"):
        KGPeftModel.from_pretrained(build_model(*LLAMA[1:]), tmp_path / "ckpt", kg, tokenizer=tokenizer)


def test_failed_save_leaves_previous_checkpoint(kg, tokenizer, tmp_path, monkeypatch):
    model = _llama(kg, tokenizer)
    model.save_pretrained(tmp_path / "ckpt")
    before = sorted(p.name for p in (tmp_path / "ckpt").iterdir())

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("kgpeft.model.save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"], "no temporary folder left behind"


def test_save_replaces_only_an_adapter_folder(kg, tokenizer, tmp_path, monkeypatch):
    model = _llama(kg, tokenizer)
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(OutputPathError, match=r"mine holds files that are not a kgpeft adapter's \(notes\.txt, sub\)"):
        model.save_pretrained(mine)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "sub"]
    model.save_pretrained(mine, force=True)  # writes the adapter beside the user's files
    assert (mine / "notes.txt").read_text() == "keep me" and (mine / "sub").is_dir()
    KGPeftModel.from_pretrained(build_model(*LLAMA[1:]), mine, kg, tokenizer=tokenizer)

    file = tmp_path / "file"
    file.write_text("data")
    with pytest.raises(OutputPathError, match="file is a file; save_pretrained writes a folder"):
        model.save_pretrained(file, force=True)
    assert file.read_text() == "data"

    model.save_pretrained(tmp_path / "ckpt")
    model.add_adapter("other", KGLoraConfig(knowledge_mode="token", r=2, graph_channels=16))
    model.save_pretrained(tmp_path / "ckpt")  # an adapter folder (with its subfolders) is replaced
    assert (tmp_path / "ckpt" / "other").is_dir()
    with pytest.raises(OutputPathError, match="ckpt exists; pass overwrite=True"):
        model.save_pretrained(tmp_path / "ckpt", overwrite=False)

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    model.save_pretrained(".")
    model.save_pretrained(".")  # and again, over the adapter now there
    assert Path.cwd() == cwd and (cwd / "kgpeft_config.json").is_file()
    assert not [p for p in [*tmp_path.iterdir(), *cwd.iterdir()] if p.name.startswith(".")], "no stray folders"
    KGPeftModel.from_pretrained(build_model(*LLAMA[1:]), ".", kg, tokenizer=tokenizer)


@pytest.mark.parametrize(
    "file", ["kgpeft_model.safetensors", "adapter_model.safetensors", "b/adapter_model.safetensors"]
)
def test_changed_weight_file_is_refused(kg, tokenizer, tmp_path, file):
    model = _llama(kg, tokenizer)
    model.add_adapter("b", KGLoraConfig(knowledge_mode="token", r=2, graph_channels=16))
    model.save_pretrained(tmp_path / "ckpt")
    meta = json.loads((tmp_path / "ckpt" / "kgpeft_config.json").read_text())
    assert sorted(meta["sha256"]) == sorted(
        ["kgpeft_model.safetensors", "adapter_model.safetensors", "b/adapter_model.safetensors"]
    )
    path = tmp_path / "ckpt" / file
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # a flipped byte inside a tensor: still a readable safetensors file
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"ckpt/{file} is corrupt or was changed after saving: its sha256"):
        KGPeftModel.from_pretrained(build_model(*LLAMA[1:]), tmp_path / "ckpt", kg, tokenizer=tokenizer)
    del meta["sha256"]  # a checkpoint saved before digests were recorded loads unchecked
    (tmp_path / "ckpt" / "kgpeft_config.json").write_text(json.dumps(meta))
    KGPeftModel.from_pretrained(build_model(*LLAMA[1:]), tmp_path / "ckpt", kg, tokenizer=tokenizer)


@pytest.fixture(scope="module")
def saved_adapter(kg, tokenizer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved") / "ckpt"
    _llama(kg, tokenizer).save_pretrained(folder)
    return folder


def _adapter(meta, **settings):
    return {**meta, "adapters": {"default": {**meta["adapters"]["default"], **settings}}}


def _renamed(values, old, new):
    return {new if k == old else k: v for k, v in values.items()}


# how kgpeft_config.json is hand-edited, and the error, {} standing for the file's path
BAD_CONFIGS = {
    "not_json": (lambda m: '{\n  "format_version": 1,\n}', r"{}:3:1: not valid JSON \(Expecting property name"),
    "a_list": (lambda m: [m], r"{}: expected a JSON object of settings, got a JSON list"),
    "a_string": (lambda m: "default", r"{}: expected a JSON object of settings, got a JSON str"),
    "format_version_str": (lambda m: {**m, "format_version": "2"}, "`format_version` in {} should be int, got str '2'"),
    "no_kg_fingerprint": (
        lambda m: {k: v for k, v in m.items() if k != "kg_fingerprint"},
        "the key 'kg_fingerprint' is required in {}",
    ),
    "kg_fingerprint_int": (lambda m: {**m, "kg_fingerprint": 7}, "`kg_fingerprint` in {} should be str, got int 7"),
    "kgpeft_version_bad": (
        lambda m: {**m, "kgpeft_version": "soon"},
        "`kgpeft_version` in {} should be a version such as '0.1.0', got 'soon'",
    ),
    "no_adapter": (lambda m: {**m, "adapters": {}}, "`adapters` in {} is empty"),
    "adapters_list": (lambda m: {**m, "adapters": ["default"]}, "`adapters` in {} should be a mapping, got list"),
    "adapter_not_mapping": (
        lambda m: {**m, "adapters": {"default": 4}},
        "`adapters.default` in {} should be a mapping of settings, got int 4",
    ),
    "unknown_key": (
        lambda m: _renamed(m, "adapters", "adapter"),
        "unknown key 'adapter' in {}; did you mean 'adapters'",
    ),
    "no_target_modules": (lambda m: {**m, "target_modules": {}}, r"`target_modules.default` in {} should be a list"),
    "active_adapter_int": (
        lambda m: {**m, "active_adapter": 1},
        "`active_adapter` in {} should be str or None, got int",
    ),
    "active_adapter_unknown": (
        lambda m: {**m, "active_adapter": "other"},
        r"`active_adapter` in {} is 'other', not one of the adapters \['default'\]",
    ),
    "kg_size_partial": (
        lambda m: {**m, "kg_size": {"num_entities": 9}},
        r"`kg_size` in {} lacks `kg_size\.num_relations`; it should hold",
    ),
    "sha256_int": (lambda m: {**m, "sha256": {"x.safetensors": 1}}, r"`sha256.x\.safetensors` in {} should be str"),
    "adapter_wrong_type": (
        lambda m: _adapter(m, lora_dropout="0.1"),
        r"{}: adapter 'default': `lora_dropout` in adapter config should be float, got str '0.1'",
    ),
    "adapter_bad_value": (
        lambda m: _adapter(m, r=0),
        r"{}: adapter 'default': `r` should be a positive integer, got 0",
    ),
    "adapter_unknown_key": (
        lambda m: {**m, "adapters": {"default": _renamed(m["adapters"]["default"], "lora_alpha", "lora_alpah")}},
        r"{}: adapter 'default': unknown key 'lora_alpah' in adapter config; did you mean 'lora_alpha'\?",
    ),
    "r_changed": (
        lambda m: _adapter(m, r=8),
        r"{}: adapter 'default' expects tensor '\S+_proj\.lora_A\.weight' of shape \(8, 32\) \(from `r` = 8\), "
        r"but \S+ckpt/adapter_model\.safetensors holds it with shape \(4, 32\)",
    ),
    "graph_channels_changed": (
        lambda m: _adapter(m, graph_channels=8),
        r"{}: adapter 'default' expects tensor '\S+' of shape \([^)]*\) \(from `graph_channels` = 8\), "
        r"but \S+ckpt/kgpeft_model\.safetensors holds it",
    ),
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_hand_edited_config_is_refused(kg, tokenizer, saved_adapter, tmp_path, case):
    edit, message = BAD_CONFIGS[case]
    folder = shutil.copytree(saved_adapter, tmp_path / "ckpt")
    file = folder / "kgpeft_config.json"
    edited = edit(json.loads(file.read_text()))
    file.write_text(edited if case == "not_json" else json.dumps(edited))
    with pytest.raises(CheckpointError, match=message.format(re.escape(str(file)))):
        KGPeftModel.from_pretrained(build_model(*LLAMA[1:]), folder, kg, tokenizer=tokenizer)


def test_newer_kgpeft_keys_are_ignored_with_a_warning(kg, tokenizer, saved_adapter, tmp_path):
    folder = shutil.copytree(saved_adapter, tmp_path / "ckpt")
    file = folder / "kgpeft_config.json"
    meta = _adapter(json.loads(file.read_text()), future_setting=1)
    file.write_text(json.dumps({**meta, "kgpeft_version": "99.0", "future_key": {}}))
    with (
        pytest.warns(UserWarning, match=r"Ignoring unknown keys \['future_key'\] in \S+kgpeft_config\.json"),
        pytest.warns(UserWarning, match=r"unknown KGLoraConfig keys \['future_setting'\]"),
    ):
        loaded = KGPeftModel.from_pretrained(build_model(*LLAMA[1:]), folder, kg, tokenizer=tokenizer)
    assert loaded.kg_configs["default"].r == 4


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_saved_files_and_folders_honour_the_umask(kg, tokenizer, tmp_path, mask):
    model = _llama(kg, tokenizer)
    model.add_adapter("b", KGLoraConfig(knowledge_mode="token", r=2, graph_channels=16))
    old = os.umask(mask)
    try:
        model.save_pretrained(tmp_path / "ckpt")
    finally:
        os.umask(old)
    saved = [tmp_path / "ckpt", *(tmp_path / "ckpt").rglob("*")]
    modes = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in saved}
    assert modes == {k: (0o777 if (tmp_path / k).is_dir() else 0o666) & ~mask for k in modes}


def test_config_validation():
    with pytest.raises(ValueError, match="`r` should be a positive integer, got 0"):
        KGLoraConfig(r=0)
    with pytest.raises(ValueError, match="`knowledge_mode` should be one of"):
        KGLoraConfig(knowledge_mode="graph")
    with pytest.raises(ValueError, match="for block decomposition pass `num_bases=None`"):
        KGLoraConfig(num_bases=2, num_blocks=2)
    with pytest.warns(UserWarning, match=r"unknown KGLoraConfig keys \['future_key'\]"):
        config = KGLoraConfig.from_dict({"r": 2, "future_key": 1})
    assert config.r == 2


def test_text_features_need_a_tokenizer(kg):
    with pytest.raises(ValueError, match="pass `tokenizer=`"):
        get_kg_peft_model(build_model(*LLAMA[1:]), KGLoraConfig(knowledge_mode="token"), kg)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            XGLMConfig(num_layers=2, attention_heads=4, d_model=32, ffn_dim=64, vocab_size=64),
            {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"},
        ),
        (
            CodeGenConfig(n_layer=2, n_head=4, n_embd=32, vocab_size=64, rotary_dim=4, n_positions=64),
            {"attn.qkv_proj", "attn.out_proj"},
        ),
    ],
    ids=["xglm", "codegen"],
)
def test_architecture_outside_the_table(kg, tokenizer, config, expected):
    assert config.model_type not in ATTENTION_TARGET_MODULES
    base = build_model(config, AutoModelForCausalLM)
    reference = build_model(config, AutoModelForCausalLM)
    model = get_kg_peft_model(
        base, KGLoraConfig(knowledge_mode="token", r=4, graph_channels=16), kg, tokenizer=tokenizer
    )
    assert set(model.target_modules["default"]) == expected
    inputs, knowledge = make_inputs(), _knowledge(kg)
    out = model(**inputs, knowledge=knowledge)
    assert (out.logits - reference(**inputs).logits).abs().max() <= 1e-6
    model.train()
    _perturb(model)
    model(**inputs, knowledge=knowledge).logits.pow(2).mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_new_classification_head_trains_and_is_saved(kg, tokenizer, tmp_path):
    _, config, auto = next(a for a in ARCHITECTURES if a[0] == "bert")
    kg_config = KGLoraConfig(knowledge_mode="token", r=4, graph_channels=16, modules_to_save=["classifier"])
    model = get_kg_peft_model(build_model(config, auto), kg_config, kg, tokenizer=tokenizer)
    head = [n for n, p in model.named_parameters() if "classifier" in n and p.requires_grad]
    assert head, "the head is trainable"
    _perturb(model)
    model.eval()
    inputs, knowledge = make_inputs(), _knowledge(kg)
    want = model(**inputs, knowledge=knowledge).logits
    model.save_pretrained(tmp_path / "ckpt")
    other = build_model(config, auto)
    torch.nn.init.normal_(other.classifier.weight)  # a different head: the saved one must replace it
    loaded = KGPeftModel.from_pretrained(other, tmp_path / "ckpt", kg, tokenizer=tokenizer)
    assert torch.equal(loaded(**inputs, knowledge=knowledge).logits, want)
