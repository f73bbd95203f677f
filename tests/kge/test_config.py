"""`KGEConfig`: help texts, and the names of older embedding files."""

import dataclasses

import pytest

from kgpeft.cli import build_parser
from kgpeft.configuration import field_help
from kgpeft.kge import KGEConfig
from kgpeft.kge.config import RENAMED_KEYS


def test_every_field_has_a_help_text_and_an_option():
    helps = field_help(KGEConfig)
    assert list(helps) == [f.name for f in dataclasses.fields(KGEConfig)]
    assert all(text.strip() for text in helps.values())
    kge_train = build_parser()._subparsers._group_actions[0].choices["kge"]._subparsers._group_actions[0]
    options = {a.dest: a for a in kge_train.choices["train"]._actions}
    assert options["kge.learning_rate"].option_strings == ["--learning-rate"]
    assert options["kge.learning_rate"].help == helps["learning_rate"]
    assert options["kge.num_epochs"].help == helps["num_epochs"]
    assert options["kge.patience"].help.endswith("The best state is restored at the end.")


def test_old_names_are_read_by_their_new_names():
    assert RENAMED_KEYS == {"lr": "learning_rate", "epochs": "num_epochs"}
    config = KGEConfig.from_saved({"model": "DistMult", "lr": 0.05, "epochs": 7})
    assert (config.model, config.learning_rate, config.num_epochs) == ("distmult", 0.05, 7)
    with pytest.raises(ValueError, match="unknown key 'lr'"):
        KGEConfig.from_dict({"lr": 0.05})  # a hand-written config uses the current names
