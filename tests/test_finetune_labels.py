"""Issue 11: fine-tuning on another label set with `from_pretrained(repo, num_labels=..., ignore_mismatched_sizes=True)`
or `id2label=...`: known label sets get their polarities, unknown labels a default polarity, one warning and CE."""

import logging

import pytest
import torch
import torch.nn.functional as F
from test_modeling_avcanet import make_inputs, tiny_config

from emotions_hf.configuration_avcanet import AVCANetConfig
from emotions_hf.labels import DEFAULT_POLARITY, EKMAN6, VIDEO_EMOTION8
from emotions_hf.modeling_avcanet import AVCANetForVideoClassification

LOGGER = "emotions_hf.configuration_avcanet"


@pytest.fixture
def polarity_warnings(caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    return lambda: [r.getMessage() for r in caplog.records if r.name == LOGGER and "no polarity" in r.getMessage()]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pretrained")
    torch.manual_seed(0)
    AVCANetForVideoClassification(tiny_config(use_multitask_loss=False)).save_pretrained(folder)
    return folder


def test_num_labels_gives_unknown_labels_the_default_polarity_one_warning_and_plain_ce(pretrained,
                                                                                     polarity_warnings):
    model = AVCANetForVideoClassification.from_pretrained(pretrained, num_labels=8, ignore_mismatched_sizes=True)
    config = model.config
    assert config.num_labels == 8 and config.id2label[7] == "LABEL_7"
    assert config.label2polarity == {f"LABEL_{i}": DEFAULT_POLARITY for i in range(8)}
    assert config.default_polarity_labels == tuple(f"LABEL_{i}" for i in range(8))
    assert config.loss_type == "ep_ce" and not config.uses_ep_ce
    messages = polarity_warnings()
    assert len(messages) == 1 and "falls back to plain cross-entropy" in messages[0]
    assert not model.criterion.criterion.gamma_enabled

    model.eval()
    inputs = make_inputs(config, batch=3)
    inputs["labels"] = torch.tensor([0, 5, 7])
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits.shape == (3, 8)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits.float(), inputs["labels"]))


def test_id2label_of_a_known_set_takes_its_polarities_and_keeps_ep_ce(pretrained, polarity_warnings):
    ve8 = VIDEO_EMOTION8
    model = AVCANetForVideoClassification.from_pretrained(pretrained, id2label=ve8.id2label, label2id=ve8.label2id,
                                                          ignore_mismatched_sizes=True)
    config = model.config
    assert config.label2polarity == ve8.polarity and config.default_polarity_labels == ()
    assert config.uses_ep_ce and model.criterion.criterion.gamma_enabled
    assert model.criterion.criterion.class_polarity.tolist() == config.polarity_ids()
    assert model.head.classifier.out_features == 8
    assert polarity_warnings() == []


def test_known_sets_match_by_name_in_any_case(polarity_warnings):
    labels = dict(enumerate(label.upper() for label in EKMAN6.labels))
    config = AVCANetConfig(id2label=labels, label2id={v: k for k, v in labels.items()})
    assert config.label2polarity == {label.upper(): p for label, p in EKMAN6.polarity.items()}
    assert config.uses_ep_ce and polarity_warnings() == []


def test_a_fine_tune_config_round_trips_without_a_second_warning(pretrained, tmp_path, polarity_warnings):
    model = AVCANetForVideoClassification.from_pretrained(pretrained, num_labels=8, ignore_mismatched_sizes=True)
    assert len(polarity_warnings()) == 1
    model.save_pretrained(tmp_path)
    config = AVCANetConfig.from_pretrained(tmp_path)
    assert {**config.to_dict(), "_name_or_path": ""} == {**model.config.to_dict(), "_name_or_path": ""}
    assert not config.uses_ep_ce
    reloaded = AVCANetForVideoClassification.from_pretrained(tmp_path)
    assert not reloaded.criterion.criterion.gamma_enabled
    assert len(polarity_warnings()) == 1  # no second warning: the saved map is complete


def test_a_complete_map_and_no_defaults_switch_ep_ce_back_on(pretrained, tmp_path, polarity_warnings):
    AVCANetForVideoClassification.from_pretrained(pretrained, num_labels=2,
                                                  ignore_mismatched_sizes=True).save_pretrained(tmp_path)
    config = AVCANetConfig.from_pretrained(tmp_path, label2polarity={"LABEL_0": "positive", "LABEL_1": "negative"},
                                           default_polarity_labels=())
    assert config.uses_ep_ce and config.polarity_ids() == [0, 2]


def test_reassigned_labels_are_completed_before_saving(tmp_path, polarity_warnings):
    config = AVCANetConfig()
    config.id2label = VIDEO_EMOTION8.id2label
    config.label2id = VIDEO_EMOTION8.label2id
    config.save_pretrained(tmp_path)
    loaded = AVCANetConfig.from_pretrained(tmp_path)
    assert loaded.label2polarity == VIDEO_EMOTION8.polarity and loaded.uses_ep_ce
    assert polarity_warnings() == []
