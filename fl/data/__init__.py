"""Data files shipped with the package (see SOURCES.md); read them with `fl.datasets.load`."""
