"""The dataset card of a prepared folder: YAML `configs:` that `load_dataset` reads, and the prose.

Layout of a prepared folder (every video stored once, every config split a metadata file and the
folders of its videos):

    README.md                                  this card
    videos/<group>_<hh>/<video_id>.mp4         the videos
    proxy/<group>_<hh>/<video_id>.mp4          training proxies (with --proxy)
    mfcc/<group>_<hh>/<video_id>.mp4.safetensors  MFCC cache, with the settings that made it (with --proxy)
    metadata-<config>-<split>-<digest>.parquet one row per video of the split, `file_name` relative
    preparation_report.json                    counts, seeds, skipped videos and why

`<group>` is the membership of the video: the config splits it belongs to, e.g.
`all-train.balanced-test.test-train` (`variants.memberships`); `<hh>` is two hex digits of a hash of
its id (< 10k files per folder for the Hub). Each split of a config lists its metadata file and the
folders of the groups it includes (`videos/all-train.balanced-test_??/*`...), so its data files are
exactly its videos: downloading config `test` from the Hub fetches its 5,000 videos, not all 27,996.
A video's folder follows the draw: `prepare` writes new videos to `.prepare/unplaced/` and moves every
file to its group once the splits are drawn (again when a rerun draws otherwise). The MFCC file keeps
the video's name before `.safetensors`: the folder builder downloads only files whose first or
second extension is a video's, so that is what makes the cache come with a Hub download.

Why this shape: datasets 5.x has no loading scripts, and only folder-based builders turn relative
file names into paths that open from any working directory (`file_name` / `*_file_name` columns of
a metadata file, resolved against the metadata file's folder). The configs therefore use the
`videofolder` builder with their own `metadata_filenames`, and declare their `features` so that
the media columns stay undecoded (`Video(decode=False)` gives `{"path", "bytes"}`: torchcodec is
not needed; `loading.load_prepared` decodes `video` where torchcodec works) and the labels are
`ClassLabel`s. The MFCC cache is typed `Video(decode=False)` too: that is the only way a folder
builder resolves a file path, and the value is the same `{"path", "bytes"}` pair.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence

import yaml
from datasets import ClassLabel, Features, Value, Video

from ..labels import POLARITIES, LabelSet
from .variants import SPLITS

# The `*_file_name` columns of the metadata and the top folder of their files.
MEDIA_FOLDERS = {"file_name": "videos", "proxy_file_name": "proxy", "mfcc_file_name": "mfcc"}
# Where `prepare` keeps files not (yet) in a config: new videos before the draw, videos no config uses.
UNPLACED_DIR = ".prepare/unplaced"


def shard_dir(video_id: str) -> str:
    """Two hex digits of the id's hash: spreads 28k videos over 256 folders per group (the Hub wants < 10k)."""
    return hashlib.sha1(video_id.encode("utf-8")).hexdigest()[:2]


def group_name(membership: Iterable[tuple[str, str]]) -> str:
    """The folder name of a membership, e.g. `all-train.balanced-test` ("" for a video in no config)."""
    return ".".join(f"{variant}-{split}" for variant, split in membership)


def media_names(video_id: str, video_name: str, group: str) -> dict[str, str]:
    """Relative paths of a video's files (`file_name`, `proxy_file_name`, `mfcc_file_name`) in its group's
    folders; with `group` "" the unplaced ones under `.prepare/unplaced/`."""
    shard = shard_dir(video_id)
    names = {"file_name": video_name, "proxy_file_name": f"{video_id}.mp4", "mfcc_file_name": f"{video_name}.safetensors"}
    if not group:
        return {key: f"{UNPLACED_DIR}/{MEDIA_FOLDERS[key]}/{shard}/{name}" for key, name in names.items()}
    return {key: f"{MEDIA_FOLDERS[key]}/{group}_{shard}/{name}" for key, name in names.items()}


def group_patterns(group: str, with_proxy: bool) -> list[str]:
    """The data-file patterns of a group's folders (`??`: the two hex digits, so no group matches another's)."""
    if not group:
        raise ValueError("videos in no config have no data files")
    keys = list(MEDIA_FOLDERS) if with_proxy else ["file_name"]
    return [f"{MEDIA_FOLDERS[key]}/{group}_??/*" for key in keys]


