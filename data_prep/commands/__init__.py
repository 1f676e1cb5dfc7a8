"""One module per ``kws-prep`` subcommand (see :mod:`kws_proto.util.cli`)."""
