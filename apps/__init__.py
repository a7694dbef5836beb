"""genlab applications: thin compositions of the shared core (config -> data -> model -> loop -> evaluate -> report)."""
