"""Full disks, on a real size-limited tmpfs: `amicus convert` (the GGUF write and the
quantization), `amicus audit`, the conversation store and the Markdown export each stop
with one line saying the disk is full (exit 2), leave nothing half-written under a final
name and earlier files intact, and work again once there is room (the audit resumes)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from app.assistants import runtime
from app.commands import audit
from app.engine.fake import FakeEngine
from app.store import DiskFullError, Store
from app.ui import exporting
from converters.pipeline import ConvertRequest, Progress, convert
from converters.synthetic import checkpoints as synthetic
from tests.app.commands.conftest import run
from tests.tools.small_disk import fill, small_disk

EARLIER = b"an earlier output, kept as it was\n" * 100


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("amicus:")]
    assert len(lines) == 1 and "internal error" not in lines[0], err
    return lines[0]


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict:
    """A base and an adapter, and the sizes of the F16 and Q4_K_M files they convert to."""
    root = tmp_path_factory.mktemp("disk-sources")
    base = synthetic.build_qwen3(root / "base", tied=True).path
    adapter = synthetic.build_adapter(root / "lora", base, synthetic.ADAPTER_KINDS["lora"])
    request = ConvertRequest(base=str(base), adapters=(str(adapter),), name="m",
                             out_dir=root / "out", keep_intermediate=True, verify=False)
    outputs = convert(request, Progress(enabled=False)).outputs
    sizes = {p.name: p.stat().st_size for p in outputs}
    return {"base": base, "adapter": adapter, "f16": sizes["m.F16.gguf"],
            "q4": sizes["m.Q4_K_M.gguf"]}


@pytest.mark.parametrize("step", ["write", "quantize"])
def test_convert_on_a_full_disk(sources, tmp_path, capsys, step):
    # write: the F16 GGUF does not fit; quantize: it fits, the Q4_K_M file beside it not.
    room = sources["f16"] // 2 if step == "write" else sources["f16"] + sources["q4"] // 2
    with small_disk(tmp_path / "disk", (room + len(EARLIER)) // 1024 + 8) as disk:
        (disk / "earlier.txt").write_bytes(EARLIER)
        code, _, err = run(capsys, "convert", "--base", str(sources["base"]), "--adapter",
                           str(sources["adapter"]), "--name", "m", "--out", str(disk),
                           "--no-verify")
        assert code == 2, err
        line = _one_line(err)
        assert line.startswith("amicus: error: No space left on device: ") and str(disk) in line
        assert sorted(p.name for p in disk.iterdir()) == ["earlier.txt"]  # staging gone too
        assert (disk / "earlier.txt").read_bytes() == EARLIER


@pytest.fixture
def fake_audit(home, monkeypatch):
    def fake_open(name, **_options):
        model = runtime.find_model(name)
        return runtime.Assistant(model, runtime.assistant_profile(model),
                                 FakeEngine("A fairly long answer. " * 20))

    monkeypatch.setattr(audit, "open_assistant", fake_open)
    return home


def test_audit_on_a_full_disk_stops_cleanly_and_resumes(fake_audit, tmp_path, capsys):
    batch = tmp_path / "stories.jsonl"
    records = [{"ID": i, "situation": f"Situation {i}.", "intention": f"Intention {i}."}
               for i in range(30)]
    batch.write_text("".join(json.dumps(r) + "\n" for r in records))
    with small_disk(tmp_path / "disk", 256) as disk:
        out = disk / "out.jsonl"
        filler = fill(disk, leave=12 * 1024)
        code, _, err = run(capsys, "audit", str(batch), "--frame", "direct", "-o", str(out))
        assert code == 2, err
        assert "No space left on device" in _one_line(err)
        written = out.read_bytes().split(b"\n")
        whole = [json.loads(line) for line in written[:-1]]  # all but a cut-off last line
        assert 0 < len(whole) < 30
        filler.unlink()
        code, _, err = run(capsys, "audit", str(batch), "--frame", "direct", "-o", str(out))
        assert code == 0, err
        lines = [json.loads(line)["line"] for line in out.read_text().splitlines()]
        assert sorted(lines) == list(range(1, 31))


def test_the_store_on_a_full_disk(tmp_path):
    with small_disk(tmp_path / "disk", 1024) as disk:
        path = disk / "amicus.sqlite3"
        with Store.open(path) as store:
            kept = store.create_conversation("general", title="kept")
            store.add_message(kept.id, "user", "saved before the disk filled")
            filler = fill(disk, leave=32 * 1024)
            chat = store.create_conversation("general", title="filling")
            with pytest.raises(DiskFullError) as full:
                for number in range(10_000):
                    store.add_message(chat.id, "user", f"message {number} " * 200)
            assert "\n" not in str(full.value) and "disk is full" in str(full.value)
            filler.unlink()
            store.add_message(chat.id, "user", "room again")
            assert store.messages(chat.id)[-1].content == "room again"
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        with Store.open(path) as store:
            assert store.messages(kept.id)[0].content == "saved before the disk filled"


def test_an_export_on_a_full_disk_leaves_no_partial_file(tmp_path):
    with small_disk(tmp_path / "disk", 128) as disk:
        (disk / "earlier.md").write_bytes(EARLIER)
        fill(disk, leave=8 * 1024)
        with pytest.raises(OSError) as full:
            exporting.write(disk / "conversation.md", "一段很长的对话。\n" * 20_000)
        assert full.value.errno == 28
        assert sorted(p.name for p in disk.iterdir()) == ["earlier.md", "filler"]
        assert (disk / "earlier.md").read_bytes() == EARLIER
