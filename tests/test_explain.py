"""explain.py: each stage printed from the pipeline's own functions, checked against them here
(wordpiece's pieces, conll.featurize's windows, the tagger's own tags, conlleval's counts of the
one sentence, finetune's rates, unfreezing and schedule)."""
import os
import re
from dataclasses import replace

import pytest
import torch

import bert
import conll
import conlleval
import experiments
import explain
import finetune
import tagger
import wordpiece
from conftest import TINY, bert_folder, cpu_only
from finetune import FinetuneConfig


@pytest.fixture(scope="module")
def run_dir(trained):
    """A small saved run's folder (conftest's trained)."""
    _, exp, rec = trained
    return os.path.join(exp.out, f"run-{rec['key']}")


def test_pieces_are_featurizes_and_each_unk_says_why(tmp_path):
    """Stage 1: each word's pieces and ids are encode_words' (what featurize uses), and each
    [UNK] names its cause: no pieces spell the word, it is over HF's 100 characters, or nothing is
    left of it after cleaning (a zero-width space)."""
    tok = wordpiece.WordPiece.from_pretrained(bert_folder(str(tmp_path / "b"), layers=1, hidden=8))
    words = [tok.tokens[-1], "жж", "a" * 101, "\u200b"]  # a piece of the vocab, then 3 [UNK]
    lines = []
    explain.pieces(tok, words, lines.append)
    for w, ids in zip(words, tok.encode_words(words)):
        want = " ".join(f"{p} ({i})" for p, i in zip(tok.convert_ids_to_tokens(ids), ids))
        mark = f"   [label on {tok.tokens[ids[0]]}]" * (len(ids) > 1)
        assert f"   {w:<16} -> {want}{mark}" in lines, (w, lines)
    reasons = [line.split("[UNK]: ")[1] for line in lines if "[UNK]: " in line]
    assert len(reasons) == 3
    assert reasons[0].startswith("no run of vocab pieces spells 'жж'")
    assert "over 100 characters" in reasons[1] and "nothing left after cleaning" in reasons[2]


def test_windows_are_featurizes(run_dir):
    """Stage 2 with --max-len 8: every window conll.featurize makes, its ids and label ids (-100
    where no word starts) as the batch the model takes holds them, and the words each one scores."""
    t = tagger.load_tagger(run_dir, torch.device("cpu"))
    sent = conll.read_conll(os.path.join(TINY, "test.txt"))[0]
    lines = []
    feats, ids, mask = explain.windows(t, sent, 8, torch.device("cpu"), lines.append)
    label2id = {x: i for i, x in enumerate(t.labels)}
    want = conll.featurize([replace(sent, tags=conll.to_bio(sent.tags))], t.tok, label2id, 8)
    assert [f.input_ids for f in feats] == [f.input_ids for f in want] and len(feats) > 1
    shown = [eval(x.split("input ids")[1]) for x in lines if x.startswith("     input ids")]
    labels = [eval(x.split("label ids")[1].split("  (")[0]) for x in lines
              if x.startswith("     label ids")]
    assert shown == [f.input_ids for f in want]
    assert labels == [f.labels + [-100] * (len(f.input_ids) - len(f.labels)) for f in want]
    assert mask.sum(1).tolist() == [len(f.input_ids) for f in want] == (ids != 0).sum(1).tolist()
    scored = [x for x in lines if x.startswith("   window ")]
    assert scored[0].endswith(f"scores words 1-{max(i for i, _ in want[0].first) + 1}")


