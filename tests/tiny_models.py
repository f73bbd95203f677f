"""Tiny models of many architectures, built from configs (no downloads), a tiny tokenizer and KG."""

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoModelForSpeechSeq2Seq,
    BartConfig,
    BertConfig,
    BloomConfig,
    CohereConfig,
    DebertaV2Config,
    DistilBertConfig,
    ElectraConfig,
    FalconConfig,
    Gemma2Config,
    Gemma3TextConfig,
    GemmaConfig,
    GPT2Config,
    GPTBigCodeConfig,
    GPTJConfig,
    GPTNeoXConfig,
    GraniteConfig,
    LlamaConfig,
    MistralConfig,
    Olmo2Config,
    OlmoConfig,
    OPTConfig,
    Phi3Config,
    PhiConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen3Config,
    RobertaConfig,
    SmolLM3Config,
    StableLmConfig,
    Starcoder2Config,
    T5Config,
    WhisperConfig,
)

from kgpeft import KnowledgeGraph
from kgpeft.retrieval import SubgraphRetriever, batch_node_index
from kgpeft.tuners import KnowledgeBatch

WORDS = ["[PAD]", "[UNK]", "dog", "cat", "animal", "pet", "bank", "river", "money", "tree", "big", "small", "the", "a"]
VOCAB = 64
_DEC = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "vocab_size": VOCAB,
}
_FALCON = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": VOCAB}
_BIGCODE = {"n_layer": 2, "n_head": 4, "n_embd": 32, "vocab_size": VOCAB, "n_positions": 64}

DEBERTA = {
    **_DEC,
    "max_position_embeddings": 64,
    "relative_attention": True,
    "pos_att_type": ["p2c", "c2p"],
    "share_att_key": True,
    "position_buckets": 8,
    "initializer_range": 0.2,  # at the default 0.02 the tiny model's logits are ~1e-2, too small to compare
}

# (name, config, auto class): one tiny model per architecture family
ARCHITECTURES = [
    ("gpt2", GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=VOCAB, n_positions=64), AutoModelForCausalLM),
    ("llama", LlamaConfig(**_DEC, num_key_value_heads=2), AutoModelForCausalLM),
    ("qwen2", Qwen2Config(**_DEC, num_key_value_heads=2), AutoModelForCausalLM),
    ("mistral", MistralConfig(**_DEC, num_key_value_heads=2), AutoModelForCausalLM),
    ("gpt_neox", GPTNeoXConfig(**_DEC), AutoModelForCausalLM),
    (
        "opt",
        OPTConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            ffn_dim=64,
            vocab_size=VOCAB,
            word_embed_proj_dim=32,
            max_position_embeddings=64,
        ),
        AutoModelForCausalLM,
    ),
    ("phi", PhiConfig(**_DEC), AutoModelForCausalLM),
    ("gemma", GemmaConfig(**_DEC, num_key_value_heads=1, head_dim=8), AutoModelForCausalLM),
    ("bert", BertConfig(**_DEC, max_position_embeddings=64), AutoModelForSequenceClassification),
    ("roberta", RobertaConfig(**_DEC, max_position_embeddings=70, pad_token_id=0), AutoModelForSequenceClassification),
    (
        "distilbert",
        DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=VOCAB, max_position_embeddings=64),
        AutoModelForSequenceClassification,
    ),
    (
        "t5",
        T5Config(
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            vocab_size=VOCAB,
            decoder_start_token_id=0,
            pad_token_id=0,
        ),
        AutoModelForSeq2SeqLM,
    ),
    (
        "bart",
        BartConfig(
            d_model=32,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            vocab_size=VOCAB,
            max_position_embeddings=64,
        ),
        AutoModelForSeq2SeqLM,
    ),
    # relative attention, as every real DeBERTa-v2/v3 checkpoint: position embeddings pass through query/key_proj
    ("deberta_v2", DebertaV2Config(**DEBERTA), AutoModelForSequenceClassification),
    # fused query/key/value projections whose parts differ in width or order (see kgpeft.tuners.prefix._FUSED):
    # [q | k | v] of 4, 1 and 1 heads (multi-query)
    ("gpt_bigcode", GPTBigCodeConfig(**_BIGCODE, multi_query=True), AutoModelForCausalLM),
    # [q_h | k_h | v_h] per head, in a layer GPT-2 (same name, c_attn) splits in blocks
    ("gpt_bigcode_mha", GPTBigCodeConfig(**_BIGCODE, multi_query=False), AutoModelForCausalLM),
    ("falcon", FalconConfig(**_FALCON, multi_query=True), AutoModelForCausalLM),  # 4, 1, 1 heads, blocks
    ("falcon_mha", FalconConfig(**_FALCON, multi_query=False), AutoModelForCausalLM),  # per head
    # per key/value head: its 2 query heads, then its key and value
    ("falcon_gqa", FalconConfig(**_FALCON, new_decoder_architecture=True, num_kv_heads=2), AutoModelForCausalLM),
    ("phi3", Phi3Config(**_DEC, num_key_value_heads=2, eos_token_id=2, pad_token_id=0), AutoModelForCausalLM),
    ("bloom", BloomConfig(hidden_size=32, n_layer=2, n_head=4, vocab_size=VOCAB), AutoModelForCausalLM),
]

