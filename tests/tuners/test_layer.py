"""The knowledge context: state set for one call, changed only through its own methods."""

import torch

from kgpeft.tuners import KnowledgeContext, KnowledgeState


def _state() -> KnowledgeState:
    return KnowledgeState(2, token_states=torch.ones(2, 3, 4), node_states=torch.ones(2, 5, 4))


def test_drop_token_states_keeps_the_nodes_until_the_call_ends():
    context, state = KnowledgeContext(), _state()
    with context.activate(state):
        context.drop_token_states()
        assert context.state.token_states is None
        assert context.state.node_states is state.node_states
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