def split_groups(groups: Sequence[tuple[tuple[str, str], ...]]) -> dict[str, dict[str, list[str]]]:
    """{variant: {split: [group names]}} from the memberships of the videos: the groups each split includes."""
    result: dict[str, dict[str, list[str]]] = {}
    for membership in set(groups):
        for variant, split in membership:
            result.setdefault(variant, {}).setdefault(split, []).append(group_name(membership))
    return {variant: {split: sorted(names) for split, names in by_split.items()} for variant, by_split in result.items()}


def metadata_filename(config: str, split: str, digest: str) -> str:
    """Name of a split's metadata file. The content digest in the name changes the configs' data files
    whenever the content changes, which is what keys `datasets`' cache: a re-prepared folder never
    loads a stale split."""
    return f"metadata-{config}-{split}-{digest}.parquet"


def dataset_features(label_set: LabelSet, with_proxy: bool = False) -> Features:
    """Typed columns of every config, in the order of the metadata files (media columns undecoded)."""
    features = {
        "video": Video(decode=False),
        "video_id": Value("string"),
        "label": ClassLabel(names=list(label_set.labels)),
        "polarity": ClassLabel(names=list(POLARITIES)),
        "duration": Value("float32"),
        "has_audio": Value("bool"),
        "num_frames": Value("int32"),
        "fps": Value("float32"),
        "width": Value("int32"),
        "height": Value("int32"),
        "origin": Value("string"),
    }
    if with_proxy:
        features["proxy"] = Video(decode=False)
        features["mfcc"] = Video(decode=False)
    return Features(features)


# Facts of the official release (Hub `Conna/eMotions`, paper §3) that the card's metadata states.
LICENSE = "apache-2.0"  # the release's card; the authors' academic-use terms (TERMS) apply on top of it
LICENSE_NAME = "Apache-2.0"
# Neither SPEC.md nor the paper names the language of the videos' speech. Table 3 of the paper: 73.8 % of
# the labelled videos come from Douyin (44.27 %) and Kuaishou (29.52 %), "two Chinese SVs platforms", the
# rest from TikTok. Chinese is the only language the data supports declaring; the others of the TikTok
# part are not documented, so no other code (nor `multilinguality`) is claimed.
LANGUAGE = ["zh"]
# §3.2-3.3: 12 annotators, each admitted by a labelling test (>= 90 % accuracy) and trained, vote in
# groups; leaders decide ties and an expert re-reviews what stays undecided. Not crowdsourced.
ANNOTATIONS_CREATORS = ["expert-generated"]
SOURCE_DATASETS = ["original"]  # collected by the authors from the three platforms (§3.1)
# The labels are whole-video classes. The Hub defines no `task_ids` under video-classification, so none.
TASK_CATEGORIES = ["video-classification"]
TAGS = ["emotion", "emotion-recognition", "audio-visual", "short-form-video"]