def test_the_answer_is_the_taggers_and_the_score_conllevals(run_dir):
    """Stage 3 on a gold sentence: the tags equal tagger.tag_sentences' (the pipeline's own
    prediction), the spans conll.spans', the other scheme conll's conversion, and the sentence's
    precision, recall and F1 conlleval's own on the same tags. With --max-len 8 (several windows
    a sentence), each word's scores still come from the window that predicts it."""
    t = tagger.load_tagger(run_dir, torch.device("cpu"))
    for sent in conll.read_conll(os.path.join(TINY, "test.txt")):
        lines = []
        with cpu_only():
            pred = explain.explain(run_dir, sent, out=lines.append)
            want = tagger.tag_sentences(t, [sent], t.scheme)[0]
        assert pred == want
        text = "\n".join(lines)
        assert f"tags, BIO (the model's scheme): {' '.join(pred)}" in text
        assert f"tags, IOB1 (Sec 3.1): {' '.join(conll.to_iob1(pred))}" in text
        assert f"spans conlleval reads: {explain.show_spans(sent.words, conll.spans(pred))}" in text
        gold_scheme = conll.to_scheme(pred, conll.detect_scheme([sent.tags]) or "bio")
        s = conlleval.evaluate([sent.tags], [gold_scheme])
        assert (f"conlleval: precision {s['precision']:.2f}, recall {s['recall']:.2f}, F1 "
                f"{s['f1']:.2f} ({s['correct']} of {s['gold']} gold spans found") in text
        start = next(k for k, x in enumerate(lines) if x.startswith("\n3. ")) + 1
        tops = [x.split() for x in lines[start:start + len(sent.words)]]  # a line per word
        assert [x[0] for x in tops] == sent.words
        assert conll.to_scheme([x[1] for x in tops], t.scheme) == pred  # the argmax, made valid
        probs = [float(x[2].rstrip(",")) for x in tops]
        assert all(0 < q <= 1 for q in probs)
        with cpu_only():
            assert explain.explain(run_dir, sent, 8, out=lambda s: None) == tagger.tag_sentences(
                replace(t, max_len=8), [sent], t.scheme)[0]


def test_a_bare_bert_shows_its_pieces_and_windows_and_says_why_no_more(tmp_path):
    folder = bert_folder(str(tmp_path / "b"), layers=1, hidden=8)
    lines = []
    sent = tagger.text_sentence("EU rejects German call .")
    assert explain.explain(folder, sent, out=lines.append) is None
    text = "\n".join(lines)
    assert "1. Words and pieces" in text and "2. The windows" in text
    assert "has no token classifier" in text


