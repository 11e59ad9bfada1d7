"""Book tooling: the Sphinx extension that serves MathJax offline and the browser check of the
built site."""
