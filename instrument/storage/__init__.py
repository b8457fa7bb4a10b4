"""Runs on disk: QCoDeS datasets for metadata and scalars, chunked HDF5 files for images."""