def test_method_prints_what_training_uses(tmp_path):
    """Stage 4: each unit's rate is param_groups' for that depth, each epoch lists the units
    finetune.unfreeze lets train, and the plot's bars follow lr_factor over the updates."""
    cfg = FinetuneConfig(lr=3e-5, delta=2.6, unfreeze=3, epochs=5, schedule="linear")
    bcfg = bert.BertConfig(num_hidden_layers=12)
    lines = []
    explain.method(cfg, bcfg, "a test", 878, out=lines.append)
    with torch.device("meta"):
        model = bert.TokenClassifier(bert.Bert(bcfg), 9)
    rates = {g["depth"]: g["lr"] for g in finetune.param_groups(model, 3e-5, 2.6)}
    names = finetune.unit_names(12)
    for depth, name in enumerate(names):
        assert f"   {name:<12} {rates[depth]:.3g}" in lines
    for epoch in range(5):
        n = finetune.unfreeze(model, epoch, 3)
        assert f"   epoch {epoch + 1}: classifier" + f" to {names[n - 1]} ({n} units)" * (n > 1) \
            in lines
    assert "   epoch 1: classifier" in lines  # footnote 9's notebook: the classifier alone
    assert "   epoch 2: classifier to layer 9 (4 units)" in lines
    assert "   epoch 5: classifier to embeddings (14 units)" in lines
    assert "The rate's multiplier over 878 updates (given): linear (Sec 3.3; Table 4)" in \
        "\n".join(lines)
    assert not any("warning" in line for line in lines)  # 5 epochs reach every unit
    heights = bar_heights(lines)
    peak = heights.index(max(heights))  # where warmup ends: update 87 of 878, column 5 of 60
    assert len(heights) == 60 and abs(peak - 87 * 60 // 878) <= 1
    assert heights[:peak + 1] == sorted(heights[:peak + 1])  # up, then down
    assert heights[peak:] == sorted(heights[peak:], reverse=True) and heights[-1] <= 1
    lines = []
    explain.method(replace(cfg, schedule="constant"), bcfg, "a test", 100, out=lines.append)
    assert bar_heights(lines) == [8] * 60  # Table 4's "without warmup": full height throughout


def bar_heights(lines):
    """The plot's columns as heights, counted in '#' rows."""
    bars = [x.split("|")[1] for x in lines if re.match(r"   [01]\.\d\d \|", x)]
    return [sum(row[c] == "#" for row in bars) for c in range(len(bars[0]))]


def test_explain_command_line(run_dir, capsys):
    """`explain --model RUN "text"`, `--conll FILE --sentence N` and `--method --updates N`;
    no sentence, or one past the file's end, is an error that says what to pass."""
    with cpu_only():
        experiments.main(["explain", "--model", run_dir, "EU rejects German call ."])
        out = capsys.readouterr().out
        assert "1. Words and pieces" in out and "3. The model's answer" in out
        experiments.main(["explain", "--model", run_dir, "--conll",
                          os.path.join(TINY, "test.txt"), "--sentence", "2"])
        assert "conlleval: precision" in capsys.readouterr().out
    experiments.main(["explain", "--method", "--model", run_dir, "--updates", "50"])
    assert "over 50 updates" in capsys.readouterr().out
    for blank in ([], ["   "], ["\t \n"]):  # none, or spaces only (an assert inside, before)
        with pytest.raises(ValueError, match="explain needs a sentence with a word in it"):
            experiments.main(["explain", "--model", run_dir, *blank])
    with pytest.raises(ValueError, match="--sentence=99: .* has 2 sentences|--sentence=99"):
        experiments.main(["explain", "--model", run_dir, "--conll",
                          os.path.join(TINY, "test.txt"), "--sentence", "99"])


def test_method_runs_as_the_readme_shows_it_offline(capsys, monkeypatch):
    """`explain --method --delta 2.6 --unfreeze 3` with nothing downloaded: mBERT's shape from
    BertConfig's default (12 layers), 4 epochs x ceil(14,041 / 16) = 4 x 878 = 3,512 updates from
    CoNLL-2003 English's published train sentences, and a warning that 3 layers an epoch over 4
    epochs never reach layers 2-0 and the embeddings (5 are needed). With --epochs 5 it is Tables
    5-6's "+ Task fine-tuning" plan: the classifier alone in epoch 1, everything (the embeddings
    included) in epoch 5, and no warning. No file is read from the Hub or the network, even with
    --data given (the published count is used, and named)."""
    import corpora
    monkeypatch.setattr(bert, "checkpoint_files", None)  # a model lookup would call it
    monkeypatch.setattr(corpora, "fetch", None)  # so would a download
    experiments.main(["explain", "--method", "--delta", "2.6", "--unfreeze", "3"])
    out = capsys.readouterr().out
    assert "4. The method (12 layers: BertConfig's default, mBERT's shape)" in out
    assert "over 3512 updates (4 epochs x ceil(14,041 / 16) = 878 updates: --lang en's" in out
    assert "   epoch 4: classifier to layer 3 (10 units)\n" in out and "epoch 5" not in out
    assert "warning: over 4 epochs, layer 2, layer 1, layer 0, embeddings never train" in out
    experiments.main(["explain", "--method", "--delta", "2.6", "--unfreeze", "3", "--epochs", "5",
                      "--lang", "de", "--data", "/nowhere"])
    out = capsys.readouterr().out
    assert "over 3975 updates (5 epochs x ceil(12,705 / 16) = 795 updates: --lang de's" in out
    assert "   epoch 1: classifier\n" in out
    assert "   epoch 5: classifier to embeddings (14 units)\n" in out
    assert "warning" not in out


@pytest.mark.parametrize("epochs, never", [
    (3, ["layer 5", "layer 4", "layer 3", "layer 2", "layer 1", "layer 0", "embeddings"]),
    (4, ["layer 2", "layer 1", "layer 0", "embeddings"]), (5, []), (6, [])])
def test_unfreezing_that_cannot_finish_is_named(epochs, never):
    """12 layers, 3 an epoch: epoch 1 trains the classifier alone, epoch 2 adds layers 11-9, ...,
    epoch 5 layers 2-0 and the embeddings (Sec 3.3's 5 epochs). Over 3 epochs layers 5-0 and the
    embeddings never train; over 4 layers 2-0 and the embeddings. finetune.unfreeze agrees epoch
    by epoch, and --method's warning names the same units, or is not printed."""
    with torch.device("meta"):
        model = bert.TokenClassifier(bert.Bert(bert.BertConfig()), 9)
    trained = {i for e in range(epochs) for i in range(finetune.unfreeze(model, e, 3))}
    names = finetune.unit_names(12)
    assert finetune.never_trained(12, 3, epochs) == never == [
        names[i] for i in range(14) if i not in trained]
    lines = []
    cfg = FinetuneConfig(unfreeze=3, epochs=epochs)
    explain.method(cfg, bert.BertConfig(), "a test", 100, out=lines.append)
    warned = [x for x in lines if "warning" in x]
    assert warned == ([f"   warning: over {epochs} epochs, {', '.join(never)} never train (Sec "
                       f"3.3: 12 layers, 3 an epoch, 5 epochs)"] if never else [])
