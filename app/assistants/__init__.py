"""Assistant profiles and prompt frames, read from modelfiles/. Never imports textual."""
