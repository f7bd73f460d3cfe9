"""Case documents in the app (issue 11): attaching a file, the live token count, reading
progress and Esc, num_ctx in F4, the dropped-turns divider and the cut-off mark, with the
fake engine and what lands in the store."""

from __future__ import annotations

import pytest
from textual.widgets import Button, Collapsible, Input, Static, TextArea

from app.assistants.runtime import model_sha256
from app.documents import split_message
from app.engine.fake import FakeEngine
from app.engine.kv_state import MIN_SAVED_TOKENS, KVStateStore, model_key
from app.ui.screens.case_form import CaseForm
from app.ui.screens.error_dialog import ErrorDialog
from app.ui.screens.file_dialog import FileDialog, complete, matches
from app.ui.screens.options_editor import OptionsEditor
from app.ui.widgets.chat_pane import ChatPane
from app.ui.widgets.chat_view import ChatView
from app.ui.widgets.prompt_input import PromptInput
from app.ui.widgets.status_bar import StatusBar

from .conftest import settle, wait_until
from .test_chat import choose, type_and_send
from .test_forms import open_screen

pytestmark = pytest.mark.anyio
JUDGMENT = "被告人张某于2023年3月盗窃手机一部，价值人民币3000元。\n到案后如实供述。"


def status_figures(app) -> str:
    return str(app.screen.query_one(StatusBar).query_one("#figures").render())


def counted(app) -> int:
    """The tokens the status line counts for the message being written."""
    words = status_figures(app).split()
    return int(words[1].lstrip("~").replace(",", "")) if words[:1] == ["message"] else 0


async def attach(pilot, path) -> None:
    """F10, type the path, Enter."""
    await open_screen(pilot, "f10", FileDialog)
    pilot.app.screen.query_one("#path", Input).value = str(path)
    await pilot.press("enter")
    await wait_until(pilot, lambda: not isinstance(pilot.app.screen, FileDialog))


# Attaching


async def test_an_attached_document_goes_with_the_message_shown_collapsed(rig_factory,
                                                                          tmp_path):
    path = tmp_path / "判决书.txt"
    path.write_bytes(JUDGMENT.encode("gb18030"))
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        prompt = rig.app.screen.query_one(PromptInput)
        prompt.set_text("量刑建议？")
        await attach(pilot, path)
        pane = rig.app.screen.query_one(ChatPane)
        await wait_until(pilot, lambda: pane.attachments, what="the document read")
        bar = str(pane.query_one("#attachments", Static).render())
        assert "判决书.txt" in bar and f"{len(JUDGMENT)} characters" in bar
        assert prompt.text == "量刑建议？"  # what was typed stays
        prompt.focus()
        await pilot.press("enter")
        await settle(pilot, rig.app)
        user = rig.store.messages(1)[0]
        assert rig.store.get_conversation(1).title == "量刑建议？"  # not the block's header
        parts = split_message(user.content)
        assert [type(p).__name__ for p in parts] == ["DocumentPart", "TextPart"]
        assert (parts[0].name, parts[0].text, parts[1].text) == ("判决书.txt", JUDGMENT,
                                                                "量刑建议？")
        assert rig.engine.calls[-1]["messages"][-1]["content"] == user.content
        view = rig.app.screen.query_one(ChatView).messages()[0]
        [box] = view.query(Collapsible).filter(".document")
        assert box.collapsed and "判决书.txt" in box.title and "characters" in box.title
        body = str(view.query_one(".body", Static).render())
        assert "量刑建议" in body and "盗窃" not in body  # the question, not the document
        assert not pane.attachments and prompt.text == ""  # both went with the message
        assert not pane.query_one("#attachments").display


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("empty.txt", b"", "is empty"),
    ("photo.jpg", b"\xff\xd8\xff", "unsupported file type"),
    ("scan.pdf", b"%PDF-1.4 broken", "is not a valid PDF file"),
])
async def test_a_bad_file_shows_its_dialog_and_keeps_the_text(rig_factory, tmp_path, name,
                                                              content, problem):
    path = tmp_path / name
    path.write_bytes(content)
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        prompt = rig.app.screen.query_one(PromptInput)
        prompt.set_text("my question, typed")
        await attach(pilot, path)
        await wait_until(pilot, lambda: isinstance(rig.app.screen, ErrorDialog),
                         what="the error dialog")
        dialog = rig.app.screen
        assert dialog.title_text == "The document cannot be read"
        assert str(path) in dialog.message and problem in dialog.message
        await pilot.press("enter")
        await pilot.pause()
        assert prompt.text == "my question, typed"
        assert rig.app.screen.query_one(ChatPane).attachments == []
        assert rig.store.list_conversations("moral-audit") == []  # nothing was sent


