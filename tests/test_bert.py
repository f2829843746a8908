"""bert.py against HF transformers on the same weights (fp32): BertModel and BertForMaskedLM
(<= 1e-5), and taggers both ways with BertForTokenClassification and its pipeline."""
import json
import os
import re
import shutil

import pytest
import torch
import transformers

import bert
from wordpiece import WordPiece

SENTENCES = [("EU rejects German call to boycott British lamb .", None),
             ("Peter Blackburn", "BRUSSELS 1996-08-22"),
             ("The European Commission said on Thursday it disagreed with German advice .",
              "Only France and Britain backed Fischler 's proposal .")]


def hf_batch(folder):
    """Real sentences, some as pairs (token types 0/1), padded to the longest: masks and types
    both matter."""
    tok = transformers.BertTokenizerFast.from_pretrained(folder)
    a, b = zip(*SENTENCES)
    enc = tok([x for x in a], [y or "" for y in b], padding=True, return_tensors="pt")
    assert (enc["attention_mask"] == 0).any(), "batch must exercise padding"
    assert (enc["token_type_ids"] == 1).any(), "batch must exercise token types"
    return enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]


def max_diff_on_real_positions(ours, theirs, mask):
    return (ours - theirs).abs()[mask.bool()].max().item()


def randomize_norms_and_biases(model):
    """Random LayerNorm/bias values (HF inits them to 1 and 0), so a swapped gamma/beta or a
    dropped bias would show in the outputs."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "LayerNorm" in n or n.endswith("bias"):
                p.normal_(0, 0.5).add_(1.0 if n.endswith("LayerNorm.weight") else 0.0)


def test_minilm_hidden_states_equal_hf(minilm_dir):
    """Real pretrained MiniLM-L6-H384 weights: our last hidden states equal HF BertModel's."""
    ids, mask, types = hf_batch(minilm_dir)
    ours = bert.from_pretrained(minilm_dir).eval()
    ref = transformers.BertModel.from_pretrained(minilm_dir, attn_implementation="eager").eval()
    with torch.no_grad():
        h = ours(ids, attention_mask=mask, token_type_ids=types)
        h_ref = ref(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    assert h.shape == h_ref.shape == (len(SENTENCES), ids.shape[1], 384)
    assert max_diff_on_real_positions(h, h_ref, mask) <= 1e-5
    assert ours.mlm is None, "MiniLM ships no MLM head"


@pytest.fixture(scope="module")
def mbert_shaped(tmp_path_factory):
    """A random-init HF BertForMaskedLM of mBERT's shape (vocab 119547, H=768, A=12; 2 layers for
    CI time), as the Hub stores it: safetensors, `bert.` prefix, MLM head, decoder tied."""
    cfg = transformers.BertConfig(vocab_size=119547, hidden_size=768, num_attention_heads=12,
                                  intermediate_size=3072, num_hidden_layers=2)
    torch.manual_seed(0)
    ref = transformers.BertForMaskedLM(cfg).eval()
    randomize_norms_and_biases(ref)
    folder = str(tmp_path_factory.mktemp("mbert_shaped"))
    ref.save_pretrained(folder, safe_serialization=True)
    return folder, ref


def test_mbert_shape_hidden_and_mlm_logits_equal_hf(mbert_shaped):
    folder, ref = mbert_shaped
    torch.manual_seed(1)
    ids = torch.randint(0, 119547, (13, 7))  # odd sizes so a transposed dimension fails loudly
    mask = torch.ones_like(ids)
    mask[3, 4:] = 0
    mask[7, 1:] = 0
    types = (torch.arange(7) >= 3).long().expand(13, 7)
    ours = bert.from_pretrained(folder).eval()
    with torch.no_grad():
        h = ours(ids, mask, types)
        logits = ours.mlm(h)
        out = ref(input_ids=ids, attention_mask=mask, token_type_ids=types,
                  output_hidden_states=True)
    assert max_diff_on_real_positions(h, out.hidden_states[-1], mask) <= 1e-5
    assert logits.shape == (13, 7, 119547)
    assert max_diff_on_real_positions(logits, out.logits, mask) <= 1e-5
    assert ours.mlm.decoder.weight is ours.emb.word.weight, "decoder must stay tied"
    clf = bert.TokenClassifier(ours, num_labels=9).eval()
    assert clf(ids, mask).shape == (13, 7, 9)


def test_legacy_gamma_beta_names_load(mbert_shaped, tmp_path):
    """TF-era checkpoints name LayerNorm parameters gamma/beta; they must load to the same model."""
    from safetensors.torch import load_file, save_file
    folder, _ = mbert_shaped
    sd = load_file(os.path.join(folder, "model.safetensors"))
    legacy = {"LayerNorm.weight": "LayerNorm.gamma", "LayerNorm.bias": "LayerNorm.beta"}
    for new, old in legacy.items():
        sd = {k.replace(new, old): v for k, v in sd.items()}
    save_file(sd, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(open(os.path.join(folder, "config.json")).read())
    a, b = bert.from_pretrained(folder), bert.from_pretrained(str(tmp_path))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka


def copy_checkpoint(src, dst, edit):
    from safetensors.torch import load_file, save_file
    sd = edit(load_file(os.path.join(src, "model.safetensors")))
    save_file(sd, os.path.join(dst, "model.safetensors"))
    shutil.copy(os.path.join(src, "config.json"), os.path.join(dst, "config.json"))


def test_missing_and_unexpected_tensors_are_named(minilm_dir, tmp_path):
    def edit(sd):
        sd.pop("encoder.layer.3.output.dense.bias")
        sd["encoder.layer.3.output.extra"] = torch.zeros(1)
        return sd
    copy_checkpoint(minilm_dir, tmp_path, edit)
    with pytest.raises(ValueError, match=r"missing \['encoder.layer.3.output.dense.bias'\].*"
                                         r"unexpected \['encoder.layer.3.output.extra'\]"):
        bert.from_pretrained(str(tmp_path))


def test_wrong_shape_is_an_error(minilm_dir, tmp_path):
    def edit(sd):
        word = "embeddings.word_embeddings.weight"
        sd[word] = sd[word][:100].clone()
        return sd
    copy_checkpoint(minilm_dir, tmp_path, edit)
    with pytest.raises(ValueError, match="emb.word.weight has shape"):
        bert.from_pretrained(str(tmp_path))


def test_corrupt_safetensors_is_an_error(minilm_dir, tmp_path):
    data = open(os.path.join(minilm_dir, "model.safetensors"), "rb").read()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 3])  # truncated download
    (tmp_path / "config.json").write_text(open(os.path.join(minilm_dir, "config.json")).read())
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        bert.from_pretrained(str(tmp_path))


