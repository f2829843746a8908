"""bert.py against HF transformers' BertModel / BertForMaskedLM on the same weights (fp32, <= 1e-5)."""
import os

import pytest
import torch
import transformers

import bert

SENTENCES = [("EU rejects German call to boycott British lamb .", None),
             ("Peter Blackburn", "BRUSSELS 1996-08-22"),
             ("The European Commission said on Thursday it disagreed with German advice .", "Only France and Britain backed Fischler 's proposal .")]


def hf_batch(folder):
    """Real sentences, some as pairs (token types 0/1), padded to the longest: masks and types both matter."""
    tok = transformers.BertTokenizerFast.from_pretrained(folder)
    a, b = zip(*SENTENCES)
    enc = tok([x for x in a], [y or "" for y in b], padding=True, return_tensors="pt")
    assert (enc["attention_mask"] == 0).any() and (enc["token_type_ids"] == 1).any(), "batch must exercise pad and types"
    return enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]


def max_diff_on_real_positions(ours, theirs, mask):
    return (ours - theirs).abs()[mask.bool()].max().item()


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
    """A random-init HF BertForMaskedLM of mBERT's shape (vocab 119547, H=768, A=12; 2 layers for CI
    time), saved the way the Hub stores it: safetensors, `bert.` prefix, MLM head, decoder tied."""
    cfg = transformers.BertConfig(vocab_size=119547, hidden_size=768, num_attention_heads=12,
                                  intermediate_size=3072, num_hidden_layers=2)
    torch.manual_seed(0)
    ref = transformers.BertForMaskedLM(cfg).eval()
    with torch.no_grad():  # random LayerNorm/bias values so a swapped gamma/beta or bias would show
        for n, p in ref.named_parameters():
            if "LayerNorm" in n or n.endswith("bias"):
                p.normal_(0, 0.5).add_(1.0 if n.endswith("LayerNorm.weight") else 0.0)
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
        out = ref(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
    assert max_diff_on_real_positions(h, out.hidden_states[-1], mask) <= 1e-5
    assert logits.shape == (13, 7, 119547)
    assert max_diff_on_real_positions(logits, out.logits, mask) <= 1e-5
    assert ours.mlm.decoder.weight is ours.emb.word.weight, "decoder must stay tied to the word embeddings"
    clf = bert.TokenClassifier(ours, num_labels=9).eval()
    assert clf(ids, mask).shape == (13, 7, 9)


def test_legacy_gamma_beta_names_load(mbert_shaped, tmp_path):
    """TF-era checkpoints name LayerNorm parameters gamma/beta; they must load to the same model."""
    from safetensors.torch import load_file, save_file
    folder, _ = mbert_shaped
    sd = load_file(os.path.join(folder, "model.safetensors"))
    sd = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
          for k, v in sd.items()}
    save_file(sd, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(open(os.path.join(folder, "config.json")).read())
    a, b = bert.from_pretrained(folder), bert.from_pretrained(str(tmp_path))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka


def copy_checkpoint(src, dst, edit):
    from safetensors.torch import load_file, save_file
    sd = edit(load_file(os.path.join(src, "model.safetensors")))
    save_file(sd, os.path.join(dst, "model.safetensors"))
    with open(os.path.join(src, "config.json")) as f, open(os.path.join(dst, "config.json"), "w") as g:
        g.write(f.read())


def test_missing_and_unexpected_tensors_are_named(minilm_dir, tmp_path):
    def edit(sd):
        sd.pop("encoder.layer.3.output.dense.bias")
        sd["encoder.layer.3.output.extra"] = torch.zeros(1)
        return sd
    copy_checkpoint(minilm_dir, tmp_path, edit)
    with pytest.raises(ValueError, match=r"missing \['encoder.layer.3.output.dense.bias'\].*unexpected \['encoder.layer.3.output.extra'\]"):
        bert.from_pretrained(str(tmp_path))


def test_wrong_shape_is_an_error(minilm_dir, tmp_path):
    def edit(sd):
        sd["embeddings.word_embeddings.weight"] = sd["embeddings.word_embeddings.weight"][:100].clone()
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
    assert "OSError" in r.stderr and "Pass a local folder" in r.stderr, r.stderr[-2000:]


def test_unsupported_activation_is_rejected(minilm_dir, tmp_path):
    import json
    cfg = json.load(open(os.path.join(minilm_dir, "config.json")))
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "hidden_act": "relu"}))
    with pytest.raises(ValueError, match="hidden_act='relu'"):
        bert.BertConfig.from_json(str(tmp_path / "config.json"))


def test_training_mode_uses_dropout_and_gradients_flow(minilm_dir):
    """Dropout is active in train mode (two passes differ), off in eval (equal); every weight gets a grad."""
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
    """Our save_pretrained writes HF layout: our loader and HF's BertForMaskedLM read back the same weights."""
    folder, ref = mbert_shaped
    ours = bert.from_pretrained(folder)
    bert.save_pretrained(ours, str(tmp_path))
    back = bert.from_pretrained(str(tmp_path))
    for (k, v), (k2, v2) in zip(ours.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    hf = transformers.BertForMaskedLM.from_pretrained(str(tmp_path))
    for k, v in ref.state_dict().items():
        assert torch.equal(v, hf.state_dict()[k]), k


def test_hub_id_fetches_only_the_named_files(minilm_dir, monkeypatch, tmp_path):
    """The Hub branch of checkpoint_files, offline: a stand-in hf_hub_download serves the MiniLM folder's
    files. Only the named files are asked for; an optional file the repo lacks is skipped; a required one
    that is missing is a FileNotFoundError naming it."""
    import shutil
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError
    asked = []

    def fake_download(repo_id, filename, **kw):
        asked.append((repo_id, filename))
        if filename == "tokenizer_config.json":
            raise EntryNotFoundError(f"{repo_id} has no {filename}")
        return shutil.copy(os.path.join(minilm_dir, filename), str(tmp_path / filename))  # "the cache"

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    paths = bert.checkpoint_files("org/some-bert", ["config.json", "model.safetensors"], optional=["tokenizer_config.json"])
    assert asked == [("org/some-bert", "config.json"), ("org/some-bert", "model.safetensors"),
                     ("org/some-bert", "tokenizer_config.json")]
    assert sorted(paths) == ["config.json", "model.safetensors"]
    m = bert.from_pretrained("org/some-bert")
    assert m.cfg.hidden_size == 384
    with pytest.raises(FileNotFoundError, match="has no tokenizer_config.json"):
        bert.checkpoint_files("org/some-bert", ["tokenizer_config.json"])


def test_tied_tensors_stored_under_the_decoder_names_load(mbert_shaped, tmp_path):
    """Some conversions keep the tied word embedding as cls.predictions.decoder.weight (and the output bias
    as cls.predictions.decoder.bias) instead of the embeddings' names: the same model must come out."""
    def edit(sd):
        sd["cls.predictions.decoder.weight"] = sd.pop("bert.embeddings.word_embeddings.weight")
        sd["cls.predictions.decoder.bias"] = sd.pop("cls.predictions.bias")
        return sd
    folder, _ = mbert_shaped
    copy_checkpoint(folder, str(tmp_path), edit)
    a, b = bert.from_pretrained(folder), bert.from_pretrained(str(tmp_path))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
