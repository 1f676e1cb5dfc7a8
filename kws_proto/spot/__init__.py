"""Keywords of one's own: decision rule, banks, the spotter, detection in long audio, export."""
