import pytest
import torch
import torch.nn.functional as F

from corpus import load_corpus
from recognizer.datasets.synthetic import CLASS_NAMES
from recognizer.method.prompt_learner import PromptLearner
from recognizer.method.text_bank import build_text_bank, corpus_texts
from recognizer.method.text_encoder import TextConfig, build_text_encoder
from tests.conftest import REPO


@pytest.fixture(scope="module", params=["tiny-bert", "tiny-clip"])
def tiny(request):
    return build_text_encoder(TextConfig(encoder=request.param, tiny_dim=32))


def test_embedding_path_matches_the_models_own_forward(tiny):
    tok = tiny.tokenize(["a person waves a hand", "jump up"])
    ours = tiny.encode_embeddings(tiny.token_embedding()(tok.ids), tok.mask)
    if tiny.causal:
        ref = tiny.model(input_ids=tok.ids, attention_mask=tok.mask).text_embeds
    else:
        hidden = tiny.model(input_ids=tok.ids, attention_mask=tok.mask).last_hidden_state
        m = tok.mask.unsqueeze(-1).float()
        ref = (hidden * m).sum(1) / m.sum(1)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    assert tok.ids.shape[1] == 7  # cut to the longest real prompt, not padded to 77


def test_frozen_encoder_has_no_trainable_weights(tiny):
    assert not any(p.requires_grad for p in tiny.parameters())
    tiny.train()
    assert not tiny.model.training  # a frozen encoder never enters train mode (no dropout)


@pytest.mark.parametrize("class_specific", [False, True])
def test_pcle_gradients_reach_only_the_context(tiny, class_specific):
    learner = PromptLearner(tiny, CLASS_NAMES, n_ctx=4, class_specific=class_specific)
    assert learner.ctx.shape == (len(CLASS_NAMES) if class_specific else 1, 4, tiny.token_embedding().weight.shape[1])
    emb = learner(tiny)  # (C, D)
    assert emb.shape == (len(CLASS_NAMES), tiny.dim)
    emb.pow(2).sum().backward()
    assert learner.ctx.grad is not None and learner.ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny.parameters())
    # the prompt is cut to the longest real class prompt: [SOS] + ctx + name + "." + [EOS]
    longest = max(len(tiny.tokenizer(f"{n}.", add_special_tokens=False)["input_ids"]) for n in CLASS_NAMES)
    assert learner.mask.shape[1] == 1 + 4 + longest + 1
    assert (learner.mask.sum(1) <= learner.mask.shape[1]).all()


def test_context_initialised_from_words(tiny):
    learner = PromptLearner(tiny, CLASS_NAMES[:2], n_ctx=6, ctx_init="a person is")
    ids = tiny.tokenizer("a person is", add_special_tokens=False)["input_ids"]
    ref = tiny.token_embedding()(torch.tensor(ids))
    torch.testing.assert_close(learner.ctx[0, : len(ids)], ref)
    with pytest.raises(ValueError, match="more than n_ctx"):
        PromptLearner(tiny, CLASS_NAMES[:2], n_ctx=1, ctx_init="a person is")


def test_text_bank_is_computed_once_and_cached(tmp_path, tiny):
    corpus = load_corpus(REPO / "prompts" / "ntu120.jsonl", CLASS_NAMES)
    calls = []
    original = tiny.encode

    def counting(texts, batch_size=256):
        calls.append(len(texts))
        return original(texts, batch_size)

    tiny.encode = counting
    try:
        bank = build_text_bank(tiny, corpus, tmp_path)
        assert calls and len(list(tmp_path.glob("*.pt"))) == 1
        calls.clear()
        again = build_text_bank(tiny, corpus, tmp_path)
        assert calls == []  # served from the on-disk cache
    finally:
        del tiny.encode
    torch.testing.assert_close(bank.synonyms, again.synonyms)
    syn, owner, parts = corpus_texts(corpus)
    assert bank.synonyms.shape[0] == len(syn) and bank.parts.shape[:2] == (len(corpus), 4)
    labels = torch.tensor([0, 3, 3, 9])
    drawn = bank.sample(labels, torch.Generator().manual_seed(0))
    rows = [int((bank.synonyms == d).all(1).nonzero()[0]) for d in drawn]
    assert [owner[r] for r in rows] == labels.tolist()


def test_embedded_minilm_is_a_real_sentence_encoder():
    enc = build_text_encoder(TextConfig(encoder="minilm"))
    assert enc.dim == 384
    e = F.normalize(enc.encode(["a person waves a hand", "hand waving", "a person sits down on a chair"]), dim=-1)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.1


def test_missing_clip_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not a local checkpoint directory"):
        build_text_encoder(TextConfig(encoder="clip", path=str(tmp_path)))
    with pytest.raises(ValueError, match="needs text.path"):
        build_text_encoder(TextConfig(encoder="clip"))


def test_pcle_class_subset_equals_the_same_rows_of_all_classes(tiny):
    learner = PromptLearner(tiny, CLASS_NAMES, n_ctx=4)
    classes = torch.tensor([1, 4, 7])
    with torch.no_grad():
        full = learner(tiny)
        part = learner(tiny, classes)
    torch.testing.assert_close(part, full[classes], atol=1e-5, rtol=1e-5)
    embeds, mask = learner.prompts(classes)
    assert mask.shape[1] == int(mask.sum(1).max()) <= learner.mask.shape[1]  # cut to the subset's longest
