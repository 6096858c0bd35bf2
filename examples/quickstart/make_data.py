"""Writes the Wisconsin breast-cancer table that Debian's python3-sklearn ships
as a CSV with snake_case column names and the label in `target` (1 = benign).
The data's licence: CC BY 4.0, UCI Machine Learning Repository."""
import sys

from sklearn.datasets import load_breast_cancer

frame = load_breast_cancer(as_frame=True).frame
frame.columns = [c.replace(" ", "_") for c in frame.columns]
frame.insert(0, "id", range(len(frame)))
frame.to_csv(sys.argv[1], index=False)
print(f"wrote {len(frame)} rows x {len(frame.columns)} columns to {sys.argv[1]}")