def test_missing_folder_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        bert.from_pretrained(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="missing config.json, model.safetensors"):
        bert.from_pretrained(str(tmp_path))


def test_offline_hub_id_says_how_to_use_a_folder(tmp_path):
    """HF_HUB_OFFLINE=1 with an empty cache: a clear error naming the way out (a local folder).
    A subprocess, because huggingface_hub reads HF_HUB_OFFLINE once, at import."""
    import subprocess
    import sys
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    code = "import bert; bert.from_pretrained('bert-base-multilingual-cased')"
    r = subprocess.run([sys.executable, "-c", code], cwd=os.path.dirname(bert.__file__), env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "OSError" in r.stderr and "Give a local folder" in r.stderr, r.stderr[-2000:]
    assert "--model DIR" in r.stderr and "predict's first argument" in r.stderr


def test_unsupported_activation_is_rejected(minilm_dir, tmp_path):
    cfg = json.load(open(os.path.join(minilm_dir, "config.json")))
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "hidden_act": "relu"}))
    with pytest.raises(ValueError, match="hidden_act='relu'"):
        bert.BertConfig.from_json(str(tmp_path / "config.json"))


def test_training_mode_uses_dropout_and_gradients_flow(minilm_dir):
    """Dropout is active in train mode (two passes differ), off in eval (equal); every weight gets
    a grad."""
    m = bert.from_pretrained(minilm_dir)
    ids = torch.randint(1000, 2000, (2, 5))
    m.train()
    a, b = m(ids), m(ids)
    assert not torch.equal(a, b)
    a.sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(ids), m(ids))


