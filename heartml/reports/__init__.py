"""What people open: HTML pages (Jinja2 templates), figures, the data profile, the model card, MLflow logging."""
