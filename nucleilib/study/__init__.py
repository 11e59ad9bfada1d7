"""The study: the DSB2018 manifest and splits, the explanations, the claims audit, the compute
profiles, the notebook runner, benchmark helpers and the book tooling.

It builds on the tool (``nucleilib``'s other modules) and the tool never imports it: a lab that
only segments its own images needs nothing from here.
"""
