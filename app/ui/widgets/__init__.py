"""The main screen's widgets, one per module.

The screen holds two columns: `sidebar.Sidebar` (the `assistant_picker` above the
`conversation_list` and its search box) and `chat_pane.ChatPane` (the `chat_header`, the
`chat_view` of `message_view`s, the `prompt_input` and the `status_bar`; the pane also runs
the turn in flight).
"""
