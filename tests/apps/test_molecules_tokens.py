"""Unit tests for apps/molecules/tokens.py: SMILES / SELFIES round trips on RDKit's bundled NCI molecules and hand
cases, the regex's refusal of strings it cannot cover, and the vocabulary's ids, encoding, decoding and JSON form.
"""

import json
import os

import numpy as np
import pytest
import torch
from rdkit import RDConfig

from apps.molecules import chem
from apps.molecules.tokens import SPECIALS, Tokenizer, Vocab
from shared.errors import CheckpointError, ConfigError


@pytest.fixture(scope="module")
def nci() -> list[str]:
    """The valid molecules of RDKit's first_5K.smi (4,999 NCI compounds), as written in the file."""
    with open(os.path.join(RDConfig.RDDataDir, "NCI", "first_5K.smi")) as f:
        smiles = [line.split()[0] for line in f if line.strip()]
    return [s for s in smiles if chem.mol(s) is not None]


HAND = {
    "c1cc[nH]c1": ["c", "1", "c", "c", "[nH]", "c", "1"],
    "ClCCBr": ["Cl", "C", "C", "Br"],
    "C%10CCCCC%10": ["C", "%10", "C", "C", "C", "C", "C", "%10"],
    "N[C@@H](C)C(=O)O": ["N", "[C@@H]", "(", "C", ")", "C", "(", "=", "O", ")", "O"],
    "F/C=C\\F": ["F", "/", "C", "=", "C", "\\", "F"],
    "[Na+].[O-]C#N": ["[Na+]", ".", "[O-]", "C", "#", "N"],
    "BrB(Cl)c1ccsc1": ["Br", "B", "(", "Cl", ")", "c", "1", "c", "c", "s", "c", "1"],
}


@pytest.mark.parametrize("smiles", list(HAND))
def test_smiles_hand_cases(smiles):
    tok = Tokenizer("smiles")
    assert tok.split(smiles) == HAND[smiles]
    assert tok.join(tok.split(smiles)) == smiles


def test_smiles_round_trip_on_nci(nci):
    tok = Tokenizer("smiles")
    assert len(nci) > 4900
    for s in nci:
        assert tok.join(tok.split(s)) == s
        c = chem.canonical(s)
        assert tok.join(tok.split(c)) == c


@pytest.mark.parametrize("bad", ["C{C}", "CC O", "C&C", "C%1C", "Zn", "C\x00C"])
def test_regex_gap_raises(bad):
    with pytest.raises(ValueError, match="outside the tokenizer"):
        Tokenizer("smiles").split(bad)


def test_selfies_round_trip_gives_the_same_molecule(nci):
    tok = Tokenizer("selfies")
    for s in HAND:
        assert chem.canonical(tok.join(tok.split(s))) == chem.canonical(s)
    failures = 0
    for s in nci[:2000]:
        c = chem.canonical(s)
        try:
            tokens = tok.split(c)
        except ValueError:  # SELFIES' default valence constraints refuse a few hypervalent NCI molecules
            failures += 1
            continue
        assert all(t == "." or (t[0], t[-1]) == ("[", "]") for t in tokens)  # "." separates fragments
        assert chem.canonical(tok.join(tokens)) == c
    assert failures < 10


def test_selfies_encoder_failure_is_value_error():
    with pytest.raises(ValueError, match="SELFIES cannot encode"):
        Tokenizer("selfies").split("C1CC")  # unclosed ring


def test_unknown_kind_is_config_error():
    with pytest.raises(ConfigError, match="choose one of smiles, selfies"):
        Tokenizer("inchi")


def test_vocab_specials_and_order():
    tok = Tokenizer()
    vocab = Vocab.build([tok.split("CCO"), tok.split("c1ccccc1Cl"), tok.split("CN")])
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id) == (0, 1, 2)
    assert vocab.itos[:3] == list(SPECIALS)
    assert vocab.itos[3:] == sorted(["C", "O", "c", "1", "Cl", "N"])
    assert len(vocab) == 9 and "Cl" in vocab and "Br" not in vocab
    # min_count: "N" and "O" are seen once, "C" three times
    assert "N" not in Vocab.build([tok.split("CCO"), tok.split("CN"), tok.split("CC")], min_count=2)


def test_vocab_encode_decode_round_trip(nci):
    tok = Tokenizer()
    token_lists = [tok.split(s) for s in nci[:1000]]
    vocab = Vocab.build(token_lists)
    max_len = max(map(len, token_lists)) + 2
    ids, kept = vocab.encode(token_lists, max_len)
    assert ids.dtype == torch.long and ids.shape == (1000, max_len) and kept.all()
    assert (ids[:, 0] == vocab.bos_id).all()
    lengths = torch.tensor([len(t) for t in token_lists])
    assert (ids[torch.arange(1000), lengths + 1] == vocab.eos_id).all()
    assert vocab.decode(ids) == token_lists
    for i in (0, 17, 999):
        assert ids[i, : lengths[i] + 2].tolist() == vocab.encode_one(token_lists[i])


def test_vocab_drops_too_long_unknown_and_empty():
    tok = Tokenizer()
    vocab = Vocab.build([tok.split("CCO")])
    lists = [tok.split("CCO"), tok.split("CCCCC"), tok.split("CCCC"), tok.split("CCN"), []]
    ids, kept = vocab.encode(lists, max_len=6)  # room for 4 tokens
    assert kept.tolist() == [True, False, True, False, False]
    assert (ids[~torch.from_numpy(kept)] == vocab.pad_id).all()
    assert ids[2].tolist() == [1, 3, 3, 3, 3, 2]
    assert vocab.encode_one(tok.split("CCN")) is None
    with pytest.raises(ConfigError, match="max_len"):
        vocab.encode(lists, max_len=2)


def test_vocab_encode_in_chunks_matches_encode_one(monkeypatch):
    from apps.molecules import tokens

    monkeypatch.setattr(tokens, "_CHUNK", 3)
    tok = Tokenizer()
    lists = [tok.split(s) for s in ["CCO", "c1ccccc1", "CN", "CCCCCCCCCCCC", "OCC", "N#N", "CO"]]
    vocab = Vocab.build(lists[:3])
    ids, kept = vocab.encode(lists, max_len=12)
    for row, tokens_, k in zip(ids.tolist(), lists, kept):
        one = vocab.encode_one(tokens_)
        assert k == (one is not None and len(one) <= 12)
        if k:
            assert row == one + [0] * (12 - len(one))


def test_vocab_decode_stops_at_eos_and_skips_pads():
    vocab = Vocab(["C", "O"])  # C=3, O=4
    ids = torch.tensor([[1, 3, 4, 2, 3, 3], [3, 0, 3, 2, 0, 0], [1, 3, 1, 4, 0, 0]])
    assert vocab.decode(ids) == [["C", "O"], ["C", "C"], ["C", "<bos>", "O"]]
    assert vocab.decode(np.array([[1, 2, 3]])) == [[]]


def test_vocab_save_load_identical(tmp_path):
    tok = Tokenizer("selfies")
    vocab = Vocab.build([tok.split("c1ccccc1O"), tok.split("CC(=O)N")])
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(vocab.to_dict()))
    loaded = Vocab.from_dict(json.loads(path.read_text()))
    assert loaded == vocab and loaded.itos == vocab.itos and loaded.stoi == vocab.stoi
    with pytest.raises(CheckpointError, match="corrupt"):
        Vocab.from_dict({"tokens": ["C", "<pad>", "<bos>", "<eos>"]})
