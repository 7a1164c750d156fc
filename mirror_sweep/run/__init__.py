"""Stage 1, one run: environment, model, objectives, training loop and the experiment that ties
them to the analyses (config -> data -> model -> training -> hidden states -> analysis)."""
