"""The editing loop, store side: regenerated replies and edited questions are kept as
alternatives; the picked ones are what the conversation shows, the model is sent (the
engine history) and an export writes."""

from __future__ import annotations

from app.ui.turns import engine_history


def _turn(store, chat, question, answer):
    user = store.add_message(chat.id, "user", question)
    reply = store.add_message(chat.id, "assistant", answer)
    return user, reply


def _texts(store, chat):
    return [m.content for m in store.messages(chat.id)]


def test_regenerate_keeps_the_earlier_reply_and_picking_decides_what_follows(store):
    chat = store.create_conversation("general")
    _, first = _turn(store, chat, "Q1", "A1")
    again = store.add_alternative(first.id, status="streaming")
    store.update_message(again.id, content="A1 bis", status="complete")
    assert _texts(store, chat) == ["Q1", "A1 bis"]
    assert [m.content for m in store.alternatives(first.id)] == ["A1", "A1 bis"]
    assert store.alternative_positions(chat.id) == {again.id: (2, 2)}
    store.pick_alternative(first.id)
    assert _texts(store, chat) == ["Q1", "A1"]
    assert store.alternative_positions(chat.id) == {first.id: (1, 2)}
    # The next turn follows the picked reply, and the model is sent that one.
    store.add_message(chat.id, "user", "Q2")
    assert engine_history(store.messages(chat.id)) == [
        {"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}]
    store.pick_alternative(again.id)  # the later turn belonged to the other branch
    assert _texts(store, chat) == ["Q1", "A1 bis"]
    assert "A1 bis" in store.export_markdown(chat.id)
    assert "A1\n" not in store.export_markdown(chat.id)


def test_edit_and_resend_the_last_question(store):
    chat = store.create_conversation("civic-qa")
    _turn(store, chat, "租屋押金？", "可以")
    question, answer = _turn(store, chat, "房東不退怎麼辦", "先存證")
    edited = store.add_alternative(question.id, "房東不退押金怎麼辦？")
    assert _texts(store, chat) == ["租屋押金？", "可以", "房東不退押金怎麼辦？"]
    before = store.ancestors(edited.id)
    assert [m.content for m in before] == ["租屋押金？", "可以"]
    assert engine_history(before) == [{"role": "user", "content": "租屋押金？"},
                                      {"role": "assistant", "content": "可以"}]
    store.add_message(chat.id, "assistant", "寄存證信函")
    assert _texts(store, chat)[-2:] == ["房東不退押金怎麼辦？", "寄存證信函"]
    store.pick_alternative(question.id)  # the first wording comes back with its answer
    assert _texts(store, chat)[-2:] == ["房東不退怎麼辦", "先存證"]
    assert [m.content for m in store.alternatives(answer.id)] == ["先存證"]


def test_regenerate_answers_the_same_question(store):
    chat = store.create_conversation("general")
    _turn(store, chat, "Q1", "A1")
    question, reply = _turn(store, chat, "Q2", "A2")
    context = store.ancestors(reply.id)
    assert context[-1].id == question.id
    assert engine_history(context[:-1]) == [{"role": "user", "content": "Q1"},
                                            {"role": "assistant", "content": "A1"}]


def test_discarding_a_regenerated_reply_shows_the_earlier_one_again(store):
    chat = store.create_conversation("general")
    _, first = _turn(store, chat, "Q", "A")
    again = store.add_alternative(first.id, "partial", status="cancelled")
    store.delete_message(again.id)
    assert _texts(store, chat) == ["Q", "A"]
    assert store.get_message(first.id).picked
    # Discarding a whole last turn (reply, then question) leaves the chain intact.
    user, reply = _turn(store, chat, "Q2", "A2")
    store.delete_message(reply.id)
    store.delete_message(user.id)
    store.add_message(chat.id, "user", "Q3")
    assert _texts(store, chat) == ["Q", "A", "Q3"]


def test_deleting_a_message_in_the_middle_keeps_what_followed(store):
    chat = store.create_conversation("general")
    _turn(store, chat, "Q1", "A1")
    middle, _ = _turn(store, chat, "Q2", "A2")
    _turn(store, chat, "Q3", "A3")
    store.delete_message(middle.id)
    assert _texts(store, chat) == ["Q1", "A1", "A2", "Q3", "A3"]


def test_the_export_writes_the_picked_reply_and_says_it_has_versions(store):
    chat = store.create_conversation("general", title="t")
    _, first = _turn(store, chat, "Q", "first answer")
    store.add_alternative(first.id, "second answer")
    store.add_alternative(first.id, "third answer")
    store.pick_alternative(store.alternatives(first.id)[1].id)
    markdown = store.export_markdown(chat.id)
    assert "second answer" in markdown
    assert "first answer" not in markdown and "third answer" not in markdown
    assert "_(version 2 of 3: the one picked; the others are kept in Amicus)_" in markdown
