"""Stage 4, what a sweep says: the claims report and the paper's figures, drawn from the tables
that aggregation wrote."""
