"""Label sets and emotion polarity for eMotions and the public sets AV-CANet is evaluated on.

The label order of eMotions is the authors' `classInd.txt` order (alphabetical). Raw label
strings seen in the wild ("Sad", "excitation", 1-based ids) are mapped back by `normalize_label`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

POLARITIES = ("positive", "neutral", "negative")
# Polarity given to a label no polarity map covers (e.g. the LABEL_0.. names of `num_labels=8`): it carries no
# information, so a config with such labels trains with plain cross-entropy instead of EP-CE.
DEFAULT_POLARITY = "neutral"


@dataclass(frozen=True)
class LabelSet:
    """An ordered list of class names with a polarity for each and accepted aliases."""

    name: str
    labels: tuple[str, ...]
    polarity: dict[str, str]
    aliases: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        missing = [label for label in self.labels if self.polarity.get(label) not in POLARITIES]
        if missing:
            raise ValueError(f"label set {self.name!r}: no valid polarity for {missing}")

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def normalize_label(self, raw) -> str:
        """Map a raw label (name in any case, alias, 0-based int or 1-based id string) to a class name.

        Integers are 0-based class ids; strings of digits are the authors' 1-based `classInd` ids.
        Raises `ValueError` for anything outside the set (`TypeError` for a bool).
        """
        if isinstance(raw, bool):
            raise TypeError(f"label {raw!r} is a bool, not a label of {self.name!r}")
        if isinstance(raw, int):
            if 0 <= raw < len(self.labels):
                return self.labels[raw]
            raise ValueError(f"label id {raw} is outside 0..{len(self.labels) - 1} of {self.name!r}")
        text = str(raw).strip()
        if text.isdigit():
            one_based = int(text)
            if 1 <= one_based <= len(self.labels):
                return self.labels[one_based - 1]
            raise ValueError(f"label id {text!r} is outside 1..{len(self.labels)} of {self.name!r}")
        folded = text.casefold()
        for label in self.labels:
            if label.casefold() == folded:
                return label
        for alias, label in self.aliases.items():
            if alias.casefold() == folded:
                return label
        raise ValueError(f"label {raw!r} is not one of {list(self.labels)} ({self.name!r})")


EMOTIONS = LabelSet(
    name="emotions",
    labels=("Excitation", "Fear", "Neutral", "Relaxation", "Sadness", "Tension"),
    polarity={
        "Excitation": "positive",
        "Fear": "negative",
        "Neutral": "neutral",
        "Relaxation": "positive",
        "Sadness": "negative",
        "Tension": "negative",
    },
    aliases={"Excitement": "Excitation", "Sad": "Sadness", "Relax": "Relaxation", "Tense": "Tension"},
)

VIDEO_EMOTION8 = LabelSet(
    name="ve8",
    labels=("Anger", "Anticipation", "Disgust", "Fear", "Joy", "Sadness", "Surprise", "Trust"),
    polarity={
        "Anger": "negative",
        "Anticipation": "positive",
        "Disgust": "negative",
        "Fear": "negative",
        "Joy": "positive",
        "Sadness": "negative",
        "Surprise": "positive",
        "Trust": "positive",
    },
    aliases={"Sad": "Sadness"},
)

EKMAN6 = LabelSet(
    name="ekman6",
    labels=("Anger", "Disgust", "Fear", "Joy", "Sadness", "Surprise"),
    polarity={
        "Anger": "negative",
        "Disgust": "negative",
        "Fear": "negative",
        "Joy": "positive",
        "Sadness": "negative",
        "Surprise": "positive",
    },
    aliases={"Sad": "Sadness"},
)

# Music_video (Pandeya & Lee, 2021) uses the same six emotions as eMotions under other spellings.
MUSIC_VIDEO = LabelSet(
    name="music_video",
    labels=EMOTIONS.labels,
    polarity=EMOTIONS.polarity,
    aliases={**EMOTIONS.aliases, "Exciting": "Excitation", "Excited": "Excitation", "Fearful": "Fear"},
)

LABEL_SETS: dict[str, LabelSet] = {s.name: s for s in (EMOTIONS, VIDEO_EMOTION8, EKMAN6, MUSIC_VIDEO)}


def match_label_set(labels) -> LabelSet | None:
    """The known label set (`LABEL_SETS`) whose class names are exactly `labels`, in any order and case; None if
    there is none. eMotions and Music_video share their names and polarities: eMotions is returned."""
    folded = sorted(str(label).casefold() for label in labels)
    for label_set in LABEL_SETS.values():
        if sorted(label.casefold() for label in label_set.labels) == folded:
            return label_set
    return None


def known_polarities(labels) -> dict[str, str] | None:
    """`{label: polarity}` for `labels` (spelled as given) when they are exactly a known label set, else None."""
    label_set = match_label_set(labels)
    if label_set is None:
        return None
    return {label: label_set.polarity[label_set.normalize_label(str(label))] for label in labels}


def get_label_set(name: str) -> LabelSet:
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise ValueError(f"unknown label set {name!r}; choose one of {sorted(LABEL_SETS)}") from None
