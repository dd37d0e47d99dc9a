"""`--dev` mode helpers: an embedded kubesim and a chart repository of the sample charts."""