def test_attach_is_in_the_palette_and_the_keymap(rig_factory):
    from app.ui.keymap import spec
    from app.ui.screens.main_screen import MainScreen

    rig = rig_factory()
    screen = MainScreen(rig.app.services, rig.app.config)
    titles = [command.title for command in rig.app.get_system_commands(screen)]
    assert "Attach (f10)" in titles
    assert spec("attach").keys == "f10" and "num_ctx" in spec("edit_options").help


def test_path_completion(tmp_path):
    (tmp_path / "cases").mkdir()
    (tmp_path / "case-2023.docx").write_bytes(b"x")
    (tmp_path / "case-2024.pdf").write_bytes(b"x")
    (tmp_path / "notes.exe").write_bytes(b"x")
    (tmp_path / ".hidden.txt").write_bytes(b"x")
    base = f"{tmp_path}/"
    assert matches(base) == ["cases/", "case-2023.docx", "case-2024.pdf"]
    assert complete(base + "ca") == base + "case"  # as far as the matches agree
    assert complete(base + "case-2023") == base + "case-2023.docx"
    assert complete(base + "cases") == base + "cases/"
    assert complete(base + "n") is None  # not a document
    assert matches(base + ".") == [".hidden.txt"]


async def test_tab_completes_the_path_in_the_dialog(rig_factory, tmp_path):
    (tmp_path / "judgment-2023.txt").write_text("text", encoding="utf-8")
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        dialog = await open_screen(pilot, "f10", FileDialog)
        field = dialog.query_one("#path", Input)
        field.value = f"{tmp_path}/jud"
        await pilot.press("tab")
        assert field.value == f"{tmp_path}/judgment-2023.txt"
        assert "judgment-2023.txt" in str(dialog.query_one("#matches", Static).render())


async def test_the_case_form_fills_its_facts_from_a_file(rig_factory, tmp_path):
    good = tmp_path / "案卷.txt"
    good.write_bytes(JUDGMENT.encode("gb18030"))
    bad = tmp_path / "empty.txt"
    bad.write_bytes(b"")
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await choose(pilot, "sentencing")
        form = await open_screen(pilot, "f5", CaseForm)
        form.query_one("#charges", Input).value = "盗窃罪"
        form.query_one("#facts", TextArea).load_text("typed facts")
        form.fill_facts(str(bad))
        await wait_until(pilot, lambda: isinstance(rig.app.screen, ErrorDialog))
        assert str(bad) in rig.app.screen.message
        await pilot.press("enter")
        await wait_until(pilot, lambda: rig.app.screen is form)
        assert form.query_one("#facts", TextArea).text == "typed facts"  # kept
        form.fill_facts(str(good))
        await pilot.pause()
        assert form.query_one("#facts", TextArea).text == JUDGMENT
        assert JUDGMENT in str(form.query_one("#preview", Static).render())


# The live count


