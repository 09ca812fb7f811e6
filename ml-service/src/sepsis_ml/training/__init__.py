"""Training, export and evaluation of the sepsis model (needs the development dependencies:
pandas, pyarrow, lightgbm, scikit-learn, onnxmltools, matplotlib; never imported by the
service)."""
