"""Training, evaluation and drift statistics, on scikit-learn."""
