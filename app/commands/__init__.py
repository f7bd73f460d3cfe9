"""One module per `amicus` subcommand: argument handling and output; the work is done by
the headless core (converters, app.engine, app.assistants, app.store)."""