# Families with their own attention geometry or projection names, for the modes that read attention. Kept out of
# ARCHITECTURES, whose every test would otherwise run on them too.
_GEMMA = {**_DEC, "num_key_value_heads": 2, "head_dim": 8, "query_pre_attn_scalar": 4, "initializer_range": 0.2}
MORE_ARCHITECTURES = [
    # q/k RMSNorm per head before the rotary embedding
    ("qwen3", Qwen3Config(**_DEC, num_key_value_heads=2, head_dim=8), AutoModelForCausalLM),
    # q/k RMSNorm over all heads together
    ("olmo2", Olmo2Config(**_DEC, num_key_value_heads=2), AutoModelForCausalLM),
    # scores scaled by query_pre_attn_scalar**-0.5 (not head_dim**-0.5) and soft-capped; a cap and weights at which
    # the tiny model's scores reach it
    ("gemma2", Gemma2Config(**_GEMMA, attn_logit_softcapping=1.0), AutoModelForCausalLM),
    # its own scale, q/k norms, and another rotary embedding in its sliding-window layers
    (
        "gemma3_text",
        Gemma3TextConfig(**_GEMMA, sliding_window=16, layer_types=["sliding_attention", "full_attention"]),
        AutoModelForCausalLM,
    ),
    # q_proj/k_proj/v_proj/out_proj under `attn`, rotary on the first rotary_dim dimensions, pairs interleaved
    (
        "gptj",
        GPTJConfig(n_layer=2, n_head=4, n_embd=32, vocab_size=VOCAB, n_positions=64, rotary_dim=4),
        AutoModelForCausalLM,
    ),
    # q/k LayerNorm per head, rotary on interleaved pairs
    (
        "cohere",
        CohereConfig(**_DEC, num_key_value_heads=2, use_qk_norm=True, pad_token_id=0, logit_scale=1.0),
        AutoModelForCausalLM,
    ),
    # one q/k LayerNorm module per head, partial rotary
    ("stablelm", StableLmConfig(**_DEC, num_key_value_heads=2, qk_layernorm=True), AutoModelForCausalLM),
    # queries, keys and values clipped (in place, by the model) at a bound the tiny model's reach
    ("olmo", OlmoConfig(**_DEC, clip_qkv=0.05, pad_token_id=0), AutoModelForCausalLM),
    # scores scaled by attention_multiplier
    ("granite", GraniteConfig(**_DEC, num_key_value_heads=2, attention_multiplier=0.5), AutoModelForCausalLM),
    # a layer without rotary embedding (no_rope_layers 0)
    (
        "smollm3",
        SmolLM3Config(**_DEC, num_key_value_heads=2, no_rope_layers=[1, 0], pad_token_id=0),
        AutoModelForCausalLM,
    ),
    ("starcoder2", Starcoder2Config(**_DEC, num_key_value_heads=2), AutoModelForCausalLM),
    (
        "electra",
        ElectraConfig(**_DEC, embedding_size=32, max_position_embeddings=64),
        AutoModelForSequenceClassification,
    ),
    # an encoder-decoder whose encoder reads audio features, not token ids
    (
        "whisper",
        WhisperConfig(
            d_model=32,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            vocab_size=VOCAB,
            num_mel_bins=8,
            max_source_positions=16,
            max_target_positions=16,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=1,
        ),
        AutoModelForSpeechSeq2Seq,
    ),
]


def build_model(config, auto_class, seed: int = 0):
    torch.manual_seed(seed)
    model = auto_class.from_config(config)
    return model.eval()


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")


def tiny_kg() -> KnowledgeGraph:
    # 0 dog -is_a-> 2 animal, 1 cat -is_a-> 2 animal, 0 dog -is_a-> 3 pet, 1 cat -is_a-> 3 pet,
    # 4 bank -near-> 5 river, 4 bank -holds-> 6 money, 7 tree -near-> 5 river
    return KnowledgeGraph(
        ["dog", "cat", "animal", "pet", "bank", "river", "money", "tree", "big cat"],
        ["is_a", "near", "holds"],
        torch.tensor([[0, 1, 0, 1, 4, 4, 7], [0, 0, 0, 0, 1, 2, 1], [2, 2, 3, 3, 5, 6, 5]]),
        labels=["dog", "cat", "animal", "pet", "bank", "river", "money", "tree", "big cat"],
    )


def make_inputs(batch_size: int = 2, seq_len: int = 6):
    g = torch.Generator().manual_seed(1)
    input_ids = torch.randint(2, len(WORDS), (batch_size, seq_len), generator=g)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}


def make_knowledge(kg, seed_sets, token_entities):
    """Retrieve subgraphs around ``seed_sets`` and link tokens to entity ids (``-1``: none)."""
    graph = SubgraphRetriever(kg, num_neighbors=[-1, -1], max_nodes=16)(seed_sets)
    entities = torch.as_tensor(token_entities)
    index = batch_node_index(graph, torch.arange(len(seed_sets))[:, None], entities)
    return KnowledgeBatch(graph, index)