async def test_the_status_line_counts_the_message_as_it_is_written(rig_factory, tmp_path):
    engine = FakeEngine("ok")
    rig = rig_factory(engine)
    async with rig.app.run_test(size=(120, 40)) as pilot:
        prompt = rig.app.screen.query_one(PromptInput)
        prompt.focus()
        await pilot.press(*"abcd" * 10)
        # No model loaded yet: a rough count against the Modelfile's num_ctx.
        await wait_until(pilot, lambda: "~" in status_figures(rig.app), what="a rough count")
        assert "of 4,096 tokens" in status_figures(rig.app)
        prompt.set_text("")
        await type_and_send(pilot, "first")
        await settle(pilot, rig.app)
        engine.reading_rate = 2.0  # tokens/s, as measured by earlier reads
        prompt.set_text("x" * 400)
        # Loaded: the model's own count (the fake's: a token per 4 characters, history and
        # all), with the reading time at the measured rate.
        await wait_until(pilot, lambda: "reading about" in status_figures(rig.app),
                         what="the exact count")
        assistant = rig.app.services.loaded
        assert assistant is not None
        expected = assistant.estimate([{"role": "user", "content": "first"},
                                       {"role": "assistant", "content": "ok"},
                                       {"role": "user", "content": "x" * 400}])
        assert expected is not None
        assert status_figures(rig.app) == f"message {expected.describe()}"
        path = tmp_path / "case.md"
        path.write_text("y" * 4000, encoding="utf-8")
        await attach(pilot, path)  # attaching counts the document too
        await wait_until(pilot, lambda: counted(rig.app) > expected.prompt_tokens + 1000,
                         what="the count with the document")
        prompt.set_text("")
        await rig.app.screen.query_one(ChatPane).run_action("screen.detach")
        await wait_until(pilot, lambda: "message" not in status_figures(rig.app),
                         what="the last reply's figures back")


# Reading progress and Esc


async def test_reading_progress_shows_and_escape_stops_it(rig_factory):
    engine = FakeEngine("never written", read_chunks=50, prompt_delay_s=5.0)
    rig = rig_factory(engine)
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "a long case " * 40)
        status = rig.app.screen.query_one(StatusBar)
        await wait_until(pilot, lambda: " tokens · " in status.state and "left" in status.state,
                         what="reading progress")
        assert "reading: " in status.state and "escape stops" in status.state
        sent = engine.calls[-1]["messages"]  # the fake's count: a token per 4 characters
        total = sum(len(m["content"]) for m in sent) // 4 + 1
        assert f"of {total:,} tokens" in status.state
        await pilot.press("escape")
        await settle(pilot, rig.app)
        assert status.state == "stopped"
        # Nothing was written: the turn is forgotten and the text is back in the box.
        assert rig.store.messages(1) == []
        assert rig.app.screen.query_one(PromptInput).text == "a long case " * 40


# num_ctx (F4)


async def test_f4_changes_num_ctx_and_the_model_is_loaded_again(rig_factory):
    rig = rig_factory(FakeEngine("ok"))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "first")
        await settle(pilot, rig.app)
        assert rig.sizes == [4096]  # the Modelfile's
        editor = await open_screen(pilot, "f4", OptionsEditor)
        field = editor.query_one("#num-ctx", Input)
        assert field.placeholder.startswith("default 4096, at most ")
        assert "Memory: about" in str(editor.query_one("#memory", Static).render())
        field.value = "8192"
        await pilot.pause()
        memory = str(editor.query_one("#memory", Static).render())
        assert "at 8,192 tokens" in memory and "KV cache" in memory
        await pilot.click("#save")
        await wait_until(pilot, lambda: not isinstance(rig.app.screen, OptionsEditor))
        assert rig.store.get_conversation(1).parameters == {"num_ctx": 8192}
        assert "/8192" in status_figures(rig.app)
        await type_and_send(pilot, "second")
        await settle(pilot, rig.app)
        assert rig.opened == ["moral-audit", "moral-audit"] and rig.sizes == [4096, 8192]
        await type_and_send(pilot, "third")  # the same size: no reload
        await settle(pilot, rig.app)
        assert rig.sizes == [4096, 8192]


async def test_f4_refuses_a_num_ctx_that_does_not_fit(rig_factory):
    rig = rig_factory(available_memory=50 * 1024 * 1024)  # 50 MB free
    async with rig.app.run_test(size=(120, 40)) as pilot:
        editor = await open_screen(pilot, "f4", OptionsEditor)
        maximum = rig.app.services.trained_context("moral-audit")
        assert maximum and maximum > 4096
        field = editor.query_one("#num-ctx", Input)
        field.value = str(maximum + 1)
        await save(pilot, editor)
        errors = str(editor.query_one("#errors", Static).render())
        assert f"num_ctx {maximum + 1:,} is more than the {maximum:,} tokens" in errors
        field.value = "4096"
        await save(pilot, editor)
        errors = str(editor.query_one("#errors", Static).render())
        assert "needs about" in errors and "50 MB is available" in errors
        assert "choose a smaller num_ctx" in str(editor.query_one("#memory", Static).render())
        assert rig.app.screen is editor  # refused: not saved
        assert rig.store.get_conversation(1).parameters is None


