"""The dataset card's Hub metadata, read back with `huggingface_hub.DatasetCard` and checked offline.

`DatasetCard.validate` asks the Hub, so the checks here use the vocabularies shipped with the installed
packages: `datasets`' resource lists (languages, size buckets, annotation creators) and the task names of
`huggingface_hub`'s inference types (generated from `@huggingface/tasks`, the Hub's task list).
"""

import json
import pkgutil
from importlib import resources

import datasets
import huggingface_hub.inference._generated.types as hub_task_types
import pytest
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from emotions_hf.data.card import LICENSE, TERMS, folder_videos, reference_card, size_category
from emotions_hf.data.prepare import prepare
from emotions_hf.data.synthetic import generate

SMALL = {"balanced_counts": {"Excitation": 2, "Neutral": 2}, "test_size": 9, "test_fraction": 0.34,
         "progress": False}
CONFIGS = ("all", "balanced", "test")


def _resource(name):
    return json.loads(resources.files("datasets.utils.resources").joinpath(name).read_text(encoding="utf-8"))


HUB_TASKS = {module.name.replace("_", "-") for module in pkgutil.iter_modules(hub_task_types.__path__)}
HUB_TASKS -= {"base"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    source = generate(tmp_path_factory.mktemp("card_source"), videos_per_class=3, layout="parquet", seed=5,
                      videos_per_shard=10)
    out = tmp_path_factory.mktemp("card_prepared") / "emotions"
    return out, prepare(source.root, out, **SMALL)


@pytest.fixture(scope="module")
def prepared_card(prepared):
    out, _ = prepared
    return DatasetCard.load(out / "README.md", repo_type="dataset")


def _check_metadata(card: DatasetCard, videos: int):
    data = card.data
    assert isinstance(data, DatasetCardData)
    assert data.pretty_name == "eMotions"
    # size: the Hub bucket of the folder's number of videos, from the Hub's list of buckets
    assert data.size_categories == [size_category(videos)]
    assert set(data.size_categories) <= set(_resource("size_categories.json"))
    # task: a task of the Hub, and no task id (the Hub has none under video-classification)
    assert "video-classification" in HUB_TASKS
    assert data.task_categories == ["video-classification"] and set(data.task_categories) <= HUB_TASKS
    assert data.task_ids is None
    # language: ISO 639 codes the Hub knows; Chinese for the Douyin/Kuaishou majority
    assert data.language == ["zh"] and set(data.language) <= set(_resource("languages.json"))
    assert set(data.annotations_creators) <= set(_resource("creators.json")["annotations"])
    assert data.source_datasets == ["original"]
    assert {"emotion", "audio-visual", "short-form-video"} <= set(data.tags)
    # licence and terms: the release's licence everywhere, the academic-use terms in the gate and the prose
    assert data.license == LICENSE == "apache-2.0"
    prompt = data.extra_gated_prompt
    assert "Apache-2.0" in prompt and "Apache-2.0" in TERMS and TERMS in card.text
    for term in ("academic research", "outside parties", "commercial software package"):
        assert term in prompt and term in TERMS
        assert any(term in field and kind == "checkbox" for field, kind in data.extra_gated_fields.items())
    assert not any("non-commercial" in str(value) for value in (data.license, prompt))
    # the configs still parse as `datasets` reads them from the card
    configs = MetadataConfigs.from_dataset_card_data(data)
    assert list(configs) == list(CONFIGS) and configs.get_default_config_name() == "all"
    assert [info["config_name"] for info in data.dataset_info] == list(CONFIGS)


def test_size_category_buckets():
    assert [size_category(n) for n in (0, 18, 999, 1_000, 9_999, 10_000, 27_996, 100_000)] == [
        "n<1K", "n<1K", "n<1K", "1K<n<10K", "1K<n<10K", "10K<n<100K", "10K<n<100K", "100K<n<1M"]
    assert size_category(5 * 10**9) == "1B<n<10B" and size_category(10**13) == "n>1T"
    with pytest.raises(ValueError):
        size_category(-1)
    counts = {"test": {"train": {"A": 3}, "test": {"A": 1}}, "all": {"train": {"A": 5}, "test": {"A": 2}}}
    assert folder_videos(counts) == 7
    del counts["all"]
    assert folder_videos(counts) == 4


def test_reference_card_metadata_is_complete_and_consistent(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(reference_card(), encoding="utf-8")
    card = DatasetCard.load(path, repo_type="dataset")
    _check_metadata(card, 27_996)
    assert card.data.size_categories == ["10K<n<100K"]
    assert DatasetCard(reference_card()).data.to_dict() == card.data.to_dict()
    # each split lists its metadata file and the folders of its membership groups, never every video
    for config in card.data.configs:
        for entry in config["data_files"]:
            metadata, *patterns = entry["path"]
            assert metadata == f"metadata-{config['config_name']}-{entry['split']}-<digest>.parquet"
            assert patterns and all(p.startswith("videos/") and p.endswith("_??/*") for p in patterns)
            assert all(f"{config['config_name']}-{entry['split']}" in p[len("videos/"):-len("_??/*")].split(".")
                       for p in patterns)


def test_prepared_card_metadata_is_complete_and_consistent(prepared, prepared_card):
    out, result = prepared
    assert result.videos == 18 == folder_videos(result.counts)
    assert len(list((out / "videos").glob("*/*.mp4"))) == result.videos
    _check_metadata(prepared_card, result.videos)
    assert prepared_card.data.size_categories == ["n<1K"]


def test_card_round_trips_through_huggingface_hub(prepared_card, tmp_path):
    """Writing the card back with `huggingface_hub` keeps the metadata (what an upload would see)."""
    again = tmp_path / "README.md"
    prepared_card.save(again)
    assert DatasetCard.load(again, repo_type="dataset").data.to_dict() == prepared_card.data.to_dict()


@pytest.mark.parametrize("config", CONFIGS)
def test_prepared_folder_loads_each_config_offline(prepared, config, tmp_path, monkeypatch):
    out, result = prepared
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # read at import: set the live value too
    monkeypatch.chdir(tmp_path)
    ds = datasets.load_dataset(str(out), config, cache_dir=str(tmp_path / "cache"))
    assert set(ds) == {"train", "test"}
    for split in ("train", "test"):
        assert len(ds[split]) == sum(result.counts[config][split].values())
    assert not ds["train"].features["video"].decode
