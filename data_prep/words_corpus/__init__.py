"""A keyword corpus from any transcribed speech: read transcripts, force-align, cut the words.

:mod:`.transcripts` reads four layouts, :mod:`.align` aligns with PocketSphinx (extra ``align``),
:mod:`.build` writes the dataset folder, :mod:`.agreement` compares two alignments.
"""
