"""The knowledge context: state set for one call, changed only through its own methods."""

import pytest
import torch

from kgpeft.tuners import CrossState, KnowledgeContext, KnowledgeError, TokenState


def _state() -> TokenState:
    return TokenState(2, token_states=torch.ones(2, 3, 4))


def test_drop_token_states_lasts_until_the_call_ends():
    context, state = KnowledgeContext(), _state()
    with context.activate(state):
        context.drop_token_states()
        assert context.state.token_states is None
        context.drop_token_states()  # every later step: nothing left to drop
        assert context.state.token_states is None
    assert context.state is None
    assert state.token_states is not None, "the state passed to activate is not changed"


def test_after_prefill_hook_drops_token_states_after_a_forward():
    context, layer = KnowledgeContext(), torch.nn.Linear(4, 4)
    handle = layer.register_forward_hook(context.after_prefill_hook())
    with context.activate(_state()):
        assert context.state.token_states is not None
        layer(torch.zeros(1, 4))
        assert context.state.token_states is None
    layer(torch.zeros(1, 4))  # outside a call there is no state to change
    assert context.state is None
    handle.remove()


def test_a_state_expands_its_tensors_for_beam_search():
    state = CrossState(2, torch.arange(2.0)[:, None, None].expand(2, 3, 4), torch.ones(2, 3, dtype=torch.bool))
    wide = state.expand_to(6)
    assert type(wide) is CrossState and wide.batch_size == 6
    assert wide.node_states[:, 0, 0].tolist() == [0, 0, 0, 1, 1, 1] and wide.node_mask.shape == (6, 3)
    assert state.expand_to(2) is state
    with pytest.raises(KnowledgeError, match="batch of 2, but a layer got a batch of 3"):
        state.expand_to(3)
