"""`emotions-hf demo`: the page's function (video in, the page's outputs out) and the page itself, end to end
in a headless Chromium (Playwright's Python API with the system's Chromium, e.g. Debian's `chromium`)."""

import configparser
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_pipeline_video_emotion import save_tiny_checkpoint
from transformers import pipeline

from emotions_hf import cli
from emotions_hf import demo as demo_module
from emotions_hf.demo import EXAMPLES, DemoInputError, EmotionDemo, make_examples

gr = pytest.importorskip("gradio", reason="the demo needs gradio: pip install -e '.[demo]'")

ROOT = Path(__file__).resolve().parents[1]
# Where CI must run the browser test, a missing browser is a failure, not a skip (.ci/run sets it).
REQUIRE_BROWSER = os.environ.get("EMOTIONS_HF_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return str(save_tiny_checkpoint(tmp_path_factory.mktemp("tiny-avcanet")))


@pytest.fixture(scope="module")
def app(checkpoint):
    return EmotionDemo(pipeline("video-emotion", model=checkpoint, device="cpu", batch_size=2), top_k=2,
                       window=0.4)


def test_page_function_video_in_outputs_out(app, make_video):
    video = make_video("clip.mp4", num_frames=30)  # 1.2 s: 5 windows of 0.4 s
    expected = app.pipe(str(video), top_k=2, timeline=True, timeline_window=0.4)
    steps = []
    outputs = app.analyse(video, progress=lambda *args, **kwargs: steps.append((args, kwargs)))
    summary, top, figure, timeline, windows = app.page_function(str(video))

    # the top emotions with scores and polarity, most likely first
    predictions = expected["predictions"]
    assert list(top) == [f"{p['label']} ({p['polarity']})" for p in predictions]
    assert list(top.values()) == pytest.approx([p["score"] for p in predictions])
    assert summary.startswith(f"### {predictions[0]['label']}: {100 * predictions[0]['score']:.1f} %")
    assert "Sound: used." in summary and "no sound" not in summary.lower()
    # the exact split of the winning logit, as text and as bars (visual, audio, bias, then their sum)
    part = expected["contribution"]
    assert f"{part['label']} logit {part['logit']:+.3f} = visual {part['visual']:+.3f}" in summary
    bars = figure.axes[0].patches
    assert [bar.get_width() for bar in bars] == pytest.approx(
        [part["visual"], part["audio"], part["bias"], part["logit"]])
    ticks = [tick.get_text() for tick in figure.axes[0].get_yticklabels()]
    assert ticks == ["visual", "audio", "bias", "logit"]
    # the timeline: an image of the plot and one table row per window
    assert timeline.mode == "RGB" and timeline.width > 300 and timeline.height > 200
    assert len(windows) == len(expected["timeline"]) == 5
    assert list(windows.columns[:4]) == ["start (s)", "end (s)", "top emotion", "score (%)"]
    first = expected["timeline"][0]["scores"]
    assert windows["top emotion"][0] == max(first, key=first.get)
    assert outputs.result == expected
    # progress: reading, decoding, then the windows as they are scored, then drawing
    descriptions = [kwargs.get("desc") for _, kwargs in steps]
    assert descriptions[:2] == ["reading clip.mp4", "decoding clip.mp4"] and descriptions[-1] == "drawing"
    counts = [args[0] for args, kwargs in steps if kwargs.get("desc") == "timeline windows"]
    assert counts and counts[-1] == (5, 5) and all(total == 5 for _, total in counts)


def test_page_says_no_sound(app, make_video):
    silent = make_video("silent.mp4", num_frames=20, audio_seconds=0)
    summary, *_ = app.page_function(str(silent))
    assert "**No sound**: the video has no audio track" in summary
    assert app.analyse(silent).result["contribution"]["audio"] == 0.0


def test_bad_file_gives_the_command_line_message(app, tmp_path):
    broken = tmp_path / "broken <b>.mp4"
    broken.write_bytes(b"definitely not an mp4")
    with pytest.raises(DemoInputError) as caught:
        app.analyse(broken)
    message = str(caught.value)
    assert message.startswith("broken <b>.mp4: ") and str(tmp_path) not in message  # the file by its name
    with pytest.raises(gr.Error) as shown:
        app.page_function(str(broken))
    assert shown.value.message == message.replace("<", "&lt;").replace(">", "&gt;")  # text, not HTML
    assert app.page_function(None)[1:] == (None, None, None, None)


def test_examples_are_written_once(tmp_path, app):
    examples = make_examples(tmp_path / "examples")
    assert [path.name for path, _ in examples] == [name for name, *_ in EXAMPLES]
    stamps = [path.stat().st_mtime_ns for path, _ in examples]
    assert make_examples(tmp_path / "examples") == examples
    assert [path.stat().st_mtime_ns for path, _ in examples] == stamps
    assert sorted(p.name for p in tmp_path.iterdir()) == ["examples"]  # no scratch folder left behind
    by_name = {path.name: app.analyse(path).result for path, _ in examples}
    assert by_name["sadness-no-sound.mp4"]["has_audio"] is False
    assert by_name["excitation.mp4"]["has_audio"] is True
    assert by_name["relaxation-then-tension.mp4"]["timeline"][-1]["end"] == pytest.approx(16.0, abs=0.2)


def test_command_without_a_model_says_how_to_make_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert demo_module.main([]) == 2
    assert "python examples/train.py" in capsys.readouterr().err
    assert demo_module.main(["--model", str(tmp_path / "nothing-here")]) == 2
    assert "cannot load model" in capsys.readouterr().err
    assert demo_module.main(["--window", "1", "--stride", "2"]) == 2
    assert cli.main(["demo"]) == 2  # the same, as `emotions-hf demo`
    assert "python examples/train.py" in capsys.readouterr().err


def test_importing_the_package_does_not_import_gradio():
    code = "import sys, emotions_hf, emotions_hf.demo, emotions_hf.cli; assert 'gradio' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_space_files():
    readme = (ROOT / "space" / "README.md").read_text()
    metadata = readme.split("---\n")[1]
    fields = dict(line.split(": ", 1) for line in metadata.splitlines() if ": " in line)
    assert fields["sdk"] == "gradio" and fields["app_file"] == "app.py"
    major = fields["sdk_version"].split(".")[0]
    assert major == gr.__version__.split(".")[0], "the Space runs the gradio major version the tests ran"
    # the package is uploaded beside app.py, so the Space installs its dependencies itself
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    needed = {_name(line) for line in setup["options"]["install_requires"].split("\n") if line.strip()}
    lines = (ROOT / "space" / "requirements.txt").read_text().splitlines()
    listed = {_name(line) for line in lines if line.strip() and not line.startswith(("#", "-"))}
    assert needed <= listed, f"missing from space/requirements.txt: {sorted(needed - listed)}"
    assert "gradio" not in listed  # comes from sdk_version
    assert "torch==2.13.0" in lines


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


# --- the page in a real browser ----------------------------------------------------------------------------


def _unavailable(reason: str):
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason} (EMOTIONS_HF_REQUIRE_BROWSER=1: the browser test must run here)")
    pytest.skip(reason)


