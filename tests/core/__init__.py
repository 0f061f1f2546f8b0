"""The core without any fake server: the engines, the store, the pipeline and the local backend on real
files, repositories, processes and databases, and the renderers pinned by golden files."""
