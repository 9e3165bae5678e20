import math

import pytest
import torch
import torch.nn.functional as F

from emotions_hf.configuration_avcanet import AVCANetConfig
from emotions_hf.loss_avcanet import AVCANetLoss, EPCELoss, polarity_penalty

# eMotions classes: 0 Excitation (+), 1 Fear (-), 2 Neutral (0), 3 Relaxation (+), 4 Sadness (-), 5 Tension (-).
GAMMA = {"positive": 0.3, "neutral": 0.5, "negative": 0.7}


def epce(config_overrides=None):
    config = AVCANetConfig(polarity_gamma=GAMMA, **(config_overrides or {}))
    return EPCELoss(config.polarity_ids(), config.polarity_gamma)


def hand_ce(row, label):
    return -(row[label] - math.log(sum(math.exp(v) for v in row)))


def test_epce_matches_a_hand_computed_case():
    rows = [
        [0.1, 0.0, 0.2, 2.0, 0.0, 0.3],  # label Excitation (+), predicted Relaxation (+): same polarity, weight 1
        [0.0, 0.5, 1.5, 0.0, 0.2, 0.1],  # label Fear (-), predicted Neutral: weight 1 + γ_neg
        [0.3, 0.0, 1.0, 0.2, 0.0, 0.0],  # label Neutral, predicted Neutral: weight 1
        [0.0, 0.1, 0.4, 0.0, 1.2, 0.0],  # label Neutral, predicted Sadness (-): weight 1 + γ_neu
        [0.9, 0.2, 0.0, 0.0, 0.0, 0.1],  # label Tension (-), predicted Excitation (+): weight 1 + γ_neg
    ]
    labels = [0, 1, 2, 2, 5]
    weights = [1.0, 1.7, 1.0, 1.5, 1.7]
    expected = sum(w * hand_ce(r, y) for r, y, w in zip(rows, labels, weights)) / len(rows)
    loss = epce()(torch.tensor(rows, dtype=torch.float64), torch.tensor(labels))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_polarity_weight_carries_no_gradient():
    torch.manual_seed(0)
    logits = torch.randn(8, 6, requires_grad=True)
    labels = torch.randint(0, 6, (8,))
    criterion = epce()
    weight = polarity_penalty(logits, labels, criterion.class_polarity, criterion.class_gamma)
    assert not weight.requires_grad
    criterion(logits, labels).backward()
    # d/dlogits of mean_i(w_i * CE_i) with w_i held constant: w_i * (softmax_i - onehot_i) / N.
    expected = weight[:, None] * (logits.detach().softmax(-1) - F.one_hot(labels, 6)) / len(labels)
    torch.testing.assert_close(logits.grad, expected)


def test_ce_loss_type_is_plain_cross_entropy():
    torch.manual_seed(1)
    logits, labels = torch.randn(5, 6), torch.randint(0, 6, (5,))
    config = AVCANetConfig(loss_type="ce")
    criterion = EPCELoss(config.polarity_ids(), config.polarity_gamma, gamma_enabled=False)
    torch.testing.assert_close(criterion(logits, labels), F.cross_entropy(logits, labels))


def test_multitask_loss_sums_the_terms_and_skips_silent_audio():
    torch.manual_seed(2)
    config = AVCANetConfig(polarity_gamma=GAMMA)
    loss = AVCANetLoss(config)
    fused, visual, audio = torch.randn(3, 4, 6).unbind(0)
    labels = torch.tensor([0, 1, 2, 3])
    mask = torch.tensor([True, False, True, False])
    terms = loss(fused, labels, visual, audio, mask)
    single = loss.criterion
    torch.testing.assert_close(terms.fused_loss, single(fused, labels))
    torch.testing.assert_close(terms.visual_loss, single(visual, labels))
    torch.testing.assert_close(terms.audio_loss, single(audio[mask], labels[mask]))
    torch.testing.assert_close(terms.loss, terms.fused_loss + terms.visual_loss + terms.audio_loss)

    silent = loss(fused, labels, visual, audio, torch.zeros(4, dtype=torch.bool))
    assert silent.audio_loss is None
    torch.testing.assert_close(silent.loss, silent.fused_loss + silent.visual_loss)


def test_single_task_loss_is_the_fused_term():
    config = AVCANetConfig(use_multitask_loss=False)
    terms = AVCANetLoss(config)(torch.randn(2, 6), torch.tensor([1, 4]))
    assert terms.visual_loss is None and terms.audio_loss is None
    assert terms.loss is terms.fused_loss


def test_dataset_without_neutral_class_uses_its_own_polarities():
    labels = {0: "Anger", 1: "Joy"}
    config = AVCANetConfig(id2label=labels, label2id={v: k for k, v in labels.items()},
                           label2polarity={"Anger": "negative", "Joy": "positive"}, polarity_gamma=GAMMA)
    criterion = EPCELoss(config.polarity_ids(), config.polarity_gamma)
    logits = torch.tensor([[0.0, 1.0]])  # predicts Joy for an Anger video: weight 1 + γ_neg
    expected = 1.7 * hand_ce([0.0, 1.0], 0)
    assert criterion(logits, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-6)


def test_labels_with_the_default_polarity_train_with_plain_cross_entropy():
    torch.manual_seed(3)
    config = AVCANetConfig(num_labels=4, polarity_gamma=GAMMA, use_multitask_loss=False)
    assert config.default_polarity_labels and not config.uses_ep_ce
    logits, labels = torch.randn(6, 4), torch.randint(0, 4, (6,))
    torch.testing.assert_close(AVCANetLoss(config)(logits, labels).loss, F.cross_entropy(logits, labels))
