"""One module per ``kws-proto`` subcommand (see :mod:`kws_proto.cli`)."""