async def test_f4_shows_the_saved_reading_of_the_model_and_forgets_it(rig_factory):
    rig = rig_factory()
    model = rig.app.services.model("moral-audit")
    assert model is not None
    # A state saved for this model file, as the engine saves one, in the app's data folder.
    states = KVStateStore.default()
    key = model_key(states, model.gguf, model_sha256(model))
    size = 3 * 1024 * 1024
    saved = states.save(key, list(range(MIN_SAVED_TOKENS + 40)),
                        lambda path: path.write_bytes(b"\0" * size) > 0, size, supersede=True)
    assert saved is not None
    async with rig.app.run_test(size=(120, 40)) as pilot:
        editor = await open_screen(pilot, "f4", OptionsEditor)
        line = await saved_reading_line(pilot, editor)
        assert line == ("Saved reading for this model: 1 state, 3.0 MB on disk, 296 tokens "
                        "(this conversation's shows once the model is loaded)")
        forget = editor.query_one("#forget", Button)
        assert not forget.disabled
        forget.press()
        await wait_until(pilot, lambda: "none saved" in reading_text(editor), what="forgotten")
        assert reading_text(editor) == "Saved reading: none saved"
        assert forget.disabled and not saved.path.exists() and states.entries(key) == []


async def test_f4_in_incognito_has_no_saved_reading(rig_factory):
    from app.store import Store

    rig = rig_factory(store=Store.open(incognito=True))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        editor = await open_screen(pilot, "f4", OptionsEditor)
        line = await saved_reading_line(pilot, editor)
        assert line == "Saved reading: none (incognito: nothing is written to disk)"
        assert editor.query_one("#forget", Button).disabled


def reading_text(editor: OptionsEditor) -> str:
    return str(editor.query_one("#saved-reading", Static).render())


async def saved_reading_line(pilot, editor: OptionsEditor) -> str:
    """The saved reading's line once its lookup (a thread worker) has answered."""
    await wait_until(pilot, lambda: "looking" not in reading_text(editor), what="the lookup")
    return reading_text(editor)


# The divider and the cut-off mark


async def test_divider_and_cut_off_mark_also_after_reopening(rig_factory):
    from app.store import Store

    store = Store.open()
    rig = rig_factory(FakeEngine(["one", " two", " three", " four"], dropped_turns=2),
                      store=store)
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "first")
        await settle(pilot, rig.app)
        conversation = store.list_conversations("moral-audit")[0]
        store.set_conversation_options(conversation.id, parameters={"num_predict": 2})
        await rig.app.screen.open_conversation(conversation.id)
        await type_and_send(pilot, "second")
        await settle(pilot, rig.app)
        messages = store.messages(conversation.id)
        reply = messages[-1]
        assert (reply.stop_reason, reply.dropped_turns) == ("length", 2)
        chat = rig.app.screen.query_one(ChatView)
        view = chat.messages()[-1]
        assert "✂ cut off: the answer limit num_predict (2 tokens) was reached" in view.note
        assert view.has_class("cut-off")
        await assert_divider_before(chat, messages[2].id, 2)

    reopened = rig_factory(store=store)
    async with reopened.app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        chat = reopened.app.screen.query_one(ChatView)
        view = chat.message(reply.id)
        assert view is not None and "✂ cut off: the answer limit num_predict" in view.note
        assert view.has_class("cut-off")
        await assert_divider_before(chat, messages[2].id, 2)
        assert "✂" not in chat.message(messages[1].id).note  # the first reply ended normally


async def save(pilot, editor: OptionsEditor) -> None:
    editor.query_one("#save", Button).press()
    await pilot.pause()
    await pilot.pause()


async def assert_divider_before(chat: ChatView, message_id: int, dropped: int) -> None:
    [divider] = chat.query(".divider")
    assert f"{dropped} earlier messages no longer fit the context" in str(divider.render())
    children = list(chat.children)
    following = children[children.index(divider) + 1]
    assert getattr(following, "message_id", None) == message_id