def test_save_pretrained_round_trips_and_hf_reads_it(mbert_shaped, tmp_path):
    """Our save_pretrained writes HF layout, into a folder it makes: our loader and HF's
    BertForMaskedLM read back the same weights."""
    folder, ref = mbert_shaped
    ours = bert.from_pretrained(folder)
    saved = tmp_path / "new" / "mlm"
    bert.save_pretrained(ours, str(saved))
    config = json.loads((saved / "config.json").read_text())
    assert config["architectures"] == ["BertForMaskedLM"]
    back = bert.from_pretrained(str(saved))
    for (k, v), (k2, v2) in zip(ours.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    hf = transformers.BertForMaskedLM.from_pretrained(str(saved))
    for k, v in ref.state_dict().items():
        assert torch.equal(v, hf.state_dict()[k]), k


def test_hub_id_fetches_only_the_named_files(minilm_dir, monkeypatch, tmp_path):
    """The Hub branch of checkpoint_files, offline: a stand-in hf_hub_download serves the MiniLM
    folder's files. Only the named files are asked for; an optional file the repo lacks is skipped;
    a required one that is missing is a FileNotFoundError naming it."""
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError
    asked = []

    def fake_download(repo_id, filename, **kw):
        asked.append((repo_id, filename))
        if filename == "tokenizer_config.json":
            raise EntryNotFoundError(f"{repo_id} has no {filename}")
        # "the cache"
        return shutil.copy(os.path.join(minilm_dir, filename), str(tmp_path / filename))

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    paths = bert.checkpoint_files("org/some-bert", ["config.json", "model.safetensors"],
                                  optional=["tokenizer_config.json"])
    assert asked == [("org/some-bert", "config.json"), ("org/some-bert", "model.safetensors"),
                     ("org/some-bert", "tokenizer_config.json")]
    assert sorted(paths) == ["config.json", "model.safetensors"]
    m = bert.from_pretrained("org/some-bert")
    assert m.cfg.hidden_size == 384
    with pytest.raises(FileNotFoundError, match="has no tokenizer_config.json"):
        bert.checkpoint_files("org/some-bert", ["tokenizer_config.json"])


def test_tied_tensors_stored_under_the_decoder_names_load(mbert_shaped, tmp_path):
    """Some conversions keep the tied word embedding as cls.predictions.decoder.weight (and the
    output bias as cls.predictions.decoder.bias) instead of the embeddings' names: the same model
    must come out."""
    def edit(sd):
        sd["cls.predictions.decoder.weight"] = sd.pop("bert.embeddings.word_embeddings.weight")
        sd["cls.predictions.decoder.bias"] = sd.pop("cls.predictions.bias")
        return sd
    folder, _ = mbert_shaped
    copy_checkpoint(folder, str(tmp_path), edit)
    a, b = bert.from_pretrained(folder), bert.from_pretrained(str(tmp_path))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka


def test_an_untied_mlm_decoder_is_an_error(tmp_path):
    """HF's BertForMaskedLM with tie_word_embeddings false stores a decoder of its own; our MLMHead
    ties it to the word embeddings as BERT does, so loading it would drop a weight: an error."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=32,
                                  tie_word_embeddings=False)
    hf = transformers.BertForMaskedLM(cfg)
    hf.cls.predictions.decoder.weight.data.normal_()
    hf.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="untied masked-LM decoder"):
        bert.from_pretrained(str(tmp_path))


# ---------------------------------------------------------------------------------------------
# Taggers as HF token classifiers: ours saved for transformers, and HF's loaded into ours.

LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
ID2LABEL = {str(i): tag for i, tag in enumerate(LABELS)}  # as config.json stores it


def test_bare_encoder_saves_as_hf_bert_model(minilm_dir, tmp_path):
    """A Bert without MLM head is written as HF's BertModel: bare keys (no `bert.` prefix),
    architectures ["BertModel"], no pooler (NER never uses it: HF must be told to skip it)."""
    from safetensors.torch import load_file
    ours = bert.from_pretrained(minilm_dir).eval()
    bert.save_pretrained(ours, str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["BertModel"] and config["model_type"] == "bert"
    keys = load_file(str(tmp_path / "model.safetensors")).keys()
    assert "embeddings.word_embeddings.weight" in keys and not any("bert." in k for k in keys)
    ref, info = transformers.BertModel.from_pretrained(str(tmp_path), add_pooling_layer=False,
                                                       output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    ids, mask, types = hf_batch(minilm_dir)
    with torch.no_grad():
        h = ours(ids, mask, types)
        h_ref = ref.eval()(input_ids=ids, attention_mask=mask, token_type_ids=types)
    assert max_diff_on_real_positions(h, h_ref.last_hidden_state, mask) <= 1e-5


@pytest.fixture(scope="module")
def our_tagger(minilm_dir, tmp_path_factory):
    """MiniLM + a random 9-label classifier, saved with save_pretrained as a tagger would be, and
    its tokenizer beside it (WordPiece.save: vocab.txt + tokenizer_config.json, uncased)."""
    torch.manual_seed(0)
    model = bert.TokenClassifier(bert.from_pretrained(minilm_dir), len(LABELS)).eval()
    with torch.no_grad():  # BERT's init (std 0.02) scores every piece alike; spread the labels
        model.out.weight.normal_(0, 0.5)
        model.out.bias.normal_(0, 0.5)
    folder = tmp_path_factory.mktemp("our_tagger")
    label2id = {tag: i for i, tag in enumerate(LABELS)}
    ours = {"scheme": "bio", "max_len": 128}
    bert.save_pretrained(model, str(folder),
                         config_extra={"id2label": ID2LABEL, "label2id": label2id, "ours": ours})
    WordPiece.from_pretrained(minilm_dir).save(str(folder))
    return str(folder), model


def test_our_tagger_is_an_hf_token_classifier(our_tagger, minilm_dir):
    """AutoModelForTokenClassification reads our folder with no missing or unexpected key and
    gives our logits on a padded batch; config.json holds HF's keys plus the caller's."""
    folder, ours = our_tagger
    config = json.loads(open(os.path.join(folder, "config.json")).read())
    assert config["architectures"] == ["BertForTokenClassification"]
    assert config["model_type"] == "bert" and config["hidden_size"] == 384
    assert config["id2label"] == ID2LABEL and config["label2id"]["B-MISC"] == 7
    assert config["ours"] == {"scheme": "bio", "max_len": 128}
    ref, info = transformers.AutoModelForTokenClassification.from_pretrained(
        folder, attn_implementation="eager", output_loading_info=True)
    assert type(ref).__name__ == "BertForTokenClassification"
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    ids, mask, types = hf_batch(minilm_dir)
    with torch.no_grad():
        logits = ours(ids, mask, types)
        logits_ref = ref.eval()(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    assert logits.shape == (len(SENTENCES), ids.shape[1], len(LABELS))
    assert max_diff_on_real_positions(logits, logits_ref, mask) <= 1e-4
    assert ref.config.id2label[7] == "B-MISC"


def test_our_tagger_runs_in_hf_pipeline(our_tagger):
    """pipeline("token-classification") on our folder tags each piece with our argmax label:
    HF drops "O" pieces, so the pieces it returns are exactly those we tag otherwise."""
    folder, ours = our_tagger
    text = "EU rejects German call to boycott British lamb ."
    tagged = transformers.pipeline("token-classification", model=folder, tokenizer=folder)(text)
    ids = transformers.BertTokenizerFast.from_pretrained(folder)(text, return_tensors="pt")
    with torch.no_grad():
        pred = ours(ids["input_ids"]).argmax(-1)[0].tolist()
    expect = {i: LABELS[p] for i, p in enumerate(pred[1:-1], start=1) if LABELS[p] != "O"}
    assert expect, "the random classifier should tag some piece other than O"
    assert {t["index"]: t["entity"] for t in tagged} == expect


def test_our_tagger_round_trips(our_tagger):
    """token_classifier_from_pretrained gives back the same weights and the raw config.json;
    from_pretrained on the same folder gives the encoder alone (classifier.* ignored by name)."""
    folder, ours = our_tagger
    back, config = bert.token_classifier_from_pretrained(folder)
    assert isinstance(back, bert.TokenClassifier) and config["id2label"] == ID2LABEL
    for (k, v), (k2, v2) in zip(ours.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    encoder = bert.from_pretrained(folder)
    assert isinstance(encoder, bert.Bert) and encoder.mlm is None
    assert torch.equal(encoder.emb.word.weight, ours.bert.emb.word.weight)


VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "eu", "rejects", "german", "call", "to",
         "boycott", "british", "lamb", ".", "peter", "black", "##burn", "brussels", "1996"]


TINY = dict(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=37)
# Keys a tagger's checkpoint may carry beside its own, all unused by NER: older conversions such as
# dslim/bert-base-NER keep the pooler, and one made from a masked-LM model may keep its head,
# whole or in part.
EXTRA = {"nothing": [], "a pooler": ["bert.pooler.dense.weight", "bert.pooler.dense.bias"],
         "part of an MLM head": ["cls.predictions.bias"], "an MLM head": list(bert.MLM_HEAD)}


def add_keys(folder, cfg, keys):
    """Add `keys` (sized by cfg, random) to the folder's model.safetensors."""
    from safetensors.torch import load_file, save_file
    torch.manual_seed(2)
    donor = transformers.BertForPreTraining(cfg).state_dict()  # holds the pooler and both heads
    path = os.path.join(folder, "model.safetensors")
    sd = load_file(path)
    assert not sd.keys() & set(keys), "the key is there already"
    sd |= {k: torch.randn_like(donor[k]) for k in keys}
    save_file(sd, path, metadata={"format": "pt"})


@pytest.mark.parametrize("extra", EXTRA)
def test_hf_tagger_loads_into_ours(tmp_path, extra):
    """A tiny random BertForTokenClassification saved by HF's own save_pretrained (keys under
    `bert.`, no pooler), with EXTRA's keys added: HF's BertForTokenClassification reads it back
    unchanged, and ours gives HF's logits and id2label as stored, string keys and all."""
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    cfg = transformers.BertConfig(**TINY, id2label=dict(enumerate(tags)))
    torch.manual_seed(0)
    ref = transformers.BertForTokenClassification(cfg).eval()
    randomize_norms_and_biases(ref)
    ref.save_pretrained(str(tmp_path))
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    add_keys(str(tmp_path), cfg, EXTRA[extra])
    hf, info = transformers.BertForTokenClassification.from_pretrained(
        str(tmp_path), output_loading_info=True)
    assert not info["missing_keys"], info
    ours, config = bert.token_classifier_from_pretrained(str(tmp_path))
    assert config["id2label"] == {str(i): tag for i, tag in enumerate(tags)}
    assert config["architectures"] == ["BertForTokenClassification"]
    ids = torch.randint(0, len(VOCAB), (13, 7))  # odd sizes so a transposed dimension fails loudly
    mask = torch.ones_like(ids)
    mask[3, 4:] = 0
    mask[7, 1:] = 0
    with torch.no_grad():
        logits = ours.eval()(ids, mask)
        logits_ref = ref(input_ids=ids, attention_mask=mask).logits
        logits_hf = hf.eval()(input_ids=ids, attention_mask=mask).logits
    assert logits.shape == (13, 7, len(tags))
    assert max_diff_on_real_positions(logits, logits_ref, mask) <= 1e-5
    assert max_diff_on_real_positions(logits_hf, logits_ref, mask) <= 1e-5
    encoder = bert.from_pretrained(str(tmp_path)).eval()  # the classifier ignored by name
    with torch.no_grad():
        h, h_ref = encoder(ids, mask), ref.bert(input_ids=ids, attention_mask=mask)[0]
    assert max_diff_on_real_positions(h, h_ref, mask) <= 1e-5
    assert (encoder.mlm is not None) == (extra == "an MLM head"), "a head is loaded whole or not"


@pytest.mark.parametrize("head", [[], ["cls.predictions.bias"], list(bert.MLM_HEAD[:2]),
                                  list(bert.MLM_HEAD)])
def test_check_mlm_head_names_what_hf_would_make_up(tmp_path, head):
    """A bare encoder saved by HF with `head`'s keys added: check_mlm_head, run before the
    masked-LM stage, passes a whole head and names exactly the keys that HF's BertForMaskedLM
    reports missing (and would initialise at random) for none or part of one. The encoder itself
    loads either way, as HF's BertModel does, and equals HF's."""
    cfg = transformers.BertConfig(**TINY)
    torch.manual_seed(0)
    ref = transformers.BertModel(cfg, add_pooling_layer=False).eval()
    randomize_norms_and_biases(ref)
    ref.save_pretrained(str(tmp_path))
    add_keys(str(tmp_path), cfg, head)
    _, info = transformers.BertForMaskedLM.from_pretrained(str(tmp_path), output_loading_info=True)
    alias = {"cls.predictions.decoder.bias"}  # HF's second name for cls.predictions.bias
    hf_missing = sorted(set(info["missing_keys"]) - alias)
    if not hf_missing:
        bert.check_mlm_head(str(tmp_path))
    else:
        with pytest.raises(ValueError, match="has no masked-LM head, or only part of one") as e:
            bert.check_mlm_head(str(tmp_path))
        assert sorted(re.search(r"missing ([^)]*)\)", str(e.value))[1].split(", ")) == hf_missing
    ids = torch.randint(0, len(VOCAB), (13, 7))
    ours = bert.from_pretrained(str(tmp_path)).eval()
    with torch.no_grad():
        assert max_diff_on_real_positions(ours(ids), ref(input_ids=ids)[0], ids >= 0) <= 1e-5
    assert (ours.mlm is not None) == (head == list(bert.MLM_HEAD))


def test_checkpoint_without_classifier_is_not_a_tagger(minilm_dir):
    """MiniLM is a bare encoder: the error names the file and the missing key."""
    with pytest.raises(ValueError, match=r"model.safetensors: no classifier.weight: this is not a "
                                         r"token-classification checkpoint"):
        bert.token_classifier_from_pretrained(minilm_dir)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_disk_is_an_oserror(our_tagger, tmp_path):
    """The weights written to a full disk (Linux's /dev/full): an OSError, which callers catch to
    say "make room", not safetensors' own error type."""
    _, ours = our_tagger
    os.symlink("/dev/full", tmp_path / "model.safetensors")
    with pytest.raises(OSError, match="No space left"):
        bert.save_pretrained(ours, str(tmp_path), config_extra={"id2label": ID2LABEL})


@pytest.mark.parametrize("resolves, proxy, cache_only", [
    (False, "", True), (True, "", False), (False, "http://proxy:3128", False)])
def test_an_unreachable_hub_is_asked_from_the_cache_only(monkeypatch, resolves, proxy, cache_only):
    """Offline (the Hub's name does not resolve) the files come from the cache alone, at once;
    huggingface_hub itself retried for about 30 s before saying so. Behind a proxy, which resolves
    names itself, the Hub is asked."""
    import socket

    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError
    asked = []

    def fake_download(repo_id, filename, local_files_only=False, **kw):
        asked.append(local_files_only)
        raise LocalEntryNotFoundError("not in the cache")

    def getaddrinfo(host, port, *a, **k):
        if not resolves:
            raise socket.gaierror(-2, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", port))]
    for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(k, raising=False)
    if proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    with pytest.raises(OSError, match="not in the Hub cache and the Hub is unreachable"):
        bert.checkpoint_files("bert-base-multilingual-cased", ["config.json"])
    assert asked == [cache_only]
