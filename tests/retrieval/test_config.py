import pytest
from tiny_models import tiny_kg

from kgpeft.errors import KGPeftError
from kgpeft.linking import EntityLinker
from kgpeft.pipeline import JobConfig, JobConfigError
from kgpeft.retrieval import RetrievalConfig, RetrievalConfigError, SubgraphRetriever
from kgpeft.tuners import KGLoraConfig


def test_defaults_and_builders():
    config = RetrievalConfig()
    assert (config.num_neighbors, config.max_nodes, config.max_candidates) == ([16, 8], 32, 1)  # 32: as measured
    assert (config.num_facts, config.fact_format) == (0, "sentence")
    kg = tiny_kg()
    linker = RetrievalConfig(max_candidates=2).build_linker(kg)
    assert isinstance(linker, EntityLinker) and linker.max_candidates == 2
    retriever = RetrievalConfig(num_neighbors=[-1], max_nodes=8).build_retriever(kg, seed=3)
    assert isinstance(retriever, SubgraphRetriever)
    assert repr(retriever) == "SubgraphRetriever(num_neighbors=[-1], max_nodes=8, seed=3)"
    assert RetrievalConfig(num_neighbors=(4, 2)).num_neighbors == [4, 2]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_neighbors": []}, r"`num_neighbors` should be a non-empty list of positive caps or -1, got \[\]"),
        ({"num_neighbors": [4, 0]}, r"`num_neighbors` .* got \[4, 0\]"),
        ({"num_neighbors": [-2]}, r"`num_neighbors` .* got \[-2\]"),
        ({"num_neighbors": 16}, r"`num_neighbors` .* should be a list of int, got int 16"),
        ({"max_nodes": 0}, "`max_nodes` should be a positive integer, got 0"),
        ({"max_nodes": "64"}, "`max_nodes` .* should be int, got str '64'"),
        ({"max_candidates": 0}, "`max_candidates` should be a positive integer, got 0"),
        ({"num_facts": -1}, "`num_facts` should be a non-negative integer, got -1"),
        ({"num_facts": True}, "`num_facts` .* should be int, got bool True"),
        ({"fact_format": "{head} {verb} {tail}"}, r"`fact_format` should be one of \['arrow', 'sentence'\]"),
        ({"fact_format": "no fields"}, "`fact_format` .* got 'no fields'"),
        ({"fact_format": "{head"}, "`fact_format` is not a valid format string"),
    ],
)
def test_bad_values_name_the_field(kwargs, message):
    with pytest.raises(RetrievalConfigError, match=message) as info:
        RetrievalConfig(**kwargs)
    assert isinstance(info.value, KGPeftError) and isinstance(info.value, ValueError)


def test_from_dict_names_unknown_keys():
    assert RetrievalConfig.from_dict({"max_nodes": 8}).max_nodes == 8
    with pytest.raises(
        RetrievalConfigError, match=r"unknown key 'max_node' in retrieval config; did you mean 'max_nodes'"
    ):
        RetrievalConfig.from_dict({"max_node": 8})


def test_job_config_retrieval_section():
    config = JobConfig.from_dict(
        {"model": "m", "adapter": {"knowledge_mode": "token"}, "retrieval": {"max_nodes": 32, "num_facts": 2}}
    )
    assert config.retrieval == RetrievalConfig(max_nodes=32, num_facts=2)
    with pytest.raises(JobConfigError, match="retrieval: `max_nodes` should be a positive integer, got 0"):
        JobConfig.from_dict({"model": "m", "retrieval": {"max_nodes": 0}})
    with pytest.raises(JobConfigError, match=r"unknown key 'fanout' in retrieval; known keys: num_neighbors"):
        JobConfig.from_dict({"model": "m", "retrieval": {"fanout": [4]}})


def test_kg_lora_config_drops_the_retrieval_keys_of_old_checkpoints(recwarn):
    old = {"r": 4, "num_neighbors": [16, 8], "max_nodes": 64, "max_candidates": 1}
    assert KGLoraConfig.from_dict(old) == KGLoraConfig(r=4)
    assert not recwarn.list
    with pytest.warns(UserWarning, match=r"unknown KGLoraConfig keys \['newer'\]"):
        KGLoraConfig.from_dict({"r": 4, "newer": 1})
