"""Runs trained elsewhere: log parsers, and the run folders made from them."""