def _chromium() -> str:
    """The system Chromium, installed with apt-get when missing and this is root on Debian/Ubuntu."""
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        found = candidate and shutil.which(candidate)
        if found:
            return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            subprocess.run(command, env=env, capture_output=True, timeout=900, check=False)
        if shutil.which("chromium"):
            return shutil.which("chromium")
    _unavailable("no Chromium: install Debian's `chromium` (apt-get install chromium) or set CHROMIUM=/path")


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "playwright"],
                                   capture_output=True, timeout=600, check=False)
        if installed.returncode:
            _unavailable("Playwright is not installed and `pip install playwright` failed")
        from playwright.sync_api import sync_playwright
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(checkpoint, tmp_path):
    """`emotions-hf demo` (through space/app.py) on a free localhost port; yields its URL."""
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(tmp_path / "gradio"),
           "EMOTIONS_HF_MODEL": checkpoint, "EMOTIONS_HF_DEMO_ARGS": "--window 0.4 --top-k 2"}
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "server.log", "w") as log:
        process = subprocess.Popen([sys.executable, str(ROOT / "space" / "app.py"), "--host", "127.0.0.1",
                                    "--port", str(port), "--examples-dir", str(tmp_path / "examples")],
                                   stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 240
            while not _answers(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the demo did not start:\n{(tmp_path / 'server.log').read_text()[-3000:]}")
                time.sleep(1)
            yield url, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.mark.slow
def test_page_in_a_browser(server, app, make_video, tmp_path):
    chromium, sync_playwright = _chromium(), _playwright()
    url, process = server
    video = make_video("clip.mp4", num_frames=30)
    expected = app.pipe(str(video), top_k=2)["predictions"][0]["label"]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"definitely not an mp4")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            # nothing but the app: no fonts or scripts from the internet, reachable or not
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url)
                       else route.abort())

            def upload(path):
                page.goto(url, wait_until="domcontentloaded")
                page.locator("#video input[type=file]").set_input_files(str(path))

            upload(video)
            heading = page.locator("#summary h3")
            heading.wait_for(timeout=120_000)
            assert heading.inner_text().startswith(f"{expected}: ")
            assert page.locator("#top-emotions").inner_text().count(expected) >= 1
            for element in ("#timeline img", "#contribution img"):
                image = page.locator(element)
                image.wait_for(timeout=30_000)
                assert page.evaluate("(e) => e.complete && e.naturalWidth > 100", image.element_handle())
            assert page.locator("#windows").inner_text().count(expected) >= 1
            page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)

            upload(broken)
            error = page.get_by_text(re.compile(r"broken\.mp4: not a readable media file"))
            error.first.wait_for(timeout=60_000)
            assert process.poll() is None

            page.goto(url, wait_until="domcontentloaded")  # still serving: an example is analysed
            page.get_by_text(EXAMPLES[1][1], exact=True).click()
            page.locator("#summary h3").wait_for(timeout=120_000)
            assert "No sound" in page.locator("#summary").inner_text()
        finally:
            browser.close()