# The Hub's `size_categories` buckets: the first whose bound exceeds the number of videos.
SIZE_BUCKETS = (
    (1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"),
    (10**11, "10B<n<100B"), (10**12, "100B<n<1T"),
)

# The authors' terms (paper, Acknowledgments), shared by the gating prompt and the prose of the card.
ACADEMIC_USE = "may only be used for academic research"
NO_TRANSFER = "will not be transferred to outside parties without permission"
NO_COMMERCIAL = ("will not be included as a part of any commercial software package or product of any "
                 "institution")
TERMS = (
    f"The card's licence field is the official release's ({LICENSE_NAME}). The authors' terms also apply: "
    f"eMotions and its two variants {NO_TRANSFER} and {ACADEMIC_USE}; in particular, they {NO_COMMERCIAL} "
    "(paper, Acknowledgments)."
)
SOURCE = (
    "The videos come from Douyin (44.27 %), Kuaishou (29.52 %) and TikTok (26.21 %), collected by the "
    "authors (paper, Table 3). Douyin and Kuaishou are Chinese platforms, hence `language: zh`; the paper "
    "does not document the languages of the TikTok part. Labels: 12 annotators, admitted by a labelling test "
    "and trained, vote in groups; leaders settle ties and an expert re-reviews what stays undecided (§3.2-3.3)."
)
GATED_PROMPT = (
    f"eMotions is released under {LICENSE_NAME} with the authors' terms of use: the dataset and its two "
    f"variants {NO_TRANSFER} and {ACADEMIC_USE}; they {NO_COMMERCIAL}."
)
GATED_FIELDS = {
    "Name": "text",
    "Affiliation": "text",
    f"I agree that eMotions {ACADEMIC_USE}": "checkbox",
    f"I agree that eMotions {NO_TRANSFER}": "checkbox",
    f"I agree that eMotions {NO_COMMERCIAL}": "checkbox",
}


def size_category(videos: int) -> str:
    """The Hub's `size_categories` bucket of a dataset of `videos` examples (`n<1K`, `1K<n<10K`, ...)."""
    if videos < 0:
        raise ValueError(f"a dataset cannot have {videos} videos")
    for bound, name in SIZE_BUCKETS:
        if videos < bound:
            return name
    return "n>1T"


def folder_videos(counts: Mapping) -> int:
    """Videos of a prepared folder from its split counts: the `all` config's total when it is there (every
    video kept), else the largest config's (a lower bound: pass the real number to `render_card`)."""
    totals = {variant: sum(sum(per_class.values()) for per_class in by_split.values())
              for variant, by_split in counts.items()}
    return totals["all"] if "all" in totals else max(totals.values(), default=0)


def card_yaml(label_set: LabelSet, files: Mapping[str, Mapping[str, str]], groups: Mapping[str, Mapping[str, list]],
              with_proxy: bool, pretty_name: str, videos: int | None = None) -> dict:
    """The YAML header: the Hub metadata (licence, gating by the academic-use terms, language, task, size)
    then the configs (first one default) with their data files, builder options and features.

    `files` maps each config to its metadata file per split, `groups` to the membership groups per split
    (`split_groups`); `videos` is the number of videos of the folder (`size_categories`, left out when unknown).
    """
    features = dataset_features(label_set, with_proxy)._to_yaml_list()
    configs, infos = [], []
    for index, variant in enumerate(files):
        names = [files[variant][split] for split in SPLITS]
        config = {"config_name": variant}
        if index == 0:
            config["default"] = True
        config["data_files"] = [
            {"split": split, "path": [name, *(pattern for group in _groups_of(groups, variant, split)
                                              for pattern in group_patterns(group, with_proxy))]}
            for split, name in zip(SPLITS, names)]
        config["metadata_filenames"] = names
        config["drop_labels"] = True
        config["features"] = features
        configs.append(config)
        infos.append({"config_name": variant, "features": features})
    header = {
        "pretty_name": pretty_name,
        "license": LICENSE,
        "language": list(LANGUAGE),
        "annotations_creators": list(ANNOTATIONS_CREATORS),
        "source_datasets": list(SOURCE_DATASETS),
        "task_categories": list(TASK_CATEGORIES),
    }
    if videos is not None:
        header["size_categories"] = [size_category(videos)]
    header.update({
        "tags": list(TAGS),
        "extra_gated_prompt": GATED_PROMPT,
        "extra_gated_fields": dict(GATED_FIELDS),
        "configs": configs,
        "dataset_info": infos,
    })
    return header


def _groups_of(groups: Mapping[str, Mapping[str, list]], variant: str, split: str) -> list:
    found = groups.get(variant, {}).get(split)
    if not found:  # datasets cannot load a split without files
        raise ValueError(f"config {variant!r} has no videos in its {split} split")
    return found


CITATION = """@inproceedings{wu2025emotions,
  title     = {Towards Emotion Analysis in Short-form Videos: A Large-Scale Dataset and Baseline},
  author    = {Wu, Xuecheng and Sun, Heli and Xue, Junxiao and Nie, Jiayu and Kong, Xiangyan and Zhai, Ruofan and He, Liang},
  booktitle = {Proceedings of the ACM Web Conference 2025 (WWW '25)},
  year      = {2025},
  publisher = {ACM}
}"""

BODY = """# {pretty_name}

{summary}

## Loading

```python
from datasets import load_dataset

ds = load_dataset("{folder}", "balanced")   # or "all" (default), "test"; or the folder's path
example = ds["train"][0]
example["video"]   # {{"path": ".../videos/all-train.balanced-train_ab/00000001.mp4", "bytes": None}}, undecoded
ds["train"].features["label"].int2str(example["label"])
ds = ds.cast_column("video", Video())   # torchcodec `VideoDecoder`s instead (`from datasets import Video`)
```

Every config has a `train` and a `test` split. Each video is stored once, in
`videos/<group>_<hh>/`: `<group>` names the config splits it belongs to (`all-train.balanced-test`
is in the train split of `all` and the test split of `balanced`), `<hh>` is two hex digits of a hash
of its id. Each split lists only the folders of its groups, so loading a config downloads its own
videos and no others. Push the folder as is with
`huggingface_hub.upload_folder(folder_path=..., repo_type="dataset", ignore_patterns=[".prepare/*"])`.

## Columns

| column | type | meaning |
|---|---|---|
| `video` | `Video(decode=False)` | `{{"path", "bytes"}}` of the mp4, an absolute path once loaded |
| `video_id` | string | id of the video (file name without extension) |
| `label` | `ClassLabel` | {labels} |
| `polarity` | `ClassLabel` | {polarities} |
| `duration`, `num_frames`, `fps`, `width`, `height` | numbers | read from the file when it was validated |
| `has_audio` | bool | whether the video has a sound track |
| `origin` | string | where the row came from in the source (shard and row, or file) |
{proxy_rows}
## Variants and splits (seed {seed})

{variant_text}

{table}

Test split of each variant: `round({test_fraction} × n)` (halves up) videos of every class of n
videos, the rest to train. This is the arithmetic of the paper's Table 4, where each per-class
accuracy is a whole number of videos out of 20 % of that class (Fear in the full set: 71/191).

How the draws are made, so that anyone can repeat them: rows are sorted by `video_id`; within each
class, `numpy.random.default_rng([seed, stream, class_id])` chooses the members without
replacement, with one stream per variant (balanced 1, test 2) and one per variant's split (10,
then the variant's index). Other seeds give other draws; the same seed always the same.
Implementation: `emotions_hf.data.variants.draw_splits`.

## Preparation

{preparation}

## Source and annotation

{source}

## Terms of use

{terms}

## Citation

```bibtex
{citation}
```
"""

PROXY_ROWS = (
    "| `proxy` | `Video(decode=False)` | small, keyframe-dense copy of the video for fast training reads |\n"
    "| `mfcc` | `Video(decode=False)` | `{\"path\", \"bytes\"}` of the full-length MFCC (`<video file>.safetensors`, with its settings), computed once |\n"
)


class _PlainDumper(yaml.SafeDumper):
    """Writes repeated blocks (the features of each config) in full: no YAML anchors for the Hub to parse."""

    def ignore_aliases(self, data):
        return True


def _count_table(counts: Mapping, label_names) -> str:
    header = "| config | split | total | " + " | ".join(label_names) + " |"
    rule = "|" + "---|" * (len(label_names) + 3)
    rows = [header, rule]
    for variant, by_split in counts.items():
        for split, per_class in by_split.items():
            cells = " | ".join(f"{per_class[name]:,}" for name in label_names)
            rows.append(f"| {variant} | {split} | {sum(per_class.values()):,} | {cells} |")
    return "\n".join(rows)


def _variant_text(variants, spec) -> str:
    lines = []
    if "all" in variants:
        lines.append("- `all`: every valid video of the source.")
    if "balanced" in variants:
        fixed = ", ".join(f"{n:,} {name}" for name, n in spec.balanced_counts.items())
        lines.append(f"- `balanced` (eMotions_balanced): {fixed}, and every video of the other classes, "
                     "drawn at random (a class with fewer videos is taken whole).")
    if "test" in variants:
        lines.append(f"- `test` (eMotions_test): {spec.test_size:,} videos drawn per class in proportion to the "
                     "full set; the fractional shares are rounded by the largest-remainder method so the total "
                     "is exact (the whole set when it is smaller).")
    return "\n".join(lines)


def render_card(label_set: LabelSet, files: Mapping[str, Mapping[str, str]], groups: Mapping[str, Mapping[str, list]],
                counts: Mapping, spec, with_proxy: bool, preparation: str,
                folder: str = "emotions", pretty_name: str = "eMotions", summary: str | None = None,
                videos: int | None = None) -> str:
    """The full README.md: YAML header and prose with the counts, seeds and terms.

    `groups`: the membership groups of each config's splits (`split_groups`); `videos`: the number of videos
    of the folder (its `size_categories`); by default `folder_videos(counts)`.
    """
    videos = folder_videos(counts) if videos is None else videos
    header = yaml.dump(card_yaml(label_set, files, groups, with_proxy, pretty_name, videos), Dumper=_PlainDumper,
                       sort_keys=False, allow_unicode=True, width=1000)
    polarities = ", ".join(f"{name}: {label_set.polarity[name]}" for name in label_set.labels)
    body = BODY.format(
        pretty_name=pretty_name,
        summary=summary or (
            "Short-form videos (Douyin, Kuaishou, TikTok) labelled with one of six emotions, from "
            "*Towards Emotion Analysis in Short-form Videos: A Large-Scale Dataset and Baseline* (WWW '25). "
            "The full set has 27,996 videos (198 h, 2.46–163.77 s each)."),
        folder=folder,
        labels=", ".join(f"{i} {name}" for i, name in enumerate(label_set.labels)),
        polarities=polarities,
        proxy_rows=PROXY_ROWS if with_proxy else "",
        seed=spec.seed,
        variant_text=_variant_text(list(files), spec),
        table=_count_table(counts, label_set.labels),
        test_fraction=spec.test_fraction,
        preparation=preparation,
        source=SOURCE,
        terms=TERMS,
        citation=CITATION,
    )
    return f"---\n{header}---\n\n{body}"


def preparation_text(summary: Mapping) -> str:
    """The preparation paragraph of the card from the report summary."""
    skipped = summary.get("skipped", 0)
    reasons = summary.get("skipped_by_reason", {})
    text = (f"Prepared by `emotions-hf prepare` from a {summary.get('source_kind', 'source')} source "
            f"({summary.get('source_rows', 0):,} rows listed, {summary.get('videos', 0):,} valid videos, "
            f"{skipped:,} skipped). Every video was opened and checked for frames; the skipped ones and why "
            "are listed in `preparation_report.json`.")
    if reasons:
        text += "\n\nSkipped by reason: " + json.dumps(reasons, sort_keys=True)
    return text


def reference_card() -> str:
    """The card of the full release as the paper describes it (Table 2 counts, default seed and sizes):
    the template kept in `dataset_script/README.md`. `prepare` writes the real card, with the digests of
    the metadata files and the counts of the videos it validated."""
    from ..labels import EMOTIONS
    from .variants import TABLE2_COUNTS, VARIANTS, VariantSpec, draw_splits, memberships, split_class_counts

    labels = [name for name, n in TABLE2_COUNTS.items() for _ in range(n)]
    ids = [f"{i + 1:08d}" for i in range(len(labels))]  # any unique ids: the counts do not depend on them
    spec = VariantSpec()
    splits = draw_splits(ids, labels, EMOTIONS.labels, VARIANTS, spec)
    counts = split_class_counts(splits, labels, EMOTIONS.labels)
    files = {variant: {split: metadata_filename(variant, split, "<digest>") for split in SPLITS} for variant in VARIANTS}
    preparation = (
        "This is the template card: the counts are those of the full release (the paper's Table 2). "
        "`emotions-hf prepare <local snapshot of Conna/eMotions> emotions` (or `python "
        "dataset_script/prepare_emotions.py ...`) reads the parquet shards `data/*.parquet` (mp4 bytes "
        "in `video_data`), validates every video, writes this folder and replaces `<digest>` and the "
        "counts by those of the videos it kept.")
    groups = split_groups(memberships(splits, len(ids)))
    return render_card(EMOTIONS, files, groups, counts, spec, with_proxy=False, preparation=preparation)


__all__ = ["CITATION", "LICENSE", "MEDIA_FOLDERS", "TERMS", "UNPLACED_DIR", "card_yaml", "dataset_features",
           "folder_videos", "group_name", "group_patterns", "media_names", "metadata_filename", "preparation_text",
           "reference_card", "render_card", "shard_dir", "size_category", "split_groups"]
